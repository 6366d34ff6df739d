//! `POST /v1/events`: what happened on every channel, appended to the store durably and
//! answered per event. Validation is the trainer's own (the event loader's), so a channel
//! learns from the answer exactly what training would have refused; the store's writer adds
//! what needs the stored state (repeats, erased persons, placeholders).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{Ingested, NewEvent};
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The longest `event_id`, `recommendation_id` or `store_id` kept.
pub(super) const MAX_ID_LEN: usize = 200;

/// Body of `POST /v1/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsBody {
    /// The events, one to `live.max_events_per_request` (default 1,000), each in the schema of
    /// the trainer's event files: identifiers (at the top level or in `identifiers`),
    /// `channel`, `type`, `item_id` (for item events), `timestamp` (epoch number or RFC 3339),
    /// `value`, and optionally `event_id`, `recommendation_id`, `store_id`.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub events: Vec<Value>,
}

/// What became of one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    /// Its position in the batch, from 0.
    pub index: usize,
    /// Its id: the sender's, or the one assigned (send it again to retry safely).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `accepted` (stored durably), `duplicate` (stored before with the same content;
    /// nothing changed), `conflict` (stored before with other content; nothing changed) or
    /// `rejected` (not stored; see `field` and `message`).
    pub status: &'static str,
    /// The HTTP status this event would have alone: 201, 200, 409 or 400.
    pub code: u16,
    /// The field at fault, for rejected events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why it was rejected, or a conflict's explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The identifier the event is filed under (its person's), for accepted events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_identifier: Option<String>,
    /// Persons its identifiers joined.
    #[serde(skip_serializing_if = "is_zero")]
    pub merged: usize,
    /// Links its identifiers asked for and the identity rules refused, each with the rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused_links: Vec<RefusedLink>,
    /// Notes on an accepted event (an item the catalog does not have yet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A link the identity rules refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedLink {
    /// The identifier not linked (`kind:value`, emails and phones hashed).
    pub identifier: String,
    /// `limit`, `hot_identifier` or `unlinked`.
    pub rule: &'static str,
    /// The rule, in words.
    pub reason: String,
}

/// The answer of `POST /v1/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsResponse {
    /// Events stored now.
    pub accepted: usize,
    /// Events stored before with the same content.
    pub duplicates: usize,
    /// Events stored before with other content.
    pub conflicts: usize,
    /// Events refused.
    pub rejected: usize,
    /// One result per event, in order.
    pub results: Vec<EventResult>,
}

fn rejected(index: usize, event_id: Option<String>, field: &str, message: String) -> EventResult {
    EventResult {
        index,
        event_id,
        status: "rejected",
        code: 400,
        field: Some(field.to_string()),
        message: Some(message),
        person_identifier: None,
        merged: 0,
        refused_links: Vec::new(),
        warnings: Vec::new(),
    }
}

/// An optional id-like text field of an event: a string of at most [`MAX_ID_LEN`] bytes.
fn id_field(event: &Value, field: &str) -> Result<Option<String>, String> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err("must not be empty".into()),
        Some(Value::String(s)) if s.len() > MAX_ID_LEN => Err(format!("longer than {MAX_ID_LEN} bytes")),
        Some(Value::String(s)) => datasets::schema::check_id(s).map(|()| Some(s.trim().to_string())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(format!("expected a string or a whole number, found {other}")),
    }
}

/// Stores events from any channel, durably, and answers for each.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body = EventsBody,
    responses(
        (status = 200, description = "Every event answered: accepted, duplicate, conflict (409 for that event) or rejected (400 for that event); the accepted ones are on disk", body = EventsResponse),
        (status = 400, description = "Malformed JSON, no events, or more than the batch limit", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the ingest role", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 500, description = "The store could not write; nothing of the batch was kept", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn post_events(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<EventsBody>,
) -> Result<Json<EventsResponse>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    super::extract::batch_size("events", body.events.len(), state.config.live.max_events_per_request)?;
    super::extract::objects_only("events", &body.events)?;
    // Checking a batch of events and waiting for its commit take a thread of their own: on
    // the runtime's few workers they would hold up every other request's reading and writing.
    let response = tokio::task::spawn_blocking(move || ingest(&state, &store, &body.events))
        .await
        .map_err(ApiError::internal)??;
    for (outcome, n) in [
        ("accepted", response.accepted),
        ("duplicate", response.duplicates),
        ("conflict", response.conflicts),
        ("rejected", response.rejected),
    ] {
        metrics::counter!("omnirec_events_total", "outcome" => outcome).increment(n as u64);
    }
    Ok(Json(response))
}

/// Checks every event, stores the valid ones durably and answers for each, in order.
fn ingest(state: &AppState, store: &store::Store, events: &[Value]) -> Result<EventsResponse, ApiError> {
    let now = cli::unix_now();
    let latest = now.saturating_add(state.config.live.max_future_seconds);
    let serving = state.current.load_full();
    let mut results: Vec<Option<EventResult>> = Vec::with_capacity(events.len());
    let mut batch = Vec::new();
    let mut positions = Vec::new();
    let mut warnings = Vec::new();
    for (index, value) in events.iter().enumerate() {
        let event_id = id_field(value, "event_id");
        let sent_id = event_id.as_ref().ok().cloned().flatten();
        let checked = (|| -> Result<NewEvent, (String, String)> {
            let event_id = event_id.map_err(|reason| ("event_id".to_string(), reason))?;
            let recommendation_id = id_field(value, "recommendation_id")
                .map_err(|reason| ("recommendation_id".to_string(), reason))?;
            let store_id = id_field(value, "store_id").map_err(|reason| ("store_id".to_string(), reason))?;
            let mut event =
                datasets::load::event_from_json(value, "events", index + 1).map_err(|e| match e {
                    datasets::Error::Parse { location, reason } => (location.field, reason),
                    other => (String::new(), other.to_string()),
                })?;
            // Bounds a server keeps (files a user trains on have none): names and ids are
            // keys of the store's indexes, copied into every read of their person.
            let channel_name = value.get("channel").and_then(Value::as_str).unwrap_or_default();
            datasets::schema::check_name(channel_name.trim())
                .map_err(|reason| ("channel".to_string(), reason))?;
            let type_field = if value.get("type").is_some() { "type" } else { "event_type" };
            let type_name = value.get(type_field).and_then(Value::as_str).unwrap_or_default();
            datasets::schema::check_name(type_name.trim()).map_err(|reason| ("type".to_string(), reason))?;
            // Each identifier as sent, at the top level and nested (one of each kind may be in
            // both places, with different values).
            for (prefix, map) in [("", Some(value)), ("identifiers.", value.get("identifiers"))] {
                for kind in datasets::schema::IdentifierKind::ALL {
                    let kind = kind.as_str();
                    if let Some(sent) = map.and_then(|m| m.get(kind)).and_then(Value::as_str) {
                        datasets::schema::check_id_length(sent)
                            .map_err(|reason| (format!("{prefix}{kind}"), reason))?;
                    }
                }
            }
            if let Some(item) = &event.item_id {
                datasets::schema::check_id_length(item).map_err(|reason| ("item_id".to_string(), reason))?;
            }
            if store::RESERVED_EVENT_TYPES.contains(&event.event_type.as_str()) {
                return Err((
                    "type".into(),
                    format!(
                        "`{}` is the server's own record (consent and identity links have endpoints of their own)",
                        event.event_type.as_str()
                    ),
                ));
            }
            if event.channel.as_str() == store::API_CHANNEL {
                return Err((
                    "channel".into(),
                    format!(
                        "`{}` is the channel of the server's own records: name the sender's",
                        store::API_CHANNEL
                    ),
                ));
            }
            if event.timestamp > latest {
                return Err((
                    "timestamp".into(),
                    format!(
                        "{} is in the future (later than {}); fix the sender's clock or unit",
                        datasets::schema::format_timestamp(event.timestamp),
                        datasets::schema::format_timestamp(latest)
                    ),
                ));
            }
            event.event_id = Some(event_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()));
            Ok(NewEvent { event, recommendation_id, store_id })
        })();
        match checked {
            Ok(new) => {
                let mut notes = Vec::new();
                if let Some(item) = &new.event.item_id
                    && serving.view.catalog.get(item).is_none()
                {
                    notes.push(format!("item `{item}` is not in the catalog yet: kept, and used once it is"));
                }
                warnings.push(notes);
                positions.push(index);
                batch.push(new);
                results.push(None);
            }
            Err((field, reason)) => results.push(Some(rejected(index, sent_id, &field, reason))),
        }
    }
    let answers =
        if batch.is_empty() { Vec::new() } else { store.ingest(batch, now).map_err(ApiError::store)? };
    for ((index, answer), notes) in positions.into_iter().zip(answers).zip(warnings) {
        results[index] = Some(match answer {
            Ingested::Accepted { event_id, anchor, merged, refused, .. } => EventResult {
                index,
                event_id: Some(event_id),
                status: "accepted",
                code: 201,
                field: None,
                message: None,
                person_identifier: Some(anchor),
                merged,
                refused_links: refused
                    .into_iter()
                    .map(|r| RefusedLink {
                        identifier: r.identifier.key(),
                        rule: r.kind.as_str(),
                        reason: r.reason,
                    })
                    .collect(),
                warnings: notes,
            },
            Ingested::Duplicate { event_id, .. } => EventResult {
                status: "duplicate",
                code: 200,
                ..rejected(index, Some(event_id), "", String::new())
            }
            .without_detail(),
            Ingested::Conflict { event_id, .. } => EventResult {
                status: "conflict",
                code: 409,
                field: Some("event_id".into()),
                message: Some(format!(
                    "event `{event_id}` is stored with other content; an id names one event for ever: send \
                     a changed event under a new id"
                )),
                ..rejected(index, Some(event_id), "", String::new())
            },
            Ingested::Rejected { event_id, field, reason } => rejected(index, Some(event_id), &field, reason),
        });
    }
    let results: Vec<EventResult> = results.into_iter().flatten().collect();
    let count = |status: &str| results.iter().filter(|r| r.status == status).count();
    Ok(EventsResponse {
        accepted: count("accepted"),
        duplicates: count("duplicate"),
        conflicts: count("conflict"),
        rejected: count("rejected"),
        results,
    })
}

impl EventResult {
    fn without_detail(self) -> Self {
        EventResult { field: None, message: None, ..self }
    }
}

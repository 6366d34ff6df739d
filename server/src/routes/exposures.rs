//! `POST /v1/exposures`: exposures of recommendations a channel sent itself (a batch of
//! emails from `trainer recommend --experiment`), recorded once really sent (role `ingest`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::experiments::time;
use super::extract::JsonBody;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// One exposure a channel reports.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposureBody {
    /// The recommendation id the batch gave it (send it back with the events that follow).
    #[schema(pattern = r"\S")]
    pub recommendation_id: String,
    /// The experiment.
    pub experiment: String,
    /// The variant the batch assigned.
    pub variant: String,
    /// Whatever identifies the person, by kind (as in recommendation requests).
    #[schema(value_type = super::IdentifiersDoc)]
    pub identifiers: BTreeMap<String, String>,
    /// The channel it was shown on (`email`, `sms`, …).
    #[schema(pattern = r"\S")]
    pub channel: String,
    /// The items shown, best first.
    #[schema(max_items = 1000)]
    pub items: Vec<String>,
    /// When it was sent (RFC 3339 or seconds since the epoch; default: now).
    #[serde(default)]
    pub at: Option<String>,
}

/// A reported exposure: kept, or refused with the reason.
enum Reported {
    Kept(store::Exposure),
    Refused(&'static str),
}

/// Body of `POST /v1/exposures`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposuresBody {
    /// At most 1,000 exposures.
    pub exposures: Vec<ExposureBody>,
}

/// Most items one reported exposure may list.
const MAX_ITEMS: usize = 1_000;

/// What became of the exposures, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExposuresResponse {
    /// Per exposure: `recorded`; `duplicate` (already recorded); `erased` (the person was
    /// erased: nothing about them is kept) or `no_consent` (the person does not allow
    /// `analytics`), both not recorded.
    pub results: Vec<&'static str>,
}

/// Records exposures of batch recommendations (`trainer recommend --experiment` for an email
/// send) once they are really sent; durable before the answer. Each records its person's
/// assignment if they have none yet.
#[utoipa::path(
    post,
    path = "/v1/exposures",
    tag = "experiments",
    request_body = ExposuresBody,
    responses(
        (status = 200, description = "Recorded", body = ExposuresResponse),
        (status = 400, description = "Malformed JSON or an invalid field (named in `field`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the ingest role", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn post_exposures(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<ExposuresBody>,
) -> Result<Json<ExposuresResponse>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    if body.exposures.len() > 1_000 {
        return Err(ApiError::field("exposures", "at most 1000 exposures per request"));
    }
    let now = cli::unix_now();
    let experiments = state.experiments.load_full();
    let mut exposures = Vec::with_capacity(body.exposures.len());
    for (i, e) in body.exposures.into_iter().enumerate() {
        let field = |f: &str| format!("exposures[{i}].{f}");
        let experiment = experiments.iter().find(|x| x.name == e.experiment).ok_or_else(|| {
            ApiError::at(
                ErrorCode::UnknownExperiment,
                &field("experiment"),
                format!("no experiment named `{}`", e.experiment),
            )
        })?;
        if !experiment.variants.iter().any(|v| v.name == e.variant) {
            return Err(ApiError::field(
                &field("variant"),
                format!("`{}` is not a variant of `{}`", e.variant, e.experiment),
            ));
        }
        if e.recommendation_id.trim().is_empty() || e.recommendation_id.len() > super::events::MAX_ID_LEN {
            return Err(ApiError::field(
                &field("recommendation_id"),
                format!("must have 1 to {} bytes", super::events::MAX_ID_LEN),
            ));
        }
        datasets::schema::check_id(&e.recommendation_id)
            .map_err(|reason| ApiError::field(&field("recommendation_id"), reason))?;
        if e.channel.trim().is_empty() {
            return Err(ApiError::field(&field("channel"), "must not be empty"));
        }
        datasets::schema::check_name(&e.channel)
            .map_err(|reason| ApiError::field(&field("channel"), reason))?;
        if e.items.len() > MAX_ITEMS {
            return Err(ApiError::field(&field("items"), format!("at most {MAX_ITEMS} items per exposure")));
        }
        if let Some((i, reason)) = e.items.iter().enumerate().find_map(|(i, item)| {
            let checked =
                datasets::schema::check_id(item).and_then(|()| datasets::schema::check_id_length(item));
            checked.err().map(|r| (i, r))
        }) {
            return Err(ApiError::field(&field(&format!("items[{i}]")), reason));
        }
        let identifiers = super::recommendations::parse_identifiers(&e.identifiers)
            .map_err(|error| ApiError { field: error.field.map(|f| field(&f)), ..error })?;
        if identifiers.is_empty() {
            return Err(ApiError::field(&field("identifiers"), "name at least one identifier"));
        }
        if identifiers.iter().all(|i| store.is_placeholder(i)) {
            return Err(ApiError::field(
                &field("identifiers"),
                "only placeholder values: they identify nobody; name the person the send went to",
            ));
        }
        let person = store
            .person_ids(&identifiers)
            .and_then(|ids| ids.identifiers.first().map(datasets::schema::Identifier::key))
            .or_else(|| identifiers.iter().min().map(datasets::schema::Identifier::key))
            .unwrap_or_default();
        let at = e.at.as_deref().map(|t| time(&field("at"), t)).transpose()?.unwrap_or(now);
        let latest = now.saturating_add(state.config.live.max_future_seconds);
        if at < experiment.start || at > latest {
            return Err(ApiError::field(
                &field("at"),
                format!(
                    "must lie between the experiment's start ({}) and now ({}, with the events' allowance \
                     for senders' clocks)",
                    datasets::schema::format_timestamp(experiment.start),
                    datasets::schema::format_timestamp(now)
                ),
            ));
        }
        // A send after the experiment ended or was stopped is no part of it (one made before,
        // reported late, is).
        if let Some(over) = [experiment.end, experiment.stopped_at].into_iter().flatten().min()
            && at >= over
        {
            return Err(ApiError::field(
                &field("at"),
                format!(
                    "the experiment was over at {}: a send after it is no part of it",
                    datasets::schema::format_timestamp(over)
                ),
            ));
        }
        let query = store::PersonQuery { after_seq: u64::MAX, shown_since: None };
        let live = store.person(&identifiers, query).map_err(ApiError::store)?;
        // An erased identifier is someone new only once it came back with channel events of
        // its own (the erasure deleted the old ones; the store's own records of consent or
        // links do not count), for what was sent after the erasure.
        let came_back = |identifier: &datasets::schema::Identifier| -> Result<bool, ApiError> {
            let alone = store::PersonIds {
                key: identifier.key(),
                identifiers: vec![identifier.clone()],
                refused: None,
                known: false,
            };
            let (_, events) = store.person_events(&alone, 0, 100).map_err(ApiError::store)?;
            Ok(events.iter().any(|e| !store::RESERVED_EVENT_TYPES.contains(&e.event_type.as_str())))
        };
        let mut erased = false;
        for (identifier, erased_at) in &live.erased {
            erased |= at <= *erased_at || !came_back(identifier)?;
        }
        let refusal = if erased {
            Some("erased")
        } else if !live.allows(store::ANALYTICS) {
            Some("no_consent")
        } else {
            None
        };
        exposures.push(match refusal {
            Some(refusal) => Reported::Refused(refusal),
            None => Reported::Kept(store::Exposure {
                id: e.recommendation_id,
                tag: store::ExposureTag { experiment: e.experiment, variant: e.variant },
                person,
                channel: e.channel,
                placement: None,
                items: e.items,
                at,
            }),
        });
    }
    let kept: Vec<store::Exposure> = exposures
        .iter()
        .filter_map(|e| match e {
            Reported::Kept(exposure) => Some(exposure.clone()),
            Reported::Refused(_) => None,
        })
        .collect();
    // Waiting for the commit, on a blocking thread: never on a scoring thread.
    let mut outcomes = tokio::task::spawn_blocking(move || store.record_exposures(kept))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::store)?
        .into_iter();
    let results = exposures
        .iter()
        .map(|e| match e {
            Reported::Refused(refusal) => *refusal,
            Reported::Kept(_) => match outcomes.next() {
                Some(true) => "recorded",
                _ => "duplicate",
            },
        })
        .collect();
    Ok(Json(ExposuresResponse { results }))
}

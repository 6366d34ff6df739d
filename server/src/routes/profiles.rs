//! `GET /v1/profiles/{identifier_type}/{value}`: one person across every channel;
//! `PUT …/consent`: their consent per purpose; `DELETE …`: erasure, with a receipt.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use datasets::schema::{Identifier, IdentifierKind, format_timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode};

/// Most purposes one consent change may name: the set is written to every identifier of the
/// person and read with each of their answers.
const MAX_PURPOSES: usize = 16;
use crate::state::AppState;

/// How many of a person's events a profile reads, newest first.
const PROFILE_EVENTS: usize = 100_000;
/// How many recent views and purchases a profile lists.
const RECENT: usize = 10;

fn identifier(kind: &str, value: &str) -> Result<Identifier, ApiError> {
    let kind = IdentifierKind::parse(kind).ok_or_else(|| {
        ApiError::field(
            "identifier_type",
            "unknown identifier kind (use user_id, loyalty_id, pos_customer_id, email, phone, device_id or cookie_id)",
        )
    })?;
    datasets::schema::check_identifier(kind, value).map_err(|reason| ApiError::field("value", reason))?;
    Identifier::new(kind, value).ok_or_else(|| ApiError::field("value", "empty or invalid value"))
}

/// An identifier of the person.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileIdentifier {
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its value; emails and phones only as their SHA-256.
    pub value: String,
    /// Why it is not used to link persons, if it is not (a shared device's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One thing the person did lately.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    /// The item.
    pub item_id: String,
    /// Its title, when the catalog has it.
    pub title: Option<String>,
    /// The channel.
    pub channel: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A link in the person's identity log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Provenance {
    /// `event` (an event carried the identifiers together), `link` or `unlink` (API calls).
    pub kind: &'static str,
    /// The identifiers it joins (or separates).
    pub identifiers: Vec<String>,
    /// The event that carried it (for calls, the event recording the call).
    pub event_id: String,
    /// The channel, or the API key's name.
    pub source: String,
    /// What the identity rules said.
    pub rule: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One consent change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentChange {
    /// When (RFC 3339).
    pub at: String,
    /// The purposes it set.
    #[schema(value_type = Object)]
    pub purposes: BTreeMap<String, bool>,
}

/// One person, across every channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileResponse {
    /// The person's key (its highest-priority identifier).
    pub person_id: String,
    /// Every identifier linked to the person.
    pub identifiers: Vec<ProfileIdentifier>,
    /// The model's persons this person is made of (more than one after a live merge).
    pub trained_persons: Vec<String>,
    /// Interactions the loaded model was trained on.
    pub trained_interactions: usize,
    /// Events received live, in total.
    pub event_count: u64,
    /// Events received live, per channel.
    #[schema(value_type = Object)]
    pub events_by_channel: BTreeMap<String, u64>,
    /// The first live event's time (RFC 3339).
    pub first_seen: Option<String>,
    /// The last live event's time (RFC 3339).
    pub last_seen: Option<String>,
    /// The latest views, newest first.
    pub recent_views: Vec<Activity>,
    /// The latest purchases (live), newest first.
    pub recent_purchases: Vec<Activity>,
    /// Share of the person's interest per top category, largest first: from training and the
    /// live events since.
    pub category_affinity: Vec<CategoryShare>,
    /// Probability of a purchase within the model's horizon (from training).
    pub purchase_propensity: Option<f32>,
    /// Probability of no activity within the horizon (from training).
    pub churn_risk: Option<f32>,
    /// The behavioural segment (from training).
    pub segment: Option<String>,
    /// Consent per purpose now.
    #[schema(value_type = Object)]
    pub consent: BTreeMap<String, bool>,
    /// Consent changes, oldest first.
    pub consent_history: Vec<ConsentChange>,
    /// How the person's identifiers came together.
    pub links: Vec<Provenance>,
}

/// A category's share of a person's interest.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryShare {
    /// The top category.
    pub category: String,
    /// Its share, 0 to 1.
    pub affinity: f32,
}

/// Everything known of one person: identifiers, activity on every channel, affinities and
/// scores, consent, and how their identifiers were linked.
#[utoipa::path(
    get,
    path = "/v1/profiles/{identifier_type}/{value}",
    tag = "profiles",
    params(
        ("identifier_type" = String, Path, description = "user_id, loyalty_id, pos_customer_id, email, phone, device_id or cookie_id"),
        ("value" = String, Path, description = "The identifier (emails and phones raw or as their SHA-256)"),
    ),
    responses(
        (status = 200, description = "The profile", body = ProfileResponse),
        (status = 400, description = "Unknown identifier kind or an empty value", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
        (status = 404, description = "Nobody is known by this identifier", body = ErrorBody),
        (status = 408, description = "Took longer than the request timeout", body = ErrorBody),
        (status = 500, description = "The store could not read", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get_profile(
    State(state): State<Arc<AppState>>,
    Path((kind, value)): Path<(String, String)>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let asked = identifier(&kind, &value)?;
    let state_ = Arc::clone(&state);
    let profile = crate::pool::on_pool(move || profile(&state_, &asked)).await??;
    Ok(Json(profile))
}

fn profile(state: &AppState, asked: &Identifier) -> Result<ProfileResponse, ApiError> {
    let serving = state.current.load_full();
    let engine = &serving.model.engine;
    let catalog = &serving.view.catalog;
    let store = state.store.as_deref();
    let versions = state.versions.load_full();
    let loaded: Vec<&crate::state::Serving> = versions.values().map(|v| &**v).collect();
    let who = crate::live::person(&serving, &loaded, store, std::slice::from_ref(asked), None)?;
    let ids = store.and_then(|s| s.person_ids(std::slice::from_ref(asked)));
    let (count, events) = match (store, &ids) {
        (Some(store), Some(ids)) => store.person_events(ids, 0, PROFILE_EVENTS).map_err(ApiError::store)?,
        _ => (0, Vec::new()),
    };
    let live = match store {
        Some(store) => store
            .person(
                std::slice::from_ref(asked),
                store::PersonQuery { after_seq: u64::MAX, shown_since: None },
            )
            .map_err(ApiError::store)?,
        None => store::LivePerson { ids: None, ..store::LivePerson::default() },
    };
    let trained = crate::live::trained_persons(&serving, std::slice::from_ref(asked), &live);
    let trained_all: Vec<String> =
        trained.iter().filter_map(|u| engine.artifact().body.users.id(u.0)).map(str::to_string).collect();
    let consent_history: Vec<ConsentChange> = events
        .iter()
        .filter(|e| e.event_type == store::record::CONSENT_EVENT)
        .filter_map(|e| {
            Some(ConsentChange { at: format_timestamp(e.timestamp), purposes: e.consent.clone()? })
        })
        .collect();
    let known = !trained_all.is_empty() || count > 0 || ids.as_ref().is_some_and(|i| i.known);
    if !known {
        return Err(ApiError::at(
            ErrorCode::UnknownIdentifier,
            "value",
            format!("nobody is known by {}", asked.key()),
        ));
    }
    let channel_events: Vec<&store::EventRecord> =
        events.iter().filter(|e| e.channel != store::API_CHANNEL).collect();
    let mut by_channel: BTreeMap<String, u64> = BTreeMap::new();
    for event in &channel_events {
        *by_channel.entry(event.channel.clone()).or_default() += 1;
    }
    let title = |id: &str| catalog.get(id).and_then(|i| catalog.item(i.get())).map(|i| i.title.clone());
    let activity = |kind: &str| -> Vec<Activity> {
        channel_events
            .iter()
            .rev()
            .filter(|e| e.event_type == kind)
            .filter_map(|e| {
                let item_id = e.item_id.clone()?;
                Some(Activity {
                    title: title(&item_id),
                    item_id,
                    channel: e.channel.clone(),
                    at: format_timestamp(e.timestamp),
                })
            })
            .take(RECENT)
            .collect()
    };
    let mut shares: BTreeMap<String, f32> = BTreeMap::new();
    for &(item, weight) in who.person.history.iter() {
        if let Some(category) = catalog.item(item.get()).and_then(|i| i.top_category()) {
            *shares.entry(category.to_string()).or_default() += weight;
        }
    }
    let total: f32 = shares.values().sum();
    let mut category_affinity: Vec<CategoryShare> = shares
        .into_iter()
        .map(|(category, w)| CategoryShare { category, affinity: if total > 0.0 { w / total } else { 0.0 } })
        .collect();
    category_affinity.sort_by(|a, b| b.affinity.total_cmp(&a.affinity).then(a.category.cmp(&b.category)));
    category_affinity.truncate(5);
    let scores = trained.first().and_then(|&u| engine.artifact().body.profiles.as_ref()?.person(u));
    let consent = match store {
        Some(store) => {
            store
                .person(
                    std::slice::from_ref(asked),
                    store::PersonQuery { after_seq: u64::MAX, shown_since: None },
                )
                .map_err(ApiError::store)?
                .consent
        }
        None => state.config.live.consent_default.clone(),
    };
    let links = match (store, &ids) {
        (Some(store), Some(ids)) => store
            .provenance(ids)
            .map_err(ApiError::store)?
            .into_iter()
            .map(|link| Provenance {
                kind: link.kind.as_str(),
                identifiers: link.identifiers,
                event_id: link.event_id,
                source: link.source,
                rule: link.rule,
                at: format_timestamp(link.at),
            })
            .collect(),
        _ => Vec::new(),
    };
    let identifiers = ids.as_ref().map_or_else(|| vec![asked.clone()], |ids| ids.identifiers.clone());
    Ok(ProfileResponse {
        person_id: ids.as_ref().map_or_else(|| datasets::identity::canonical_key(asked), |i| i.key.clone()),
        identifiers: identifiers
            .into_iter()
            .map(|i| ProfileIdentifier {
                kind: i.kind.as_str(),
                refused: ids.as_ref().filter(|p| p.identifiers.len() == 1).and_then(|p| p.refused.clone()),
                value: i.value,
            })
            .collect(),
        trained_interactions: trained.iter().map(|&u| engine.history(u).len()).sum(),
        trained_persons: trained_all,
        event_count: channel_events.len() as u64 + count.saturating_sub(events.len() as u64),
        events_by_channel: by_channel,
        first_seen: channel_events.first().map(|e| format_timestamp(e.timestamp)),
        last_seen: channel_events.iter().map(|e| e.timestamp).max().map(format_timestamp),
        recent_views: activity("view"),
        recent_purchases: activity("purchase"),
        category_affinity,
        purchase_propensity: scores.as_ref().and_then(|s| s.purchase_propensity),
        churn_risk: scores.as_ref().and_then(|s| s.churn_risk),
        segment: scores.and_then(|s| s.segment.map(|seg| seg.label.clone())),
        consent,
        consent_history,
        links,
    })
}

/// Body of `PUT …/consent`: purposes and whether each is allowed, at least one (`null` sets
/// nothing). Other purposes than these two may be named (lowercase letters, digits and `_`).
#[derive(Debug, ToSchema)]
#[expect(dead_code, reason = "describes the wire format only")]
pub struct ConsentBody {
    /// Personalised answers on every channel, and training on the person's events.
    personalization: Option<bool>,
    /// Measurement in experiments and reports.
    analytics: Option<bool>,
}

/// Sets the person's consent for the purposes named (others keep theirs), for every
/// identifier of the person, on every channel from the next request on. Recorded as an event
/// (the audit trail).
#[utoipa::path(
    put,
    path = "/v1/profiles/{identifier_type}/{value}/consent",
    tag = "profiles",
    params(
        ("identifier_type" = String, Path, description = "The identifier's kind"),
        ("value" = String, Path, description = "The identifier"),
    ),
    request_body = ConsentBody,
    responses(
        (status = 200, description = "Consent now in force for the identifier", body = Object),
        (status = 400, description = "An invalid identifier or purpose", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the ingest role", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 500, description = "The store could not write", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn put_consent(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path((kind, value)): Path<(String, String)>,
    JsonBody(sent): JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<BTreeMap<String, bool>>, ApiError> {
    // A purpose sent as `null` is not being set; anything but true, false or null is refused.
    let mut purposes: BTreeMap<String, bool> = BTreeMap::new();
    for (purpose, allowed) in sent {
        // The British spelling is the same purpose, not another one left unenforced.
        let spelled = purpose.clone();
        let purpose = if purpose == "personalisation" { store::PERSONALIZATION.to_string() } else { purpose };
        match allowed {
            serde_json::Value::Bool(allowed) => {
                if purposes.insert(purpose, allowed).is_some_and(|other| other != allowed) {
                    return Err(ApiError::field(
                        &spelled,
                        "both spellings of the purpose, with different values",
                    ));
                }
            }
            serde_json::Value::Null => {}
            other => {
                return Err(ApiError::field(
                    &purpose,
                    format!("expected true, false or null, found {other}"),
                ));
            }
        }
    }
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let asked = identifier(&kind, &value)?;
    // A key longer than the server takes is stored only if it is known already (from older
    // data or the model): consent can always be withdrawn.
    if let Err(reason) = datasets::schema::check_id_length(&asked.value) {
        let known = store.person_ids(std::slice::from_ref(&asked)).is_some_and(|p| p.known)
            || state.current.load().model.engine.lookup(&asked.key()).is_some();
        if !known {
            return Err(ApiError::field("value", reason));
        }
    }
    if store.is_placeholder(&asked) {
        return Err(ApiError::field("value", "a placeholder value identifies nobody"));
    }
    if purposes.is_empty() {
        return Err(ApiError::field("purposes", "name at least one purpose (personalization, analytics)"));
    }
    if purposes.len() > MAX_PURPOSES {
        return Err(ApiError::field("purposes", format!("at most {MAX_PURPOSES} purposes per change")));
    }
    if let Some(bad) = purposes.keys().find(|p| {
        p.is_empty()
            || p.len() > 64
            || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }) {
        return Err(ApiError::field(
            bad,
            "a purpose is lowercase letters, digits and `_`, at most 64 of them",
        ));
    }
    let source = super::extract::source(caller);
    let set =
        tokio::task::spawn_blocking(move || store.set_consent(asked, purposes, &source, cli::unix_now()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::store)?;
    Ok(Json(set))
}

/// The receipt of an erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReceipt {
    /// The person erased (their key before erasure).
    pub person_id: String,
    /// Identifiers erased: only a SHA-256 of each is kept, so their late events are refused
    /// and no trained vector of theirs is used again.
    pub identifiers: usize,
    /// The person's events deleted.
    pub events_deleted: u64,
    /// Other persons' events that carried one of the identifiers, kept without it.
    pub events_redacted: u64,
    /// Identity log entries deleted.
    pub links_deleted: u64,
    /// Identity log entries that also joined other persons' identifiers, kept without the
    /// erased ones.
    pub links_redacted: u64,
    /// Consent records deleted.
    pub consent_records_deleted: u64,
    /// Impressions deleted.
    pub impressions_deleted: u64,
    /// When (RFC 3339).
    pub erased_at: String,
    /// Who asked (the API key's name).
    pub requested_by: String,
}

/// Erases the person: identifiers, events, consent and impressions are deleted from the store
/// (not flagged), no trained vector is used for them again, and every later export leaves
/// them out. Their bytes may survive in the store file's free pages until reused; `server
/// compact` rewrites the file without them.
#[utoipa::path(
    delete,
    path = "/v1/profiles/{identifier_type}/{value}",
    tag = "profiles",
    params(
        ("identifier_type" = String, Path, description = "The identifier's kind"),
        ("value" = String, Path, description = "The identifier"),
    ),
    responses(
        (status = 200, description = "Erased", body = ErasureReceipt),
        (status = 400, description = "Unknown identifier kind or an empty value", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 404, description = "Nobody is known by this identifier", body = ErrorBody),
        (status = 500, description = "The store could not write", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn delete_profile(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path((kind, value)): Path<(String, String)>,
) -> Result<Json<ErasureReceipt>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let asked = identifier(&kind, &value)?;
    // The identifiers every loaded model version links to the person (production, and
    // versions beside it that may know more of them), so their trained persons are
    // suppressed too; but only those the live graph gives this person or nobody: one
    // unlinked since training and now another person's (a shared browser's cookie once
    // trained with its owner's login) stays theirs, with their history and purchases.
    let production = state.current.load_full();
    let versions = state.versions.load_full();
    let person = store.person_ids(std::slice::from_ref(&asked));
    let candidates = person.as_ref().map_or_else(|| vec![asked.clone()], |p| p.identifiers.clone());
    let theirs = |alias: &Identifier| match store.person_ids(std::slice::from_ref(alias)) {
        Some(live) if live.known => person.as_ref().is_some_and(|p| p.key == live.key),
        _ => true,
    };
    let mut also: Vec<Identifier> = Vec::new();
    for serving in std::iter::once(&production).chain(versions.values()) {
        let engine = &serving.model.engine;
        let body = &engine.artifact().body;
        for identifier in &candidates {
            if let Some(user) = engine.lookup(&identifier.key()) {
                also.extend(
                    body.aliases
                        .iter()
                        .filter(|(_, p)| **p == user.0)
                        .filter_map(|(k, _)| Identifier::parse_key(k))
                        .filter(|alias| theirs(alias)),
                );
            }
        }
    }
    also.sort();
    also.dedup();
    let source = super::extract::source(caller);
    let missing = asked.key();
    let receipt = tokio::task::spawn_blocking(move || store.erase(asked, also, &source, cli::unix_now()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::store)?
        .ok_or_else(|| {
            ApiError::at(ErrorCode::UnknownIdentifier, "value", format!("nobody is known by {missing}"))
        })?;
    Ok(Json(ErasureReceipt {
        person_id: receipt.person,
        identifiers: receipt.identifiers,
        events_deleted: receipt.events,
        events_redacted: receipt.events_redacted,
        links_deleted: receipt.links,
        links_redacted: receipt.links_redacted,
        consent_records_deleted: receipt.consent_records,
        impressions_deleted: receipt.impressions,
        erased_at: format_timestamp(receipt.erased_at),
        requested_by: receipt.requested_by,
    }))
}

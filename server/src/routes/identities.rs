//! `POST /v1/identities/link` and `POST /v1/identities/unlink`: explicit merges, and undoing
//! a wrong one. Every link keeps its provenance (the call, the key that made it, when); an
//! unlink gives each side back the events filed under its own identifiers. The rules are the
//! store's and the trainer's (`datasets::identity`); this module only translates.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use datasets::schema::{Identifier, IdentifierKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// One identifier, by kind and value.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierBody {
    /// `user_id`, `loyalty_id`, `pos_customer_id`, `email`, `phone`, `device_id` or `cookie_id`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The value (emails and phones raw or as their SHA-256; they are stored hashed).
    #[schema(pattern = r"\S")]
    pub value: String,
}

impl IdentifierBody {
    /// The identifier, or an error naming `field`.
    pub fn parse(&self, field: &str) -> Result<Identifier, ApiError> {
        let kind = IdentifierKind::parse(&self.kind).ok_or_else(|| {
            ApiError::field(
                &format!("{field}.type"),
                "unknown identifier kind (use user_id, loyalty_id, pos_customer_id, email, phone, device_id or \
                 cookie_id)",
            )
        })?;
        datasets::schema::check_identifier_sent(kind, &self.value)
            .map_err(|reason| ApiError::field(&format!("{field}.value"), reason))?;
        Identifier::new(kind, &self.value)
            .ok_or_else(|| ApiError::field(&format!("{field}.value"), "empty or invalid value"))
    }
}

/// Body of a link or an unlink: two identifiers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairBody {
    /// One identifier.
    pub a: IdentifierBody,
    /// The other.
    pub b: IdentifierBody,
}

/// The answer of a link.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkResponse {
    /// The person both identifiers now belong to.
    pub person_id: String,
    /// Persons merged (0: they were one person already).
    pub merged: usize,
    /// The identity log entry that records the link.
    pub link: u64,
}

/// The answer of an unlink.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnlinkResponse {
    /// The person of `a` now.
    pub person_a: String,
    /// The person of `b` now.
    pub person_b: String,
    /// The identity log entry that records the unlink.
    pub link: u64,
}

fn parse_pair(body: &PairBody) -> Result<(Identifier, Identifier), ApiError> {
    let (a, b) = (body.a.parse("a")?, body.b.parse("b")?);
    if a == b {
        return Err(ApiError::field("b", "the two identifiers are the same"));
    }
    Ok((a, b))
}

/// Links two identifiers into one person, under the identity rules: a merge that would break
/// a merge limit, or join what an unlink separated, is refused.
#[utoipa::path(
    post,
    path = "/v1/identities/link",
    tag = "identities",
    request_body = PairBody,
    responses(
        (status = 200, description = "Linked (or one person already)", body = LinkResponse),
        (status = 400, description = "Malformed JSON or an invalid identifier", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 409, description = "The identity rules refuse the link (the rule is named)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 500, description = "The store could not write", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn link(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    JsonBody(body): JsonBody<PairBody>,
) -> Result<Json<LinkResponse>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let (a, b) = parse_pair(&body)?;
    let source = super::extract::source(caller);
    let placeholder = [&a, &b].into_iter().find(|i| store.is_placeholder(i)).cloned();
    if let Some(placeholder) = placeholder {
        let field = if placeholder == a { "a.value" } else { "b.value" };
        return Err(ApiError::field(field, "a placeholder value identifies nobody and links nothing"));
    }
    let (answer, person) = tokio::task::spawn_blocking(move || {
        let answer = store.link(a.clone(), b, &source, cli::unix_now())?;
        Ok::<_, store::Error>((answer, store.person_ids(std::slice::from_ref(&a))))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::store)?;
    if let Some(refusal) = answer.refused.first() {
        return Err(ApiError::new(
            ErrorCode::LinkRefused,
            format!(
                "refused by the identity rule `{}`: `{}` {} (recorded in the identity log as entry {})",
                refusal.kind.as_str(),
                refusal.identifier.key(),
                refusal.reason,
                answer.seq
            ),
        ));
    }
    Ok(Json(LinkResponse {
        person_id: person.map(|p| p.key).unwrap_or_default(),
        merged: answer.merged,
        link: answer.seq,
    }))
}

/// Undoes a wrong merge: the two identifiers are separated for good, and each side keeps the
/// events and purchases filed under its own identifiers.
#[utoipa::path(
    post,
    path = "/v1/identities/unlink",
    tag = "identities",
    request_body = PairBody,
    responses(
        (status = 200, description = "Separated", body = UnlinkResponse),
        (status = 400, description = "Malformed JSON or an invalid identifier", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 409, description = "The two are not one person", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 500, description = "The store could not write", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn unlink(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    JsonBody(body): JsonBody<PairBody>,
) -> Result<Json<UnlinkResponse>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let (a, b) = parse_pair(&body)?;
    let source = super::extract::source(caller);
    let (answer, person_a, person_b) = tokio::task::spawn_blocking(move || {
        let answer = store.unlink(a.clone(), b.clone(), &source, cli::unix_now())?;
        let key =
            |i: &Identifier| store.person_ids(std::slice::from_ref(i)).map(|p| p.key).unwrap_or_default();
        Ok::<_, store::Error>((answer, key(&a), key(&b)))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::store)?;
    match answer.seq {
        Some(link) => Ok(Json(UnlinkResponse { person_a, person_b, link })),
        None => Err(ApiError::new(
            ErrorCode::NotLinked,
            "the two identifiers are not one person; nothing to unlink",
        )),
    }
}

//! `POST /v1/admin/models/reload`: operations for the `admin` role.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// Body of `POST /v1/admin/models/reload`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadBody {
    /// Artifact to load; default: the current artifact's path (a retrained file in place).
    pub path: Option<String>,
}

/// Answer of a reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadResponse {
    /// The version served before.
    pub previous_version: String,
    /// The version served now.
    pub model_version: String,
    /// Its path.
    pub path: String,
}

/// Loads a new artifact and swaps it in while requests keep flowing; a bad artifact is
/// refused and the old model keeps serving.
#[utoipa::path(
    post,
    path = "/v1/admin/models/reload",
    tag = "admin",
    request_body(content = Option<ReloadBody>, description = "Optional; empty reloads the current path"),
    responses(
        (status = 200, description = "Swapped", body = ReloadResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Artifact refused (the old model keeps serving), or a body that is not an object of the documented fields", body = ErrorBody),
        (status = 500, description = "The new model could not be recorded as active in the data directory; nothing was swapped", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn reload_model(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<ReloadResponse>, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(ErrorCode::of_body_status(rejection.status()), rejection.body_text())
    })?;
    let request: ReloadBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadBody::default()
    } else {
        // `null` is an empty body too, as the document's optional body allows; anything else
        // must be an object (serde would fill the struct from an array as well).
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("reload body: {e}")))?;
        if !(value.is_object() || value.is_null()) {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "reload body: expected a JSON object such as {\"path\": \"...\"}",
            ));
        }
        serde_json::from_value::<Option<ReloadBody>>(value)
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("reload body: {e}")))?
            .unwrap_or_default()
    };
    let previous = state.current.load().model.version().to_string();
    let loaded = state.reload(request.path.map(PathBuf::from)).await.map_err(|e| match e {
        crate::Error::State { .. } => ApiError::new(
            ErrorCode::StateWriteFailed,
            format!("{e}; nothing was swapped, still serving {previous}"),
        ),
        e => ApiError::new(ErrorCode::ModelRejected, format!("{e}; still serving {previous}")),
    })?;
    Ok(Json(ReloadResponse {
        previous_version: previous,
        model_version: loaded.version().to_string(),
        path: loaded.path.display().to_string(),
    }))
}

/// Body of `POST /v1/admin/export`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// A directory on the server to write the export into (created if missing; a previous
    /// export there is replaced).
    pub dir: String,
}

/// Writes what the channels sent, for training: `events.jsonl` (every event of persons who
/// allow personalisation, with the live identity graph's `person_id`), `items.jsonl` (the live
/// catalog) and `manifest.json` (watermark, explicit links and unlinks, the suppression list
/// of erased and non-consenting identifiers). Train on it with `trainer train --from-export DIR`.
#[utoipa::path(
    post,
    path = "/v1/admin/export",
    tag = "admin",
    request_body = ExportBody,
    responses(
        (status = 200, description = "Written; the manifest", body = Object),
        (status = 400, description = "Malformed JSON or an empty directory name", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 500, description = "The export could not be written", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn export(
    State(state): State<Arc<AppState>>,
    super::extract::JsonBody(body): super::extract::JsonBody<ExportBody>,
) -> Result<Json<store::ExportManifest>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    if body.dir.trim().is_empty() {
        return Err(ApiError::field("dir", "name a directory on the server"));
    }
    let catalog = state.current.load().view.catalog.live_items();
    let dir = PathBuf::from(body.dir);
    let manifest = tokio::task::spawn_blocking(move || store.export(&dir, &catalog, cli::unix_now()))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            store::Error::Export { .. } => ApiError::new(ErrorCode::StateWriteFailed, e.to_string()),
            other => ApiError::store(other),
        })?;
    Ok(Json(manifest))
}

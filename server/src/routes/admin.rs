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
    let request: ReloadBody = optional_object(&body, "reload body")?;
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
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExportBody {
    /// The export's name: letters, digits, `.`, `_` and `-`, at most 64; it is written to
    /// `DATA_DIR/exports/NAME`, which must not exist yet (409 `export_exists`). Default: the
    /// time and a random suffix.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: Option<String>,
}

/// Where an export was written, and what it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportResponse {
    /// The directory on the server (pass it to `trainer train --from-export`).
    pub dir: String,
    /// The manifest.
    #[schema(value_type = Object)]
    pub manifest: store::ExportManifest,
}

/// Writes what the channels sent, for training, into `DATA_DIR/exports/NAME`: `events.jsonl`
/// (every event of persons who allow personalisation, with the live identity graph's
/// `person_id`), `items.jsonl` (the live catalog) and `manifest.json` (watermark, explicit
/// links and unlinks, the suppression list of erased and non-consenting identifiers). Train on
/// it with `trainer train --from-export DIR`.
#[utoipa::path(
    post,
    path = "/v1/admin/export",
    tag = "admin",
    request_body(content = Option<ExportBody>, description = "Optional; the default name is the time and a random suffix"),
    responses(
        (status = 200, description = "Written", body = ExportResponse),
        (status = 400, description = "Malformed JSON or an invalid name", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 409, description = "An export of that name exists (exports are never overwritten)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 500, description = "The export could not be written", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn export(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<ExportResponse>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let body = body.map_err(|r| ApiError::new(ErrorCode::of_body_status(r.status()), r.body_text()))?;
    let request: ExportBody = optional_object(&body, "export body")?;
    let name = match request.name {
        Some(name) => {
            let valid = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
                && name != "."
                && name != "..";
            if !valid {
                return Err(ApiError::field("name", "letters, digits, `.`, `_` and `-`, 1 to 64 of them"));
            }
            name
        }
        // The time, and a random suffix: two exports in one second get names of their own.
        None => {
            let at = datasets::schema::format_timestamp(cli::unix_now()).replace(':', "-");
            let suffix = uuid::Uuid::new_v4().simple().to_string();
            format!("{at}-{}", &suffix[..8])
        }
    };
    let Some(data_dir) = &state.config.data_dir else { return Err(ApiError::no_store()) };
    let exports = data_dir.join("exports");
    let dir = exports.join(&name);
    // Claimed by creating it: of two exports under one name, one writes and the other is
    // refused, and an export a training run may be reading is never rewritten.
    let claimed = std::fs::create_dir_all(&exports).and_then(|()| std::fs::create_dir(&dir));
    match claimed {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ApiError::at(
                ErrorCode::ExportExists,
                "name",
                format!(
                    "an export named `{name}` exists: exports are never overwritten; choose another name"
                ),
            ));
        }
        Err(error) => {
            return Err(ApiError::new(
                ErrorCode::StateWriteFailed,
                format!("cannot create {}: {error}", dir.display()),
            ));
        }
    }
    let (catalog, deleted) = {
        let serving = state.current.load();
        (serving.view.catalog.live_items(), serving.view.catalog.deleted_ids())
    };
    let target = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        let written = store.export(&target, &catalog, &deleted, cli::unix_now());
        if written.is_err() {
            // Half an export is none: the name is free again for a retry.
            let _ = std::fs::remove_dir_all(&target);
        }
        written
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        store::Error::Export { .. } => ApiError::new(ErrorCode::StateWriteFailed, e.to_string()),
        other => ApiError::store(other),
    })?;
    Ok(Json(ExportResponse { dir: dir.display().to_string(), manifest }))
}

/// An optional JSON object body: empty or `null` gives the defaults.
fn optional_object<T: serde::de::DeserializeOwned + Default>(body: &[u8], what: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("{what}: {e}")))?;
    if !(value.is_object() || value.is_null()) {
        return Err(ApiError::new(ErrorCode::InvalidBody, format!("{what}: expected a JSON object")));
    }
    Ok(serde_json::from_value::<Option<T>>(value)
        .map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("{what}: {e}")))?
        .unwrap_or_default())
}

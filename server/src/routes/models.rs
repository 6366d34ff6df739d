//! `GET /v1/models`: the model being served.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{self};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A loaded model's self-description.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    /// The model being served.
    pub model_version: String,
    /// Artifact path on the server; shown to admin keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// When it was loaded.
    pub loaded_at: String,
    /// The artifact's metadata: training config, counts, offline metrics, blend weights.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Placements in effect, by name.
    #[schema(value_type = Object)]
    pub placements: serde_json::Value,
}

/// The loaded model: version, training metadata and offline metrics, placements.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    responses(
        (status = 200, description = "The model being served", body = ModelsResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
        (status = 408, description = "Took longer than the request timeout", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn list_models(
    State(state): State<Arc<AppState>>,
    caller: Option<axum::Extension<auth::Caller>>,
) -> Result<Json<ModelsResponse>, ApiError> {
    let is_admin = caller.is_some_and(|c| c.is_admin);
    let serving = state.current.load_full();
    let loaded = &serving.model;
    let metadata = serde_json::to_value(&loaded.engine.artifact().metadata).map_err(ApiError::internal)?;
    let placements = crate::state::placement_configs(&serving.view);
    Ok(Json(ModelsResponse {
        model_version: loaded.version().to_string(),
        path: is_admin.then(|| loaded.path.display().to_string()),
        loaded_at: loaded.loaded_at.clone(),
        metadata,
        placements: serde_json::to_value(placements).map_err(ApiError::internal)?,
    }))
}

//! `GET /v1/models`: the model being served and the registry's other versions;
//! `POST /v1/admin/models`, `…/{version}/promote`, `…/{version}/retire`: the registry
//! (`crate::registry`), role `admin`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::auth::{self};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::registry::Refusal;
use crate::state::{AppState, Loaded};

/// One version of the registry.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersion {
    /// The version id in the artifact's header.
    pub model_version: String,
    /// `production`, `loaded` or `retired`.
    pub state: &'static str,
    /// Artifact path on the server; shown to admin keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// When it was loaded (loaded versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
    /// Offline metrics from training, per model and `blend` (loaded versions).
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
}

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
    /// Every version of the registry (production first), with a data directory.
    pub versions: Vec<ModelVersion>,
}

fn version_of(loaded: &Loaded, state: &'static str, is_admin: bool) -> ModelVersion {
    ModelVersion {
        model_version: loaded.version().to_string(),
        state,
        path: is_admin.then(|| loaded.path.display().to_string()),
        loaded_at: Some(loaded.loaded_at.clone()),
        metrics: serde_json::to_value(&loaded.engine.artifact().metadata.metrics).unwrap_or_default(),
    }
}

/// Every version: production, the others loaded, then the retired ones the store lists.
pub(crate) fn versions(state: &AppState, is_admin: bool) -> Result<Vec<ModelVersion>, ApiError> {
    let production = state.current.load_full();
    let loaded = state.versions.load_full();
    let mut versions = vec![version_of(&production.model, "production", is_admin)];
    versions.extend(loaded.values().map(|s| version_of(&s.model, "loaded", is_admin)));
    if let Some(store) = &state.store {
        for record in store.models().map_err(ApiError::store)? {
            if record.state == store::ModelState::Retired
                && !versions.iter().any(|v| v.model_version == record.version)
            {
                versions.push(ModelVersion {
                    model_version: record.version,
                    state: "retired",
                    path: is_admin.then_some(record.path),
                    loaded_at: None,
                    metrics: serde_json::Value::Object(serde_json::Map::new()),
                });
            }
        }
    }
    Ok(versions)
}

/// The model being served (version, training metadata and offline metrics, placements) and
/// every version of the registry.
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
        versions: versions(&state, is_admin)?,
    }))
}

/// Body of `POST /v1/admin/models`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadModelBody {
    /// An artifact file the server can read.
    #[schema(pattern = r"\S")]
    pub path: String,
}

/// A registry change's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryResponse {
    /// The version changed.
    pub model_version: String,
    /// Every version now.
    pub versions: Vec<ModelVersion>,
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Unknown(version) => ApiError::at(
            ErrorCode::UnknownModel,
            "version",
            format!("no model version `{version}` in the registry"),
        ),
        Refusal::InUse(why) => ApiError::new(ErrorCode::ModelInUse, why),
        Refusal::NoStore => ApiError::no_store(),
        Refusal::Failed(crate::Error::State { .. } | crate::Error::Store(_)) => {
            ApiError::internal("the registry could not be recorded")
        }
        Refusal::Failed(error) => ApiError::new(ErrorCode::ModelRejected, error.to_string()),
    }
}

async fn change(
    state: Arc<AppState>,
    work: impl FnOnce(&Arc<AppState>) -> Result<String, Refusal> + Send + 'static,
) -> Result<Json<RegistryResponse>, ApiError> {
    let answer = Arc::clone(&state);
    // One at a time with reloads and each other: a promote seeds the identity graph before
    // it swaps, and a reload refused meanwhile would seed the old production's persons back.
    let version = tokio::task::spawn_blocking(move || {
        let _serial = state.reload_lock.blocking_lock();
        work(&state)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(refused)?;
    Ok(Json(RegistryResponse { model_version: version, versions: versions(&answer, true)? }))
}

/// Loads an artifact beside production: it answers only the experiment variants that name its
/// version until it is promoted.
#[utoipa::path(
    post,
    path = "/v1/admin/models",
    tag = "models",
    request_body = LoadModelBody,
    responses(
        (status = 200, description = "Loaded and registered", body = RegistryResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 409, description = "It is the production version", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Artifact refused, or a body of the wrong shape", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn load_model(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<LoadModelBody>,
) -> Result<Json<RegistryResponse>, ApiError> {
    let path = PathBuf::from(body.path);
    change(state, move |state| state.load_version(&path).map(|l| l.version().to_string())).await
}

/// Makes a loaded version production (the old production stays loaded: rolling back is
/// promoting it again).
#[utoipa::path(
    post,
    path = "/v1/admin/models/{version}/promote",
    tag = "models",
    params(("version" = String, Path, description = "A loaded model version")),
    responses(
        (status = 200, description = "Promoted", body = RegistryResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 404, description = "No such loaded version", body = ErrorBody),
        (status = 422, description = "It does not fit the placements", body = ErrorBody),
        (status = 500, description = "The new production could not be recorded", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn promote_model(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
) -> Result<Json<RegistryResponse>, ApiError> {
    change(state, move |state| state.promote(&version).map(|l| l.version().to_string())).await
}

/// Unloads a version and marks it retired.
#[utoipa::path(
    post,
    path = "/v1/admin/models/{version}/retire",
    tag = "models",
    params(("version" = String, Path, description = "A registered model version")),
    responses(
        (status = 200, description = "Retired and unloaded", body = RegistryResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "Production, or named by a running or scheduled experiment", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn retire_model(
    State(state): State<Arc<AppState>>,
    Path(version): Path<String>,
) -> Result<Json<RegistryResponse>, ApiError> {
    change(state, move |state| state.retire(&version).map(|()| version.clone())).await
}

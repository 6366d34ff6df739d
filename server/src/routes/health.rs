//! Probes and metrics, open to all: `/health/live`, `/health/ready`, `/metrics`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// Health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `loading` while the model loads at start-up (no version yet), or `draining`
    /// during shutdown.
    pub status: &'static str,
    /// The model being served.
    pub model_version: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
pub(super) async fn live(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health { status: "ok", model_version: state.current.load().model.version().to_string() })
}

/// Readiness: a model is loaded, the server is not shutting down, and its store takes writes
/// (after a commit of unknown outcome it takes none until a restart: `store_failed`).
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "Draining, loading the model at start-up, or the store failed (restart it)", body = Health))
)]
pub(super) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let version = state.current.load().model.version().to_string();
    if state.store.as_ref().is_some_and(|store| store.broken().is_some()) {
        let failed = Health { status: "store_failed", model_version: version };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(failed)).into_response();
    }
    if state.is_ready() {
        Json(Health { status: "ok", model_version: version }).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "draining", model_version: version }))
            .into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format", body = String)))]
pub(super) async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

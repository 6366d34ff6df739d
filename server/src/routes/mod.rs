//! The HTTP API by resource: each module holds its wire types and handlers; this one
//! assembles the router (auth, limits, timeouts, metrics) and the OpenAPI document.
//! Handlers only translate: the rules live in `models::serve::rules`, scoring in
//! `models::serve::engine`, and scoring runs on the rayon pool, off the async executor.

mod admin;
mod dashboard;
mod events;
mod experiments;
mod exposures;
mod extract;
mod health;
mod identities;
mod items;
mod models;
mod profiles;
mod recommendations;
#[cfg(test)]
mod tests;

pub use admin::{ExportBody, ExportResponse, ReloadBody, ReloadResponse};
pub use events::{EventResult, EventsBody, EventsResponse, RefusedLink};
pub use experiments::{
    AnalysisBody, ChannelBody, ComparisonBody, EstimateBody, ExperimentBody, ExperimentResponse,
    ExperimentsResponse, MetricName, ReportResponse, SrmBody, VariantBody, VariantReport, report_response,
};
pub use exposures::{ExposureBody, ExposuresBody, ExposuresResponse};
pub use extract::{JsonBody, QueryParams};
pub use health::Health;
pub use identities::{IdentifierBody, LinkResponse, PairBody, UnlinkResponse};
pub use items::{ItemDeleted, ItemResult, ItemsBody, ItemsResponse, SimilarQuery};
pub use models::{LoadModelBody, ModelVersion, ModelsResponse, RegistryResponse};
pub use profiles::{ErasureReceipt, ProfileResponse};
pub use recommendations::{
    BecauseItem, ExperimentTag, Explanation, FiltersBody, IdentifiersDoc, ModelContribution, RecommendBody,
    RecommendationResponse, RecommendedItem, UserQuery,
};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Denied, Role};
use crate::config::ServerConfig;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::telemetry;

async fn require(state: Arc<AppState>, role: Role, mut request: Request, next: Next) -> Response {
    let presented = auth::presented_key(request.headers()).map(std::borrow::Cow::into_owned);
    match auth::authorize(&state.keys, presented.as_deref(), role) {
        Ok(key) => {
            let is_admin = key.is_none_or(|key| key.roles.contains(&Role::Admin));
            let name = key.map_or_else(|| "open".to_string(), |key| key.name.clone());
            request.extensions_mut().insert(auth::Caller { is_admin, name });
            next.run(request).await
        }
        Err(Denied::Unauthenticated) => {
            let mut response = ApiError::new(
                ErrorCode::Unauthenticated,
                "a valid API key is required (Authorization: Bearer <key>, X-API-Key, or Basic with the key as \
                 password)",
            )
            .into_response();
            // RFC 9110 §11.6.1: a 401 names a scheme; Basic makes a browser ask (the dashboard).
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"omnirec\", charset=\"UTF-8\""),
            );
            response
        }
        Err(Denied::Forbidden) => {
            ApiError::new(ErrorCode::Forbidden, format!("this key lacks the `{}` role", role.as_str()))
                .into_response()
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "omnirec", description = "Omnichannel recommendations: one person across web, app, email, store and call centre."),
    modifiers(&SecurityAddon),
    tags(
        (name = "recommendations", description = "Ranked items for a person, a context, or an item (role `read`)"),
        (name = "events", description = "What happened on every channel (role `ingest`)"),
        (name = "catalog", description = "Catalog changes on top of the model (role `ingest`)"),
        (name = "profiles", description = "One person across channels (role `read`); consent (role `ingest`); erasure (role `admin`)"),
        (name = "identities", description = "Explicit links and unlinks of identifiers (role `admin`)"),
        (name = "models", description = "The model being served and the registry of loaded versions (role `read`; changes: role `admin`)"),
        (name = "experiments", description = "A/B experiments on the stitched person: definitions (role `admin`), reports (role `read`), reported exposures (role `ingest`)"),
        (name = "admin", description = "Operations (role `admin`)"),
        (name = "health", description = "Probes and metrics (no key)")
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes by required role: `read`, `ingest`, `admin`, and open (no key).
fn route_groups() -> [OpenApiRouter<Arc<AppState>>; 4] {
    [
        OpenApiRouter::new()
            .routes(routes!(recommendations::user_recommendations))
            .routes(routes!(recommendations::context_recommendations))
            .routes(routes!(items::similar_items))
            .routes(routes!(profiles::get_profile))
            .routes(routes!(models::list_models))
            .routes(routes!(experiments::list_experiments))
            .routes(routes!(experiments::get_experiment))
            .routes(routes!(experiments::experiment_report)),
        OpenApiRouter::new()
            .routes(routes!(events::post_events))
            .routes(routes!(items::put_items))
            .routes(routes!(items::delete_item))
            .routes(routes!(profiles::put_consent))
            .routes(routes!(exposures::post_exposures)),
        OpenApiRouter::new()
            .routes(routes!(admin::reload_model))
            .routes(routes!(admin::export))
            .routes(routes!(identities::link))
            .routes(routes!(identities::unlink))
            .routes(routes!(profiles::delete_profile))
            .routes(routes!(dashboard::dashboard))
            .routes(routes!(experiments::put_experiment))
            .routes(routes!(experiments::stop_experiment))
            .routes(routes!(models::load_model))
            .routes(routes!(models::promote_model))
            .routes(routes!(models::retire_model)),
        OpenApiRouter::new()
            .routes(routes!(health::live))
            .routes(routes!(health::ready))
            .routes(routes!(health::metrics_text)),
    ]
}

/// The OpenAPI document of the whole API as a server with `config` runs it: key security
/// only when `secured`, placements, channels and `k` as configured.
pub fn openapi(config: &ServerConfig, secured: bool) -> serde_json::Value {
    let [read, ingest, admin, open] = route_groups();
    let doc = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(read)
        .merge(ingest)
        .merge(admin)
        .merge(open)
        .split_for_parts()
        .1;
    as_served(doc, config, secured)
}

/// The generated document, made exact for this server: key security only when keys are
/// configured (an open server never answers 401 or 403, so those go too); `placement` and
/// `channel` restricted to the configured placements and the channels they serve; `k` to the
/// largest `max_k` among them.
fn as_served(mut doc: utoipa::openapi::OpenApi, config: &ServerConfig, secured: bool) -> serde_json::Value {
    if !secured {
        open_document(&mut doc);
    }
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    let placements = config.placements();
    let names: Vec<&String> = placements.keys().collect();
    let channels: std::collections::BTreeSet<&String> =
        placements.values().filter_map(|p| p.channel.as_ref()).collect();
    let max_k = placements.values().map(|p| p.max_k).max().unwrap_or(1);
    let restrict = |schema: &mut serde_json::Value, name: &str| match name {
        "placement" => schema["enum"] = serde_json::json!(names),
        "channel" => schema["enum"] = serde_json::json!(channels),
        "k" => schema["maximum"] = serde_json::json!(max_k),
        _ => {}
    };
    // `get_mut` and `pointer_mut` only: indexing a JSON object mutably inserts what is missing.
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let operations =
            paths.values_mut().filter_map(|item| item.as_object_mut()).flat_map(|item| item.values_mut());
        for operation in operations {
            let parameters = operation.get_mut("parameters").and_then(|p| p.as_array_mut());
            for parameter in parameters.into_iter().flatten() {
                let name = parameter.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
                if let Some(schema) = parameter.get_mut("schema") {
                    restrict(schema, &name);
                }
            }
        }
    }
    let properties =
        doc.pointer_mut("/components/schemas/RecommendBody/properties").and_then(|p| p.as_object_mut());
    if let Some(properties) = properties {
        for name in ["placement", "channel", "k"] {
            if let Some(schema) = properties.get_mut(name) {
                restrict(schema, name);
                // These fields are nullable (`null` means not given): null stays allowed.
                if let Some(values) = schema.get_mut("enum").and_then(|e| e.as_array_mut()) {
                    values.push(serde_json::Value::Null);
                }
            }
        }
    }
    doc
}

/// Drops key security from `doc`: no scheme, no requirement, no 401/403 answers.
fn open_document(doc: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = doc.components.as_mut() {
        components.security_schemes.clear();
    }
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = None;
            operation.responses.responses.retain(|status, _| status != "401" && status != "403");
        }
    }
}

/// The application: every route with auth, limits, timeouts and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let guard = |role: Role| {
        let state = Arc::clone(&state);
        middleware::from_fn(move |request: Request, next: Next| {
            require(Arc::clone(&state), role, request, next)
        })
    };
    let [read, ingest, admin, open] = route_groups();
    let timeout = Duration::from_millis(state.config.request_timeout_ms);
    let timeout_layer = TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout);
    // Reloads are exempt from the request timeout: reading a large artifact takes as long as
    // it takes, and a reload cut short would be thrown away. Writes are too: the store keeps
    // a write cut short, and a client told 408 would retry it (a purchase sent without an
    // `event_id` stored twice). A write answers once its commit is durable, or failed.
    let (app, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(read.route_layer(guard(Role::Read)).layer(timeout_layer))
        .merge(
            ingest
                .route_layer(guard(Role::Ingest))
                .layer(DefaultBodyLimit::max(state.config.live.max_ingest_body_bytes)),
        )
        .merge(admin.route_layer(guard(Role::Admin)))
        .merge(open.layer(timeout_layer))
        .split_for_parts();
    let doc = Arc::new(as_served(doc, &state.config, !state.keys.is_empty()));
    app.route("/openapi.json", axum::routing::get(move || std::future::ready(Json(doc.as_ref().clone()))))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route; see /openapi.json") })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::map_response(move |response: Response| async move {
            // The timeout layer answers with an empty body; give it the usual error shape.
            if response.status() == StatusCode::REQUEST_TIMEOUT {
                ApiError::new(
                    ErrorCode::Timeout,
                    format!("the request took longer than {} ms", timeout.as_millis()),
                )
                .into_response()
            } else {
                response
            }
        }))
        .layer(middleware::from_fn(telemetry::track))
        .with_state(state)
}

/// The answer to any request while the model loads at start-up: `/health/live` 200 and
/// `/health/ready` 503, both with status `loading`; everything else 503 `loading` with
/// `Retry-After: 1`.
pub fn while_loading(path: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let loading = || axum::Json(health::Health { status: "loading", model_version: String::new() });
    match path {
        "/health/live" => return loading().into_response(),
        "/health/ready" => return (axum::http::StatusCode::SERVICE_UNAVAILABLE, loading()).into_response(),
        _ => {}
    }
    let mut response = crate::error::ApiError::new(
        crate::error::ErrorCode::Loading,
        "the server is loading its model; try again shortly",
    )
    .into_response();
    response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    response
}

/// Marks the state as draining (readiness turns false) — called when shutdown starts.
pub fn start_draining(state: &AppState) {
    state.draining.store(true, Ordering::Relaxed);
}

//! The HTTP API: request and response types, handlers, and the router with its OpenAPI
//! document. Handlers only translate: the rules live in `models::rules`, scoring in
//! `models::engine`, and scoring runs on the rayon pool, off the async executor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use datasets::ItemIdx;
use datasets::schema::{Identifier, IdentifierKind};
use models::engine::Answer;
use models::rules::{Filters, PlacementKind, Request as RuleRequest, RuleError, Source};
use serde::{Deserialize, Serialize};
use tower_http::timeout::TimeoutLayer;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Denied, Role};
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Loaded};
use crate::telemetry;

/// A JSON body whose rejections become [`ApiError`]s naming the problem.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(match &rejection {
                JsonRejection::JsonDataError(_) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", rejection.body_text())
                }
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", rejection.body_text())
                }
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type", rejection.body_text())
                }
                _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", rejection.body_text())
                }
                _ => ApiError::new(rejection.status(), "bad_body", rejection.body_text()),
            }),
        }
    }
}

/// Query parameters whose rejections become [`ApiError`]s.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state).await.map(|q| QueryParams(q.0)).map_err(
            |rejection: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", rejection.body_text())
            },
        )
    }
}

/// Query of `GET /v1/users/{user_id}/recommendations`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Number of items (default: the placement's `k`; at most its `max_k`).
    #[param(minimum = 1, maximum = 10000)]
    pub k: Option<usize>,
    /// Placement name (default: the channel's placement, else the default placement).
    pub placement: Option<String>,
    /// The asking channel (`web`, `app`, `email`, `store`, …).
    pub channel: Option<String>,
    /// Only items under these category paths or prefixes, comma-separated.
    pub category: Option<String>,
    /// Item ids never to return, comma-separated.
    pub exclude: Option<String>,
    /// Store for store-stock placements.
    pub store_id: Option<String>,
}

/// Query of `GET /v1/items/{item_id}/similar`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// Number of items.
    #[param(minimum = 1, maximum = 10000)]
    pub k: Option<usize>,
    /// Placement name (default: the first similar-items placement).
    pub placement: Option<String>,
    /// The asking channel.
    pub channel: Option<String>,
    /// The viewer, when known (their purchases are excluded).
    pub user_id: Option<String>,
    /// Only items under these category paths or prefixes, comma-separated.
    pub category: Option<String>,
    /// Item ids never to return, comma-separated.
    pub exclude: Option<String>,
    /// Store for store-stock placements.
    pub store_id: Option<String>,
}

/// Extra filters of a request.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FiltersBody {
    /// Only items under these category paths or prefixes.
    pub categories: Vec<String>,
    /// Never items under these category paths or prefixes.
    pub exclude_categories: Vec<String>,
    /// Only these brands.
    pub brands: Vec<String>,
    /// Lowest price.
    pub min_price: Option<f32>,
    /// Highest price.
    pub max_price: Option<f32>,
}

impl From<FiltersBody> for Filters {
    fn from(body: FiltersBody) -> Self {
        Filters {
            categories: body.categories,
            exclude_categories: body.exclude_categories,
            brands: body.brands,
            min_price: body.min_price,
            max_price: body.max_price,
        }
    }
}

/// The shape of `identifiers` for the OpenAPI document (the body itself is read as a map, so
/// an unknown kind can be named in the error): each kind at most once, each value with
/// something besides white space (a phone with at least one digit).
#[derive(ToSchema)]
#[schema(as = Identifiers)]
#[expect(dead_code, reason = "describes the wire format only")]
#[serde(deny_unknown_fields)]
pub struct IdentifiersDoc {
    /// The shop's own customer id.
    #[schema(required = false, pattern = r"\S")]
    user_id: String,
    /// Loyalty card number.
    #[schema(required = false, pattern = r"\S")]
    loyalty_id: String,
    /// Point-of-sale customer number.
    #[schema(required = false, pattern = r"\S")]
    pos_customer_id: String,
    /// E-mail address (hashed on arrival) or its SHA-256.
    #[schema(required = false, pattern = r"\S")]
    email: String,
    /// Phone number (hashed on arrival) or its SHA-256.
    #[schema(required = false, pattern = r"[0-9]")]
    phone: String,
    /// App device id.
    #[schema(required = false, pattern = r"\S")]
    device_id: String,
    /// Web cookie id.
    #[schema(required = false, pattern = r"\S")]
    cookie_id: String,
}

/// Body of `POST /v1/recommendations`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendBody {
    /// Whatever identifies the person, by kind: `user_id`, `loyalty_id`, `pos_customer_id`,
    /// `email`, `phone`, `device_id`, `cookie_id`. Raw emails and phones are hashed.
    #[schema(value_type = IdentifiersDoc)]
    pub identifiers: BTreeMap<String, String>,
    /// The asking channel.
    pub channel: Option<String>,
    /// Placement name.
    pub placement: Option<String>,
    /// Number of items.
    #[schema(minimum = 1, maximum = 10000)]
    pub k: Option<usize>,
    /// The item being viewed: never returned; the anchor of similar-item placements; a
    /// signal for personalisation.
    pub item_id: Option<String>,
    /// Items in the cart: excluded (unless the placement says otherwise) and used as signal.
    pub cart: Vec<String>,
    /// Item ids never to return.
    pub exclude: Vec<String>,
    /// Store for store-stock placements.
    pub store_id: Option<String>,
    /// Extra filters.
    pub filters: FiltersBody,
}

/// One model's part in an item's score.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelContribution {
    /// Model name.
    pub model: &'static str,
    /// Weighted z-score.
    pub contribution: f32,
}

/// An item of the person's history behind a recommendation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BecauseItem {
    /// Its id.
    pub item_id: String,
    /// Whether the person bought it (else they interacted with it).
    pub bought: bool,
}

/// Where an item came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    /// `personalized`, `similar`, `favourite_categories`, `popular` or `pinned`.
    pub source: &'static str,
    /// A short sentence for people (“because you bought …”).
    pub text: String,
    /// Model contributions, largest first.
    pub models: Vec<ModelContribution>,
    /// History items that support it (item-kNN).
    pub because: Vec<BecauseItem>,
    /// Merchandising boost factor applied, when not 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boost: Option<f32>,
}

/// One recommended item.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendedItem {
    /// Item id.
    pub item_id: String,
    /// Display title.
    pub title: String,
    /// Score (comparable within one answer); null for a pinned item outside the ranking.
    pub score: Option<f32>,
    /// Where it came from.
    pub explanation: Explanation,
}

/// A recommendation answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationResponse {
    /// Attribution token: send it back with the events that follow from this answer.
    pub recommendation_id: String,
    /// The model version that answered.
    pub model_version: String,
    /// The placement used.
    pub placement: String,
    /// The placement's channel.
    pub channel: Option<String>,
    /// Whether the answer is personalised (the blend answered for this person, session or
    /// item).
    pub personalized: bool,
    /// Why not: `unknown_user`, `no_history`, or `no_models` (the placement's weights leave
    /// no model to blend).
    pub reason: Option<&'static str>,
    /// Best first.
    pub items: Vec<RecommendedItem>,
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
}

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

/// Health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `draining` during shutdown.
    pub status: &'static str,
    /// The model being served.
    pub model_version: String,
}

/// Who is asking about whom.
enum Person {
    Nobody,
    Key(String),
    Identifiers(BTreeMap<String, String>),
}

/// A recommendation request in one shape, whichever endpoint it came from.
struct Ask {
    endpoint: PlacementKind,
    person: Person,
    placement: Option<String>,
    channel: Option<String>,
    k: Option<usize>,
    item_id: Option<String>,
    cart: Vec<String>,
    exclude: Vec<String>,
    store_id: Option<String>,
    filters: Filters,
}

fn split_list(raw: Option<String>) -> Vec<String> {
    raw.map(|r| r.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

/// Runs CPU work on the rayon pool and waits for it without blocking the executor.
async fn on_pool<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = tx.send(result);
    });
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        _ => Err(ApiError::internal("a scoring task panicked")),
    }
}

/// Picks the placement for `ask`.
fn choose_placement<'a>(
    loaded: &'a Loaded,
    default: &str,
    ask: &Ask,
) -> Result<&'a models::rules::Placement, ApiError> {
    let wanted_kind = ask.endpoint;
    let placement = match (&ask.placement, &ask.channel) {
        (Some(name), _) => loaded.placements.get(name).ok_or_else(|| ApiError {
            field: Some("placement".into()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_placement",
                format!(
                    "placement `{name}` is not configured (have: {})",
                    loaded.placements.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?,
        (None, Some(channel)) => loaded
            .placements
            .values()
            .find(|p| p.config.channel.as_deref() == Some(channel.as_str()) && p.config.kind == wanted_kind)
            .ok_or_else(|| {
                ApiError::field("channel", format!("no placement serves channel `{channel}`; name one"))
            })?,
        (None, None) => match wanted_kind {
            PlacementKind::Personal => loaded
                .placements
                .get(default)
                .ok_or_else(|| ApiError::internal(format!("default placement `{default}` missing")))?,
            PlacementKind::Similar => {
                loaded.placements.values().find(|p| p.config.kind == PlacementKind::Similar).ok_or_else(
                    || ApiError::field("placement", "no similar-items placement is configured; name one"),
                )?
            }
        },
    };
    if let (Some(channel), Some(served)) = (&ask.channel, &placement.config.channel)
        && channel != served
    {
        return Err(ApiError::field(
            "channel",
            format!("placement `{}` serves channel `{served}`, not `{channel}`", placement.name),
        ));
    }
    if wanted_kind == PlacementKind::Similar && placement.config.kind != PlacementKind::Similar {
        return Err(ApiError::field(
            "placement",
            format!("placement `{}` is not a similar-items placement", placement.name),
        ));
    }
    if placement.config.kind == PlacementKind::Similar && ask.item_id.is_none() {
        return Err(ApiError::field(
            "item_id",
            format!("placement `{}` shows similar items: item_id is required", placement.name),
        ));
    }
    Ok(placement)
}

fn find_user(loaded: &Loaded, person: &Person) -> Result<Option<datasets::UserIdx>, ApiError> {
    let engine = &loaded.engine;
    match person {
        Person::Nobody => Ok(None),
        Person::Key(key) => Ok(engine.lookup(key)),
        Person::Identifiers(ids) => {
            let mut parsed = Vec::with_capacity(ids.len());
            for (kind, value) in ids {
                let field = format!("identifiers.{kind}");
                let kind = IdentifierKind::parse(kind).ok_or_else(|| {
                    ApiError::field(
                        &field,
                        "unknown identifier kind (use user_id, loyalty_id, pos_customer_id, email, phone, device_id \
                         or cookie_id)",
                    )
                })?;
                let identifier = Identifier::new(kind, value)
                    .ok_or_else(|| ApiError::field(&field, "empty or invalid value"))?;
                parsed.push(identifier);
            }
            // The most trustworthy identifier that leads to a person wins.
            parsed.sort_by_key(|i| i.kind.index());
            Ok(parsed.iter().find_map(|identifier| engine.lookup(&identifier.key())))
        }
    }
}

/// Answers `ask` against `loaded` at time `now`.
fn respond(
    loaded: &Loaded,
    default_placement: &str,
    ask: Ask,
    now: i64,
) -> Result<(RecommendationResponse, telemetry::Labels), ApiError> {
    let placement = choose_placement(loaded, default_placement, &ask)?;
    let body = &loaded.engine.artifact().body;
    let user = find_user(loaded, &ask.person)?;
    let item = |id: &String| body.items.get(id).map(ItemIdx);
    let viewed = match &ask.item_id {
        None => None,
        Some(id) => match item(id) {
            Some(idx) => Some(idx),
            None if placement.config.kind == PlacementKind::Similar => {
                return Err(ApiError {
                    field: Some("item_id".into()),
                    ..ApiError::new(
                        StatusCode::NOT_FOUND,
                        "unknown_item",
                        format!("item `{id}` is not in the catalog"),
                    )
                });
            }
            None => None,
        },
    };
    // Items the catalog does not know cannot be recommended anyway.
    let cart: Vec<ItemIdx> = ask.cart.iter().filter_map(item).collect();
    let exclude: Vec<ItemIdx> = ask.exclude.iter().filter_map(item).collect();
    let request = RuleRequest {
        user,
        k: ask.k.unwrap_or(placement.config.k),
        now,
        viewed,
        cart: &cart,
        exclude: &exclude,
        store_id: ask.store_id.as_deref(),
        filters: &ask.filters,
    };
    let answer = loaded.engine.answer(placement, request).map_err(|e| match e {
        models::Error::Rule(rule) => {
            let field = match rule {
                RuleError::InvalidK { .. } => "k",
                RuleError::MissingStore(_) | RuleError::UnknownStore(_) => "store_id",
                RuleError::PriceRange { .. } => "filters.min_price",
            };
            ApiError::field(field, rule.to_string())
        }
        other => ApiError::internal(other),
    })?;
    for (model, reason) in &answer.dropped {
        tracing::warn!(model, reason, placement = %placement.name, "a blend member failed and was left out");
        metrics::counter!("omnirec_model_failures_total", "model" => *model).increment(1);
    }
    let labels = telemetry::Labels {
        placement: placement.name.clone(),
        fallback: answer.fallback.map(|f| f.as_str()),
    };
    let response = RecommendationResponse {
        recommendation_id: uuid::Uuid::now_v7().to_string(),
        model_version: loaded.version().to_string(),
        placement: placement.name.clone(),
        channel: placement.config.channel.clone(),
        personalized: answer.personalized,
        reason: answer.fallback.map(|f| f.as_str()),
        items: render_items(loaded, &answer, viewed),
    };
    Ok((response, labels))
}

fn render_items(loaded: &Loaded, answer: &Answer, viewed: Option<ItemIdx>) -> Vec<RecommendedItem> {
    let body = &loaded.engine.artifact().body;
    let id = |item: ItemIdx| body.items.id(item.0).unwrap_or_default().to_string();
    let title = |item: ItemIdx| {
        body.catalog
            .get(item.get())
            .map(|i| if i.title.is_empty() { i.item_id.clone() } else { i.title.clone() })
    };
    answer
        .items
        .iter()
        .map(|a| {
            let text = match a.source {
                Source::Pinned => "featured".to_string(),
                Source::Popular => "popular right now".to_string(),
                Source::FavouriteCategories => {
                    let category =
                        body.catalog.get(a.item.get()).and_then(|i| i.top_category()).unwrap_or("");
                    format!("popular in {category}, a category you like")
                }
                Source::Similar => {
                    format!(
                        "similar to {}",
                        viewed.and_then(title).unwrap_or_else(|| "the item viewed".into())
                    )
                }
                Source::Personalized => match (a.contributions.first(), a.because.first()) {
                    (Some(("item_knn", _)), Some(&(item, bought))) => format!(
                        "because you {} {}",
                        if bought { "bought" } else { "looked at" },
                        title(item).unwrap_or_default()
                    ),
                    _ => {
                        let top: Vec<&str> =
                            a.contributions.iter().filter(|c| c.1 > 0.0).take(2).map(|c| c.0).collect();
                        if top.is_empty() {
                            "picked for you".to_string()
                        } else {
                            format!("picked for you by {}", top.join(" and "))
                        }
                    }
                },
            };
            RecommendedItem {
                item_id: id(a.item),
                title: title(a.item).unwrap_or_default(),
                score: a.score.is_finite().then_some(a.score),
                explanation: Explanation {
                    source: a.source.as_str(),
                    text,
                    models: a
                        .contributions
                        .iter()
                        .map(|&(model, contribution)| ModelContribution { model, contribution })
                        .collect(),
                    because: a
                        .because
                        .iter()
                        .map(|&(item, bought)| BecauseItem { item_id: id(item), bought })
                        .collect(),
                    boost: (a.boost != 1.0).then_some(a.boost),
                },
            }
        })
        .collect()
}

/// Scores `ask` on the pool and turns the answer into a response.
async fn answer(state: Arc<AppState>, ask: Ask) -> Result<Response, ApiError> {
    let loaded = state.current.load_full();
    let default = state.config.default_placement.clone();
    let now = telemetry::now();
    let (response, labels) = on_pool(move || respond(&loaded, &default, ask, now)).await??;
    let mut response = Json(response).into_response();
    response.extensions_mut().insert(labels);
    Ok(response)
}

/// Recommendations for a person known by id.
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/recommendations",
    tag = "recommendations",
    params(("user_id" = String, Path, description = "A user id, person key, or `kind:value` identifier"), UserQuery),
    responses(
        (status = 200, description = "Ranked items", body = RecommendationResponse),
        (status = 400, description = "Invalid parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
        (status = 404, description = "Unknown placement", body = ErrorBody),
        (status = 408, description = "Took longer than the request timeout", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn user_recommendations(
    State(state): State<Arc<AppState>>,
    Path(user_id): Path<String>,
    QueryParams(query): QueryParams<UserQuery>,
) -> Result<Response, ApiError> {
    let ask = Ask {
        endpoint: PlacementKind::Personal,
        person: Person::Key(user_id),
        placement: query.placement,
        channel: query.channel,
        k: query.k,
        item_id: None,
        cart: Vec::new(),
        exclude: split_list(query.exclude),
        store_id: query.store_id,
        filters: Filters { categories: split_list(query.category), ..Filters::default() },
    };
    answer(state, ask).await
}

/// Recommendations for a context: any identifiers, the item viewed, the cart, filters.
#[utoipa::path(
    post,
    path = "/v1/recommendations",
    tag = "recommendations",
    request_body = RecommendBody,
    responses(
        (status = 200, description = "Ranked items", body = RecommendationResponse),
        (status = 400, description = "Malformed JSON or invalid field", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
        (status = 404, description = "Unknown placement, or unknown item for a similar-items placement", body = ErrorBody),
        (status = 408, description = "Took longer than the request timeout", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape (field named in the message)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn context_recommendations(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<RecommendBody>,
) -> Result<Response, ApiError> {
    let person =
        if body.identifiers.is_empty() { Person::Nobody } else { Person::Identifiers(body.identifiers) };
    let ask = Ask {
        endpoint: PlacementKind::Personal,
        person,
        placement: body.placement,
        channel: body.channel,
        k: body.k,
        item_id: body.item_id,
        cart: body.cart,
        exclude: body.exclude,
        store_id: body.store_id,
        filters: body.filters.into(),
    };
    answer(state, ask).await
}

/// Items similar to one item (“you may also like”), under the same rules.
#[utoipa::path(
    get,
    path = "/v1/items/{item_id}/similar",
    tag = "recommendations",
    params(("item_id" = String, Path, description = "The item"), SimilarQuery),
    responses(
        (status = 200, description = "Ranked similar items", body = RecommendationResponse),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
        (status = 404, description = "Unknown item or placement", body = ErrorBody),
        (status = 408, description = "Took longer than the request timeout", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn similar_items(
    State(state): State<Arc<AppState>>,
    Path(item_id): Path<String>,
    QueryParams(query): QueryParams<SimilarQuery>,
) -> Result<Response, ApiError> {
    let ask = Ask {
        endpoint: PlacementKind::Similar,
        person: query.user_id.map_or(Person::Nobody, Person::Key),
        placement: query.placement,
        channel: query.channel,
        k: query.k,
        item_id: Some(item_id),
        cart: Vec::new(),
        exclude: split_list(query.exclude),
        store_id: query.store_id,
        filters: Filters { categories: split_list(query.category), ..Filters::default() },
    };
    answer(state, ask).await
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
async fn list_models(
    State(state): State<Arc<AppState>>,
    caller: Option<axum::Extension<auth::Caller>>,
) -> Result<Json<ModelsResponse>, ApiError> {
    let is_admin = caller.is_some_and(|c| c.is_admin);
    let loaded = state.current.load_full();
    let metadata = serde_json::to_value(&loaded.engine.artifact().metadata).map_err(ApiError::internal)?;
    let placements: BTreeMap<&String, &models::rules::PlacementConfig> =
        loaded.placements.iter().map(|(name, p)| (name, &p.config)).collect();
    Ok(Json(ModelsResponse {
        model_version: loaded.version().to_string(),
        path: is_admin.then(|| loaded.path.display().to_string()),
        loaded_at: loaded.loaded_at.clone(),
        metadata,
        placements: serde_json::to_value(placements).map_err(ApiError::internal)?,
    }))
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
        (status = 422, description = "Artifact refused; the old model keeps serving", body = ErrorBody),
        (status = 500, description = "The new model could not be recorded as active in the data directory; nothing was swapped", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn reload_model(
    State(state): State<Arc<AppState>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<ReloadResponse>, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_body" };
        ApiError::new(status, code, rejection.body_text())
    })?;
    let request: ReloadBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("reload body: {e}"))
        })?
    };
    let previous = state.current.load().version().to_string();
    let loaded = state.reload(request.path.map(PathBuf::from)).await.map_err(|e| match e {
        crate::Error::State { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "state_write_failed",
            format!("{e}; nothing was swapped, still serving {previous}"),
        ),
        e => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "model_rejected",
            format!("{e}; still serving {previous}"),
        ),
    })?;
    Ok(Json(ReloadResponse {
        previous_version: previous,
        model_version: loaded.version().to_string(),
        path: loaded.path.display().to_string(),
    }))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
async fn live(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health { status: "ok", model_version: state.current.load().version().to_string() })
}

/// Readiness: a model is loaded and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses((status = 200, body = Health), (status = 503, description = "Draining", body = Health))
)]
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let version = state.current.load().version().to_string();
    if state.is_ready() {
        Json(Health { status: "ok", model_version: version }).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "draining", model_version: version }))
            .into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format", body = String)))]
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn require(state: Arc<AppState>, role: Role, mut request: Request, next: Next) -> Response {
    match auth::authorize(&state.keys, auth::presented_key(request.headers()), role) {
        Ok(key) => {
            let is_admin = key.is_none_or(|key| key.roles.contains(&Role::Admin));
            request.extensions_mut().insert(auth::Caller { is_admin });
            next.run(request).await
        }
        Err(Denied::Unauthenticated) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
        )
        .into_response(),
        Err(Denied::Forbidden) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key lacks the `{}` role", role.as_str()),
        )
        .into_response(),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "omnirec", description = "Omnichannel recommendations: one person across web, app, email, store and call centre."),
    modifiers(&SecurityAddon),
    tags(
        (name = "recommendations", description = "Ranked items for a person, a context, or an item (role `read`)"),
        (name = "models", description = "The model being served (role `read`)"),
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

/// The routes by required role: `read`, `admin`, and open (no key).
fn route_groups() -> [OpenApiRouter<Arc<AppState>>; 3] {
    [
        OpenApiRouter::new()
            .routes(routes!(user_recommendations))
            .routes(routes!(context_recommendations))
            .routes(routes!(similar_items))
            .routes(routes!(list_models)),
        OpenApiRouter::new().routes(routes!(reload_model)),
        OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready)).routes(routes!(metrics_text)),
    ]
}

/// The OpenAPI document of the whole API as this server runs it: with key security when
/// keys are configured; without it (no security scheme, no 401/403 answers) on an open
/// server, where no request is ever refused for its key.
pub fn openapi(secured: bool) -> utoipa::openapi::OpenApi {
    let [read, admin, open] = route_groups();
    let doc = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(read)
        .merge(admin)
        .merge(open)
        .split_for_parts()
        .1;
    as_served(doc, secured)
}

fn as_served(mut doc: utoipa::openapi::OpenApi, secured: bool) -> utoipa::openapi::OpenApi {
    if secured {
        return doc;
    }
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
    doc
}

/// The application: every route with auth, limits, timeouts and metrics.
pub fn router(state: Arc<AppState>) -> Router {
    let guard = |role: Role| {
        let state = Arc::clone(&state);
        middleware::from_fn(move |request: Request, next: Next| {
            require(Arc::clone(&state), role, request, next)
        })
    };
    let [read, admin, open] = route_groups();
    let timeout = Duration::from_millis(state.config.request_timeout_ms);
    let timeout_layer = TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout);
    // Reloads are exempt from the request timeout: reading a large artifact takes as long as
    // it takes, and a reload cut short would be thrown away.
    let (app, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(read.route_layer(guard(Role::Read)).layer(timeout_layer))
        .merge(admin.route_layer(guard(Role::Admin)))
        .merge(open.layer(timeout_layer))
        .split_for_parts();
    let doc = Arc::new(as_served(doc, !state.keys.is_empty()));
    app.route("/openapi.json", axum::routing::get(move || std::future::ready(Json(doc.as_ref().clone()))))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /openapi.json")
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::map_response(move |response: Response| async move {
            // The timeout layer answers with an empty body; give it the usual error shape.
            if response.status() == StatusCode::REQUEST_TIMEOUT {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
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

/// Marks the state as draining (readiness turns false) — called when shutdown starts.
pub fn start_draining(state: &AppState) {
    state.draining.store(true, Ordering::Relaxed);
}

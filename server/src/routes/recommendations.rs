//! `GET /v1/users/{user_id}/recommendations` and `POST /v1/recommendations`: ranked items for
//! a person or a context. Handlers translate; placement choice, rules and scoring live in
//! `models`, and scoring runs on the rayon pool.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use datasets::ItemIdx;
use datasets::schema::{Identifier, IdentifierKind};
use models::serve::engine::Answer;
use models::serve::rules::{
    ChoiceError, Filters, PlacementAsk, PlacementKind, Request as RuleRequest, RuleError, Source,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{JsonBody, QueryParams};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::pool::on_pool;
use crate::state::{AppState, Serving};
use crate::telemetry;
use models::serve::catalog::View;

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
    /// Leave out items shown to the person on any channel within this many hours.
    #[param(minimum = 0)]
    pub not_shown_within_hours: Option<f64>,
}

/// Extra filters of a request.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FiltersBody {
    /// Only items under these category paths or prefixes.
    #[schema(max_items = 100)]
    pub categories: Vec<String>,
    /// Never items under these category paths or prefixes.
    #[schema(max_items = 100)]
    pub exclude_categories: Vec<String>,
    /// Only these brands.
    #[schema(max_items = 100)]
    pub brands: Vec<String>,
    /// Lowest price.
    pub min_price: Option<f32>,
    /// Highest price.
    pub max_price: Option<f32>,
}

impl TryFrom<FiltersBody> for Filters {
    type Error = ApiError;

    fn try_from(body: FiltersBody) -> Result<Self, ApiError> {
        Ok(Filters {
            categories: at_most(body.categories, "filters.categories", MAX_FILTER_ENTRIES)?,
            exclude_categories: at_most(
                body.exclude_categories,
                "filters.exclude_categories",
                MAX_FILTER_ENTRIES,
            )?,
            brands: at_most(body.brands, "filters.brands", MAX_FILTER_ENTRIES)?,
            min_price: body.min_price,
            max_price: body.max_price,
        })
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

/// A count as JSON Schema's `integer` means it: `5` and `5.0` alike; a fraction or a
/// negative number is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    match Option::<f64>::deserialize(deserializer)? {
        None => Ok(None),
        // Above usize::MAX saturates: it is refused later as above max_k, with that message.
        Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(Some(n as usize)),
        Some(n) => Err(serde::de::Error::custom(format!("expected a whole number of items, found {n}"))),
    }
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
    #[serde(deserialize_with = "whole_number")]
    pub k: Option<usize>,
    /// The item being viewed: never returned; the anchor of similar-item placements; a
    /// signal for personalisation.
    pub item_id: Option<String>,
    /// Items in the cart: excluded (unless the placement says otherwise) and used as signal.
    #[schema(max_items = 1000)]
    pub cart: Vec<String>,
    /// Item ids never to return.
    #[schema(max_items = 1000)]
    pub exclude: Vec<String>,
    /// Store for store-stock placements.
    pub store_id: Option<String>,
    /// Extra filters.
    pub filters: FiltersBody,
    /// Leave out items shown to the person on any channel within this many hours.
    #[schema(minimum = 0)]
    pub not_shown_within_hours: Option<f64>,
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
    /// Why not: `unknown_user`, `no_history`, `no_models` (the placement's weights leave no
    /// model to blend), `no_consent` (the person withdrew consent to personalisation), or
    /// `not_personalized` (an experiment's popular control answered).
    pub reason: Option<&'static str>,
    /// The person as the live identity graph knows them (with a data directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The experiment and variant that answered, when the request was part of one (send
    /// `recommendation_id` back with what follows: the report attributes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentTag>,
    /// Best first.
    pub items: Vec<RecommendedItem>,
}

/// The experiment and variant that answered a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentTag {
    /// The experiment's name.
    pub name: String,
    /// The variant served.
    pub variant: String,
}

/// What answers a request besides the production model: the experiments and the other loaded
/// model versions, as they were when the request arrived.
pub(super) struct Lab {
    pub(super) experiments: Arc<Vec<Arc<models::experiment::Experiment>>>,
    pub(super) versions: Arc<BTreeMap<String, Arc<Serving>>>,
}

/// Who is asking about whom.
pub(super) enum Person {
    Nobody,
    Key(String),
    Identifiers(BTreeMap<String, String>),
}

/// A recommendation request in one shape, whichever endpoint it came from.
pub(super) struct Ask {
    pub(super) endpoint: PlacementKind,
    pub(super) person: Person,
    pub(super) placement: Option<String>,
    pub(super) channel: Option<String>,
    pub(super) k: Option<usize>,
    pub(super) item_id: Option<String>,
    pub(super) cart: Vec<String>,
    pub(super) exclude: Vec<String>,
    pub(super) store_id: Option<String>,
    pub(super) filters: Filters,
    pub(super) not_shown_within_hours: Option<f64>,
}

/// The comma-separated list of query parameter `field`, at most `max` entries.
pub(super) fn split_list(raw: Option<String>, field: &str, max: usize) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = raw
        .map(|r| r.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    at_most(list, field, max)
}

/// The most categories or brands a request may filter on: each is checked against every
/// item a page considers (up to the whole catalog when few items pass).
pub(super) const MAX_FILTER_ENTRIES: usize = 100;
/// The most item ids a request may exclude or put in its cart.
pub(super) const MAX_ITEM_LIST: usize = 1_000;

/// `list`, refused (naming `field`) when it holds more than `max` entries.
pub(super) fn at_most(list: Vec<String>, field: &str, max: usize) -> Result<Vec<String>, ApiError> {
    if list.len() > max {
        return Err(ApiError::field(field, format!("at most {max} entries (got {})", list.len())));
    }
    Ok(list)
}

/// Picks the placement for `ask` (the rules are `models::serve::rules::choose`'s); a
/// variant's compiled placement is never chosen, by name, channel or kind (only through
/// the experiment's assignment).
fn choose_placement<'a>(
    view: &'a View,
    default: &str,
    ask: &Ask,
) -> Result<&'a models::serve::rules::Placement, ApiError> {
    if let Some(name) = ask.placement.as_deref().filter(|n| crate::lab::is_variant_placement(n)) {
        return Err(ApiError::at(
            ErrorCode::UnknownPlacement,
            "placement",
            format!("unknown placement `{name}`"),
        ));
    }
    let wanted = PlacementAsk {
        kind: ask.endpoint,
        name: ask.placement.as_deref(),
        channel: ask.channel.as_deref(),
        has_item: ask.item_id.is_some(),
    };
    models::serve::rules::choose(&view.placements, default, wanted, crate::lab::is_variant_placement).map_err(
        |e| match e {
            ChoiceError::UnknownPlacement { .. } => {
                ApiError::at(ErrorCode::UnknownPlacement, e.field(), e.to_string())
            }
            ChoiceError::DefaultMissing(_) => ApiError::internal(e),
            _ => ApiError::field(e.field(), e.to_string()),
        },
    )
}

/// The identifiers a request names: a path key (a user id, a person key or `kind:value`), or
/// the body's identifiers by kind.
fn identifiers_of(person: &Person) -> Result<Vec<Identifier>, ApiError> {
    match person {
        Person::Nobody => Ok(Vec::new()),
        // Refused as the body's identifiers are: an empty or unusable key names nobody.
        Person::Key(key) => {
            // What is served is kept under the person's key: bounded as any new key.
            datasets::schema::check_id(key)
                .and_then(|()| datasets::schema::check_id_length(key))
                .map_err(|reason| ApiError::field("user_id", reason))?;
            match Identifier::parse_key(key) {
                Some(identifier) => Ok(vec![identifier]),
                None => Err(ApiError::field("user_id", format!("`{key}` is empty or no usable identifier"))),
            }
        }
        Person::Identifiers(ids) => parse_identifiers(ids),
    }
}

/// The body's identifiers by kind, each checked: a known kind, a usable value.
pub(super) fn parse_identifiers(ids: &BTreeMap<String, String>) -> Result<Vec<Identifier>, ApiError> {
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
        datasets::schema::check_identifier_sent(kind, value)
            .map_err(|reason| ApiError::field(&field, reason))?;
        let identifier =
            Identifier::new(kind, value).ok_or_else(|| ApiError::field(&field, "empty or invalid value"))?;
        parsed.push(identifier);
    }
    Ok(parsed)
}

/// Hours as whole seconds, for a field that must be a number of hours >= 0.
fn hours(field: &str, hours: Option<f64>) -> Result<Option<i64>, ApiError> {
    match hours {
        None => Ok(None),
        Some(h) if h.is_finite() && (0.0..=87_600.0).contains(&h) => Ok(Some((h * 3_600.0) as i64)),
        Some(h) => {
            Err(ApiError::field(field, format!("must be a number of hours between 0 and 87600, found {h}")))
        }
    }
}

/// Answers `ask` against `production` (or the model and placement of the person's
/// experiment variant) at time `now`, recording what it shows in `store`.
fn respond(
    production: &Arc<Serving>,
    lab: &Lab,
    store: Option<&store::Store>,
    default_placement: &str,
    ask: Ask,
    now: i64,
) -> Result<(RecommendationResponse, telemetry::Labels), ApiError> {
    let asked = choose_placement(&production.view, default_placement, &ask)?;
    let identifiers = identifiers_of(&ask.person)?;
    let enrolled = match store {
        Some(store) if !identifiers.is_empty() => crate::lab::enrol(
            &lab.experiments,
            production,
            &lab.versions,
            store,
            &asked.name,
            &identifiers,
            now,
        )
        .map_err(ApiError::store)?,
        _ => None,
    };
    let not_shown_within = hours("not_shown_within_hours", ask.not_shown_within_hours)?;
    let shown_since = |placement: &models::serve::rules::Placement| {
        let cap_window =
            placement.config.frequency_cap.as_ref().map(|cap| (cap.window_hours * 3_600.0) as i64);
        not_shown_within.max(cap_window).map(|window| now.saturating_sub(window))
    };
    // Every loaded version's knowledge of what the person bought counts, whichever answers.
    let loaded: Vec<&Serving> =
        std::iter::once(&**production).chain(lab.versions.values().map(|v| &**v)).collect();
    // The variant's model and placement, if the person is in an experiment and allows being
    // measured; else production and the placement asked for.
    let variant = match &enrolled {
        Some(enrolled) => match enrolled.serving.view.placements.get(&enrolled.placement) {
            Some(placement) => {
                let who = crate::live::person(
                    &enrolled.serving,
                    &loaded,
                    store,
                    &identifiers,
                    shown_since(placement),
                )?;
                who.analytics.then_some((enrolled, placement, who))
            }
            None => None,
        },
        None => None,
    };
    let (serving, placement, who, enrolled) = match variant {
        Some((enrolled, placement, who)) => (&*enrolled.serving, placement, who, Some(enrolled)),
        None => {
            let who = crate::live::person(production, &loaded, store, &identifiers, shown_since(asked))?;
            (&**production, asked, who, None)
        }
    };
    let view = &serving.view;
    let engine = &serving.model.engine;
    let catalog = &view.catalog;
    let item = |id: &String| catalog.get(id).filter(|i| !catalog.is_deleted(i.get()));
    let viewed = match &ask.item_id {
        None => None,
        Some(id) => match item(id) {
            Some(idx) => Some(idx),
            None if placement.config.kind == PlacementKind::Similar => {
                return Err(ApiError::at(
                    ErrorCode::UnknownItem,
                    "item_id",
                    format!("item `{id}` is not in the catalog"),
                ));
            }
            None => None,
        },
    };
    // Items the catalog does not know cannot be recommended anyway.
    let cart: Vec<ItemIdx> = ask.cart.iter().filter_map(item).collect();
    let exclude: Vec<ItemIdx> = ask.exclude.iter().filter_map(item).collect();
    let request = RuleRequest {
        k: ask.k.unwrap_or(placement.config.k),
        now,
        viewed,
        cart: &cart,
        exclude: &exclude,
        store_id: ask.store_id.as_deref(),
        filters: &ask.filters,
        not_shown_within,
    };
    let answer = engine.answer(view, placement, request, &who.person, Some(&serving.model.live)).map_err(
        |e| match e {
            models::Error::Rule(rule) => {
                let field = match rule {
                    RuleError::InvalidK { .. } => "k",
                    RuleError::MissingStore(_) | RuleError::UnknownStore(_) => "store_id",
                    RuleError::PriceRange { .. } => "filters.min_price",
                };
                ApiError::field(field, rule.to_string())
            }
            other => ApiError::internal(other),
        },
    )?;
    for (model, reason) in &answer.dropped {
        tracing::warn!(model, reason, placement = %placement.name, "a blend member failed and was left out");
        metrics::counter!("omnirec_model_failures_total", "model" => *model).increment(1);
    }
    let labels =
        telemetry::Labels { placement: asked.name.clone(), fallback: answer.fallback.map(|f| f.as_str()) };
    let recommendation_id = uuid::Uuid::now_v7().to_string();
    let items = render_items(serving, &answer, viewed);
    let tag = enrolled.map(crate::lab::Enrolled::tag);
    if let (Some(store), Some(key)) = (store, &who.shown_under) {
        store.record_served(
            store::Impression {
                id: recommendation_id.clone(),
                person: key.clone(),
                channel: ask.channel.clone().or_else(|| asked.config.channel.clone()).unwrap_or_default(),
                placement: Some(asked.name.clone()),
                items: items.iter().map(|i| i.item_id.clone()).collect(),
                at: now,
            },
            tag.clone(),
        );
    }
    if let Some(tag) = &tag {
        metrics::counter!("omnirec_experiment_exposures_total", "experiment" => tag.experiment.clone(), "variant" => tag.variant.clone())
            .increment(1);
    }
    let response = RecommendationResponse {
        recommendation_id,
        model_version: serving.model.version().to_string(),
        placement: asked.name.clone(),
        channel: asked.config.channel.clone(),
        personalized: answer.personalized,
        reason: answer.fallback.map(|f| f.as_str()),
        person_id: store.and(who.key),
        experiment: tag.map(|t| ExperimentTag { name: t.experiment, variant: t.variant }),
        items,
    };
    Ok((response, labels))
}

fn render_items(serving: &Serving, answer: &Answer, viewed: Option<ItemIdx>) -> Vec<RecommendedItem> {
    let catalog = &serving.view.catalog;
    let id = |item: ItemIdx| catalog.id(item).unwrap_or_default().to_string();
    let title = |item: ItemIdx| {
        catalog.item(item.get()).map(|i| if i.title.is_empty() { i.item_id.clone() } else { i.title.clone() })
    };
    answer
        .items
        .iter()
        .map(|a| {
            let text = match a.source {
                Source::Pinned => "featured".to_string(),
                Source::Popular => "popular right now".to_string(),
                Source::FavouriteCategories => {
                    let category = catalog.item(a.item.get()).and_then(|i| i.top_category()).unwrap_or("");
                    format!("popular in {category}, a category you like")
                }
                Source::Similar => {
                    format!(
                        "similar to {}",
                        viewed.and_then(title).unwrap_or_else(|| "the item viewed".into())
                    )
                }
                Source::Personalized => match a.because.first() {
                    Some(&(item, bought)) => format!(
                        "because you {} {}",
                        if bought { "bought" } else { "looked at" },
                        title(item).unwrap_or_default()
                    ),
                    _ => {
                        let top: Vec<&str> = a
                            .contributions
                            .iter()
                            .filter(|c| c.1 > 0.0)
                            .take(2)
                            .map(|c| c.0.as_str())
                            .collect();
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
                        .map(|&(model, contribution)| ModelContribution {
                            model: model.as_str(),
                            contribution,
                        })
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
pub(super) async fn answer(state: Arc<AppState>, ask: Ask) -> Result<Response, ApiError> {
    // The asking channel is kept with what is served (impressions, exposures).
    if let Some(channel) = &ask.channel {
        datasets::schema::check_name(channel).map_err(|reason| ApiError::field("channel", reason))?;
    }
    let serving = state.current.load_full();
    let lab = Lab { experiments: state.experiments.load_full(), versions: state.versions.load_full() };
    let default = state.config.default_placement.clone();
    let now = cli::unix_now();
    let store = state.store.clone();
    // The answer is written out as JSON where it was made: its strings are freed by the
    // thread that allocated them, and one growing buffer takes the bytes (axum's `Json`
    // starts at 128 bytes and writes through `io::Write` piece by piece).
    let (body, labels) = on_pool(move || {
        let (response, labels) = respond(&serving, &lab, store.as_deref(), &default, ask, now)?;
        let mut body = Vec::with_capacity(JSON_CAPACITY);
        serde_json::to_writer(&mut body, &response).map_err(ApiError::internal)?;
        Ok::<_, ApiError>((body, labels))
    })
    .await??;
    let mut response =
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    response.extensions_mut().insert(labels);
    Ok(response)
}

/// Bytes reserved for an answer's JSON: a dozen items with their explanations fit.
const JSON_CAPACITY: usize = 8 * 1024;

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
pub(super) async fn user_recommendations(
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
        exclude: split_list(query.exclude, "exclude", MAX_ITEM_LIST)?,
        store_id: query.store_id,
        filters: Filters {
            categories: split_list(query.category, "category", MAX_FILTER_ENTRIES)?,
            ..Filters::default()
        },
        not_shown_within_hours: query.not_shown_within_hours,
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
pub(super) async fn context_recommendations(
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
        cart: at_most(body.cart, "cart", MAX_ITEM_LIST)?,
        exclude: at_most(body.exclude, "exclude", MAX_ITEM_LIST)?,
        store_id: body.store_id,
        filters: body.filters.try_into()?,
        not_shown_within_hours: body.not_shown_within_hours,
    };
    answer(state, ask).await
}

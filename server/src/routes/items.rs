//! `GET /v1/items/{item_id}/similar`: items like one item, under the same rules.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use models::serve::rules::{Filters, PlacementKind};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::QueryParams;
use super::recommendations::{Ask, Person, RecommendationResponse, answer, split_list};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

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
pub(super) async fn similar_items(
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

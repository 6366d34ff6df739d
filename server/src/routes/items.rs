//! `GET /v1/items/{item_id}/similar`: items like one item, under the same rules; and the
//! catalog changes, `PUT /v1/items` and `DELETE /v1/items/{item_id}`, applied on top of the
//! loaded model and kept in the store.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use datasets::load::MAX_STORES;
use models::serve::rules::{Filters, PlacementKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::QueryParams;
use super::recommendations::{
    Ask, MAX_FILTER_ENTRIES, MAX_ITEM_LIST, Person, RecommendationResponse, answer, split_list,
};
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
        exclude: split_list(query.exclude, "exclude", MAX_ITEM_LIST)?,
        store_id: query.store_id,
        filters: Filters {
            categories: split_list(query.category, "category", MAX_FILTER_ENTRIES)?,
            ..Filters::default()
        },
        not_shown_within_hours: None,
    };
    answer(state, ask).await
}

/// Body of `PUT /v1/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsBody {
    /// The changes, one to `live.max_items_per_request` (default 1,000): each an object with
    /// `item_id` and any of `title`, `description`, `categories`, `brand`, `tags`, `price`,
    /// `in_stock`, `store_stock` (store id to units), `available_from`, `available_until`.
    /// A field sent replaces the item's, `null` clears it, a field left out keeps its value.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub items: Vec<serde_json::Value>,
}

/// What became of one item change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResult {
    /// The item.
    pub item_id: Option<String>,
    /// `created`, `updated` or `rejected`.
    pub status: &'static str,
    /// The field at fault, for rejected changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer of `PUT /v1/items`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsResponse {
    /// Items created.
    pub created: usize,
    /// Items changed.
    pub updated: usize,
    /// Changes refused.
    pub rejected: usize,
    /// One result per change, in order.
    pub results: Vec<ItemResult>,
}

/// The answer of `DELETE /v1/items/{item_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDeleted {
    /// The item.
    pub item_id: String,
    /// `deleted`.
    pub status: &'static str,
}

/// Creates or changes catalog items; they take effect on the next request (a new item is
/// recommendable at once through the content model and popularity), and a restart keeps
/// them, on top of whichever model is loaded.
#[utoipa::path(
    put,
    path = "/v1/items",
    tag = "catalog",
    request_body = ItemsBody,
    responses(
        (status = 200, description = "Every change answered: created, updated or rejected (with the field)", body = ItemsResponse),
        (status = 400, description = "Malformed JSON, no items, or more than the batch limit", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the ingest role", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 500, description = "The store could not write; nothing was kept", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn put_items(
    State(state): State<Arc<AppState>>,
    super::extract::JsonBody(body): super::extract::JsonBody<ItemsBody>,
) -> Result<axum::Json<ItemsResponse>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    super::extract::batch_size("items", body.items.len(), state.config.live.max_items_per_request)?;
    super::extract::objects_only("items", &body.items)?;
    // Held until the changes are in the served view (the store applies them before it
    // answers), so the next upload counts the stores this one added.
    let _catalog = state.catalog_lock.lock().await;
    let serving = state.current.load_full();
    let catalog = &serving.view.catalog;
    // Stores this upload adds to those the served catalog has stock in.
    let mut new_stores: HashSet<String> = HashSet::new();
    let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(body.items.len());
    let mut changes = Vec::new();
    let mut positions = Vec::new();
    for value in body.items {
        let refused = |item_id: Option<String>, field: &str, message: &str| ItemResult {
            item_id,
            status: "rejected",
            field: Some(field.to_string()),
            message: Some(message.to_string()),
        };
        let serde_json::Value::Object(patch) = value else {
            results.push(Some(refused(None, "", "expected an object with item_id and catalog fields")));
            continue;
        };
        let max = datasets::schema::MAX_ID_BYTES;
        let item_id = match patch.get("item_id") {
            Some(serde_json::Value::String(id)) if !id.trim().is_empty() && id.len() <= max => {
                id.trim().to_string()
            }
            // A whole number JSON holds exactly; a fraction or a larger one reads as a float,
            // whose text two ids can share.
            Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => {
                let reason =
                    format!("missing, empty, longer than {max} bytes, or a number that is not whole");
                results.push(Some(refused(None, "item_id", &reason)));
                continue;
            }
        };
        if let Err(reason) =
            datasets::schema::check_id(&item_id).and_then(|()| datasets::schema::check_id_length(&item_id))
        {
            results.push(Some(refused(Some(item_id), "item_id", &reason)));
            continue;
        }
        // The stores the item would name: beyond the bound, refused here (a patch the store
        // refuses anyway is left to it, which names the field).
        let current = catalog.get(&item_id).and_then(|i| catalog.item(i.get())).cloned();
        let preview = current
            .unwrap_or_else(|| datasets::schema::Item { item_id: item_id.clone(), ..Default::default() });
        if let Ok(patched) = datasets::load::patch_item(preview, &patch) {
            let added: Vec<&String> = patched
                .store_stock
                .iter()
                .filter(|&(store, &units)| {
                    units > 0 && !catalog.index().has_store(store) && !new_stores.contains(store)
                })
                .map(|(store, _)| store)
                .collect();
            if catalog.index().n_stores() + new_stores.len() + added.len() > MAX_STORES {
                let message =
                    format!("the catalog would have stock in more than {MAX_STORES} distinct stores");
                results.push(Some(refused(Some(item_id), "store_stock", &message)));
                continue;
            }
            new_stores.extend(added.into_iter().cloned());
        }
        let base = model_item(&state, &item_id);
        positions.push(results.len());
        results.push(None);
        changes.push(store::ItemChange::Upsert { item_id, base: base.map(Box::new), patch });
    }
    let ids: Vec<String> = changes
        .iter()
        .map(|c| match c {
            store::ItemChange::Upsert { item_id, .. } | store::ItemChange::Delete { item_id, .. } => {
                item_id.clone()
            }
        })
        .collect();
    let outcomes = if changes.is_empty() {
        Vec::new()
    } else {
        tokio::task::spawn_blocking(move || store.change_items(changes, cli::unix_now()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::store)?
    };
    for ((position, item_id), outcome) in positions.into_iter().zip(ids).zip(outcomes) {
        let (status, field, message) = match outcome {
            store::ItemOutcome::Created => ("created", None, None),
            store::ItemOutcome::Updated => ("updated", None, None),
            store::ItemOutcome::Rejected { field, reason } => ("rejected", Some(field), Some(reason)),
            store::ItemOutcome::Deleted | store::ItemOutcome::NotFound => ("updated", None, None),
        };
        results[position] = Some(ItemResult { item_id: Some(item_id), status, field, message });
    }
    let results: Vec<ItemResult> = results.into_iter().flatten().collect();
    let count = |status: &str| results.iter().filter(|r| r.status == status).count();
    Ok(axum::Json(ItemsResponse {
        created: count("created"),
        updated: count("updated"),
        rejected: count("rejected"),
        results,
    }))
}

/// The item as a loaded model version's catalog has it, production's first: what a change
/// starts from while the store holds none of it (an item only a version beside production
/// was trained with is that version's, not a new one).
fn model_item(state: &AppState, item_id: &str) -> Option<datasets::schema::Item> {
    let production = state.current.load_full();
    let versions = state.versions.load_full();
    std::iter::once(&production).chain(versions.values()).find_map(|serving| {
        let catalog = serving.model.engine.catalog();
        catalog.get(item_id).and_then(|i| catalog.item(i.get())).cloned()
    })
}

/// Deletes a catalog item: it is never served again, by any placement.
#[utoipa::path(
    delete,
    path = "/v1/items/{item_id}",
    tag = "catalog",
    params(("item_id" = String, Path, description = "The item")),
    responses(
        (status = 200, description = "Deleted", body = ItemDeleted),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the ingest role", body = ErrorBody),
        (status = 404, description = "No such item (or deleted already)", body = ErrorBody),
        (status = 500, description = "The store could not write", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn delete_item(
    State(state): State<Arc<AppState>>,
    Path(item_id): Path<String>,
) -> Result<axum::Json<ItemDeleted>, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let in_model = model_item(&state, &item_id).is_some();
    let change = store::ItemChange::Delete { item_id: item_id.clone(), in_model };
    let outcome = tokio::task::spawn_blocking(move || store.change_items(vec![change], cli::unix_now()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::store)?;
    match outcome.first() {
        Some(store::ItemOutcome::Deleted) => Ok(axum::Json(ItemDeleted { item_id, status: "deleted" })),
        _ => Err(ApiError::at(
            crate::error::ErrorCode::UnknownItem,
            "item_id",
            format!("item `{item_id}` is not in the catalog"),
        )),
    }
}

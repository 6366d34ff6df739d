//! The per-request part: filters, the request itself, and the eligibility test (hard rules)
//! with boosts.

use datasets::ItemIdx;

use crate::error::Result;
use crate::serve::catalog::LiveCatalog;

use super::compile::price_within;
use super::*;

/// Filters a request adds to its placement's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Only items under these category paths or prefixes (empty: all).
    pub categories: Vec<String>,
    /// Never items under these category paths or prefixes.
    pub exclude_categories: Vec<String>,
    /// Only these brands (empty: all).
    pub brands: Vec<String>,
    /// Lowest price.
    pub min_price: Option<f32>,
    /// Highest price.
    pub max_price: Option<f32>,
}

/// The per-request part of the rules.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// How many items.
    pub k: usize,
    /// The time the rules are evaluated at (seconds since the epoch).
    pub now: i64,
    /// The item being viewed (never recommended; the anchor of similar-item placements).
    pub viewed: Option<ItemIdx>,
    /// Items in the cart.
    pub cart: &'a [ItemIdx],
    /// Items the caller does not want.
    pub exclude: &'a [ItemIdx],
    /// The store, for store stock.
    pub store_id: Option<&'a str>,
    /// Extra filters.
    pub filters: &'a Filters,
    /// Leave out items shown to the person on any channel within this many seconds.
    pub not_shown_within: Option<i64>,
}

impl<'a> Request<'a> {
    /// A request for `k` items at time `now` under `filters`, with nothing viewed, no cart,
    /// no exclusions and no store.
    pub fn new(k: usize, now: i64, filters: &'a Filters) -> Self {
        Request {
            k,
            now,
            viewed: None,
            cart: &[],
            exclude: &[],
            store_id: None,
            filters,
            not_shown_within: None,
        }
    }
}

/// Why a request cannot be answered under its placement (the caller's fault).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// `k` is 0 or above the placement's maximum.
    #[error("k must be between 1 and {max} for placement `{placement}`, got {k}")]
    InvalidK {
        /// The placement.
        placement: String,
        /// The `k` asked for.
        k: usize,
        /// The placement's `max_k`.
        max: usize,
    },
    /// The placement needs a store and the request has none.
    #[error("placement `{0}` shows store stock: store_id is required")]
    MissingStore(String),
    /// The store is not in the catalog.
    #[error("store_id `{0}` has no stock of any item")]
    UnknownStore(String),
    /// A request filter is invalid.
    #[error("filters.min_price {min} is above filters.max_price {max}")]
    PriceRange {
        /// Lowest.
        min: f32,
        /// Highest.
        max: f32,
    },
}

/// The eligibility test of one request under one placement.
pub struct Eligibility<'a> {
    pub(super) placement: &'a Placement,
    pub(super) catalog: &'a LiveCatalog,
    pub(super) request: Request<'a>,
    pub(super) consumed: &'a [(u32, i64)],
    /// Cart, explicit exclusions, the viewed item and items over the frequency cap, sorted.
    pub(super) excluded: Vec<u32>,
}

impl<'a> Eligibility<'a> {
    /// Prepares the test; `consumed` is the person's consumed items (sorted by item) and
    /// `shown` what was shown to them lately on any channel (item, time), for the placement's
    /// frequency cap and the request's `not_shown_within`.
    pub fn new(
        placement: &'a Placement,
        catalog: &'a LiveCatalog,
        request: Request<'a>,
        consumed: &'a [(u32, i64)],
        shown: &[(ItemIdx, i64)],
    ) -> Result<Self, RuleError> {
        let config = &placement.config;
        if request.k == 0 || request.k > config.max_k {
            return Err(RuleError::InvalidK {
                placement: placement.name.clone(),
                k: request.k,
                max: config.max_k,
            });
        }
        if config.in_stock == StockRule::Store {
            let store = request.store_id.ok_or_else(|| RuleError::MissingStore(placement.name.clone()))?;
            if !catalog.index().has_store(store) {
                return Err(RuleError::UnknownStore(store.to_string()));
            }
        }
        if let (Some(min), Some(max)) = (request.filters.min_price, request.filters.max_price)
            && min > max
        {
            return Err(RuleError::PriceRange { min, max });
        }
        let mut excluded: Vec<u32> =
            request.exclude.iter().chain(request.viewed.iter()).map(|i| i.0).collect();
        if config.exclude_cart {
            excluded.extend(request.cart.iter().map(|i| i.0));
        }
        excluded.extend(over_the_cap(config.frequency_cap.as_ref(), request, shown));
        excluded.sort_unstable();
        excluded.dedup();
        Ok(Eligibility { placement, catalog, request, consumed, excluded })
    }

    /// Whether item `i` may be shown.
    pub fn allows(&self, i: usize) -> bool {
        let Some(item) = self.catalog.item(i) else { return false };
        let config = &self.placement.config;
        let request = &self.request;
        let filters = request.filters;
        self.placement.passes(i)
            && !self.catalog.is_deleted(i)
            && self.excluded.binary_search(&(i as u32)).is_err()
            && !self.consumed_now(i)
            && (!config.respect_availability || self.catalog.index().available_at(i, request.now))
            && (config.in_stock != StockRule::Store
                || request
                    .store_id
                    .and_then(|s| self.catalog.index().store_stock.get(s))
                    .is_some_and(|set| set.contains(i)))
            && (filters.categories.is_empty() || in_categories(item, &filters.categories))
            && !in_categories(item, &filters.exclude_categories)
            && (filters.brands.is_empty() || item.brand.as_ref().is_some_and(|b| filters.brands.contains(b)))
            && ((filters.min_price.is_none() && filters.max_price.is_none())
                || price_within(item, filters.min_price, filters.max_price))
    }

    /// Whether the purchase exclusion holds item `i` back at the request's time.
    fn consumed_now(&self, i: usize) -> bool {
        if !self.placement.config.exclude_purchased {
            return false;
        }
        match self.consumed.binary_search_by_key(&(i as u32), |&(item, _)| item) {
            Err(_) => false,
            Ok(at) => match self.placement.repurchase_after.get(i).copied().flatten() {
                None => true,
                // A purchase of unknown time (0: a plain interactions file without
                // timestamps) may be recent: it stays excluded.
                Some(window) => {
                    let bought = self.consumed[at].1;
                    bought <= 0 || self.request.now < bought.saturating_add(window)
                }
            },
        }
    }

    /// Multiplies scores by the placement's boosts, after shifting them so the lowest
    /// finite score is just above zero (a factor must lift every item it matches).
    pub fn apply_boosts(&self, scores: &mut [f32]) {
        let Some((lo, floor)) = self.boost_shift(scores.iter().copied()) else { return };
        for (i, s) in scores.iter_mut().enumerate() {
            self.boost(i, s, lo, floor);
        }
    }

    /// [`Eligibility::apply_boosts`] on (item, score) pairs (the candidate stage's): the shift
    /// is to the lowest of these scores.
    pub fn apply_boosts_sparse(&self, scores: &mut [(u32, f32)]) {
        let Some((lo, floor)) = self.boost_shift(scores.iter().map(|&(_, s)| s)) else { return };
        for (i, s) in scores.iter_mut() {
            self.boost(*i as usize, s, lo, floor);
        }
    }

    /// The lowest finite score and the floor above it, when the placement boosts anything.
    fn boost_shift(&self, scores: impl Iterator<Item = f32>) -> Option<(f32, f32)> {
        if self.placement.boost.is_empty() {
            return None;
        }
        let (lo, hi) = scores
            .filter(|s| s.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| (lo.min(s), hi.max(s)));
        lo.is_finite().then(|| (lo, ((hi - lo) * 1e-3).max(1e-6)))
    }

    fn boost(&self, i: usize, s: &mut f32, lo: f32, floor: f32) {
        if s.is_finite() {
            *s = (*s - lo + floor) * self.placement.boost.get(i).copied().unwrap_or(1.0);
        }
    }
}

/// Items the frequency cap or the request's `not_shown_within` holds back: shown at least
/// `max_impressions` times within the cap's window, or at all within the request's.
fn over_the_cap(cap: Option<&FrequencyCap>, request: Request<'_>, shown: &[(ItemIdx, i64)]) -> Vec<u32> {
    let mut held = Vec::new();
    if let Some(within) = request.not_shown_within {
        held.extend(
            shown.iter().filter(|(_, at)| *at >= request.now.saturating_sub(within)).map(|(i, _)| i.0),
        );
    }
    if let Some(cap) = cap {
        let since = request.now.saturating_sub((cap.window_hours * 3_600.0) as i64);
        let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        for (item, _) in shown.iter().filter(|(_, at)| *at >= since) {
            *counts.entry(item.0).or_default() += 1;
        }
        held.extend(counts.into_iter().filter(|&(_, n)| n >= cap.max_impressions).map(|(i, _)| i));
    }
    held
}

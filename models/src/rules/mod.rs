//! Placements and business rules: which items may be shown where, how merchandising shifts
//! the ranking, and how a ranked list is cut to the answer.
//!
//! A [`PlacementConfig`] is what an operator writes (one TOML table per placement). It is
//! compiled against an artifact's catalog into a [`Placement`], which precomputes everything
//! that does not change per request (static filters, boost factors, repurchase windows,
//! pinned items), so the request path only does lookups. [`Request`] carries the per-request
//! part: the person, the cart, explicit exclusions, filters, the store and the time.
//!
//! The rules, in the order they apply:
//!
//! 1. **Eligibility** (hard): category include/exclude and price range (placement and
//!    request), stock (online, at the request's store, or ignored), the availability window,
//!    and exclusions: items the person consumed (for ever, or for a per-category window so
//!    consumables come back), the cart, the item being viewed, an explicit list.
//! 2. **Boosts**: scores are shifted so the lowest scores just above zero, then multiplied
//!    by every matching brand, category or tag factor.
//! 3. **Selection**: best first, at most `max_per_category` items per top category.
//! 4. **Pins**: an eligible pinned item takes its slot while its date range is active.
//!
//! The engine ([`crate::engine`]) supplies scores for each stage of the fallback chain and
//! uses [`Selection`] to fill the answer across stages.

mod choice;

pub use choice::{ChoiceError, PlacementAsk, choose};

use std::collections::{BTreeMap, HashMap};

use datasets::schema::{Item, parse_timestamp};
use datasets::{IdMap, ItemIdx, UserIdx};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rank::{ScoredItem, top_k};

const DAY: f64 = 86_400.0;

/// What a placement shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementKind {
    /// Recommendations for a person (home page, email, SMS, kiosk, call centre).
    #[default]
    Personal,
    /// Items similar to the one being viewed (product page).
    Similar,
}

/// Which stock counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockRule {
    /// Stock is ignored.
    Any,
    /// The item must be in stock online.
    #[default]
    Online,
    /// The item must be in stock at the request's `store_id` (required in the request).
    Store,
}

/// Multiplies the score of items of a brand, category (path prefix) or tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boost {
    /// Exact brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// Category path or prefix (`shoes` matches `shoes>running`).
    #[serde(default)]
    pub category: Option<String>,
    /// Exact tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Factor, above 0: 1.5 lifts, 0.5 demotes.
    pub factor: f32,
}

/// Puts an item at a slot while a date range is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The item's external id.
    pub item_id: String,
    /// 1-based position in the answer.
    pub slot: usize,
    /// Start (RFC 3339 or seconds since the epoch); none means already active.
    #[serde(default)]
    pub from: Option<String>,
    /// End, exclusive; none means open-ended.
    #[serde(default)]
    pub until: Option<String>,
}

/// One placement as configured (a `[placements.<name>]` TOML table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementConfig {
    /// The channel this placement serves (`web`, `app`, `email`, `store`, …), for reports.
    pub channel: Option<String>,
    /// Personal recommendations or similar items.
    pub kind: PlacementKind,
    /// Items returned when the request does not say.
    pub k: usize,
    /// The largest `k` a request may ask for.
    pub max_k: usize,
    /// Blend weights by model name; empty uses the artifact's tuned weights.
    pub weights: BTreeMap<String, f32>,
    /// Never recommend what the person consumed (subject to `repurchase_after_days`).
    pub exclude_purchased: bool,
    /// Per category path or prefix: days after a purchase when items of it may come back.
    pub repurchase_after_days: BTreeMap<String, f64>,
    /// Never recommend what is in the request's cart.
    pub exclude_cart: bool,
    /// Which stock counts.
    pub in_stock: StockRule,
    /// Respect each item's `available_from` / `available_until`.
    pub respect_availability: bool,
    /// Only items under these category paths or prefixes (empty: all).
    pub categories: Vec<String>,
    /// Never items under these category paths or prefixes.
    pub exclude_categories: Vec<String>,
    /// Lowest price allowed (items without a price pass).
    pub min_price: Option<f32>,
    /// Highest price allowed (items without a price pass).
    pub max_price: Option<f32>,
    /// Merchandising boosts.
    pub boosts: Vec<Boost>,
    /// Pinned items.
    pub pins: Vec<Pin>,
    /// At most this many items per top category.
    pub max_per_category: Option<usize>,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            channel: None,
            kind: PlacementKind::Personal,
            k: 10,
            max_k: 100,
            weights: BTreeMap::new(),
            exclude_purchased: true,
            repurchase_after_days: BTreeMap::new(),
            exclude_cart: true,
            in_stock: StockRule::Online,
            respect_availability: true,
            categories: Vec::new(),
            exclude_categories: Vec::new(),
            min_price: None,
            max_price: None,
            boosts: Vec::new(),
            pins: Vec::new(),
            max_per_category: None,
        }
    }
}

/// The largest `max_k` a placement may allow: an answer is a page of items, and a bigger
/// ceiling only lets one request make the server rank and render a whole catalog.
pub const MAX_K: usize = 10_000;

fn invalid(name: &'static str, reason: String) -> Error {
    Error::InvalidParam { name, reason }
}

impl PlacementConfig {
    /// Checks what can be checked without a catalog. `name` is the placement's name, for
    /// messages.
    pub fn validate(&self, name: &str) -> Result<()> {
        if self.max_k == 0 || self.max_k > MAX_K {
            return Err(invalid(
                "max_k",
                format!("placement `{name}`: max_k must be between 1 and {MAX_K}, found {}", self.max_k),
            ));
        }
        if self.k == 0 || self.k > self.max_k {
            return Err(invalid(
                "k",
                format!("placement `{name}`: k must be between 1 and max_k ({})", self.max_k),
            ));
        }
        if let Some((model, w)) = self.weights.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(invalid(
                "weights",
                format!("placement `{name}`: weight of `{model}` is {w}, must be >= 0"),
            ));
        }
        if let Some((category, days)) =
            self.repurchase_after_days.iter().find(|(_, d)| !(d.is_finite() && **d >= 0.0))
        {
            return Err(invalid(
                "repurchase_after_days",
                format!("placement `{name}`: `{category}` = {days}, must be >= 0"),
            ));
        }
        if let (Some(lo), Some(hi)) = (self.min_price, self.max_price)
            && lo > hi
        {
            return Err(invalid(
                "min_price",
                format!("placement `{name}`: min_price {lo} is above max_price {hi}"),
            ));
        }
        for (n, boost) in self.boosts.iter().enumerate() {
            let selectors =
                [&boost.brand, &boost.category, &boost.tag].iter().filter(|s| s.is_some()).count();
            if selectors != 1 {
                return Err(invalid(
                    "boosts",
                    format!("placement `{name}`: boost {} needs exactly one of brand, category, tag", n + 1),
                ));
            }
            if !(boost.factor.is_finite() && boost.factor > 0.0) {
                return Err(invalid(
                    "boosts",
                    format!("placement `{name}`: boost {} factor {} must be above 0", n + 1, boost.factor),
                ));
            }
        }
        for pin in &self.pins {
            if pin.slot == 0 || pin.slot > self.max_k {
                return Err(invalid(
                    "pins",
                    format!(
                        "placement `{name}`: pin of `{}` has slot {}, must be 1..={}",
                        pin.item_id, pin.slot, self.max_k
                    ),
                ));
            }
            for (field, value) in [("from", &pin.from), ("until", &pin.until)] {
                if let Some(raw) = value {
                    parse_timestamp(raw).map_err(|e| {
                        invalid(
                            "pins",
                            format!("placement `{name}`: pin of `{}`: `{field}`: {e}", pin.item_id),
                        )
                    })?;
                }
            }
        }
        if self.max_per_category == Some(0) {
            return Err(invalid("max_per_category", format!("placement `{name}`: must be at least 1")));
        }
        Ok(())
    }
}

/// Whether `item` lies under any of `prefixes` (`a>b` is under `a` and `a>b`, not `ab`).
pub fn in_categories(item: &Item, prefixes: &[String]) -> bool {
    prefixes.iter().any(|prefix| {
        item.categories.iter().any(|path| {
            path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('>'))
        })
    })
}

fn price_within(item: &Item, min: Option<f32>, max: Option<f32>) -> bool {
    item.price.is_none_or(|p| min.is_none_or(|lo| p >= lo) && max.is_none_or(|hi| p <= hi))
}

/// A fixed-size set of item indices.
#[derive(Debug, Clone, PartialEq)]
struct ItemSet(Vec<u64>);

impl ItemSet {
    fn new(n: usize) -> Self {
        ItemSet(vec![0; n.div_ceil(64)])
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Catalog facts the rules need on every request, computed once per artifact.
#[derive(Debug, Clone)]
pub struct CatalogIndex {
    /// Each item's top category as an index into `categories`.
    top_category: Vec<Option<u32>>,
    categories: IdMap,
    /// Per store id, the items with stock there.
    store_stock: HashMap<String, ItemSet>,
}

impl CatalogIndex {
    /// Indexes `catalog` (one entry per item index).
    pub fn new(catalog: &[Item]) -> Self {
        let mut categories = IdMap::new();
        let top_category =
            catalog.iter().map(|item| item.top_category().map(|c| categories.get_or_insert(c))).collect();
        let mut store_stock: HashMap<String, ItemSet> = HashMap::new();
        for (i, item) in catalog.iter().enumerate() {
            for (store, &units) in &item.store_stock {
                if units > 0 {
                    store_stock.entry(store.clone()).or_insert_with(|| ItemSet::new(catalog.len())).insert(i);
                }
            }
        }
        CatalogIndex { top_category, categories, store_stock }
    }

    /// The top category index of `item`.
    pub fn top_category(&self, item: ItemIdx) -> Option<u32> {
        self.top_category.get(item.get()).copied().flatten()
    }

    /// The index of a top category by name.
    pub fn category(&self, name: &str) -> Option<u32> {
        self.categories.get(name)
    }

    /// Whether `store` is known (has stock of anything).
    pub fn has_store(&self, store: &str) -> bool {
        self.store_stock.contains_key(store)
    }
}

/// A placement compiled against one artifact's catalog.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The placement's name.
    pub name: String,
    /// Its configuration.
    pub config: PlacementConfig,
    /// Items passing the request-independent filters (categories, price, online stock).
    static_ok: Vec<bool>,
    /// Per item, the product of matching boost factors; empty without boosts.
    boost: Vec<f32>,
    /// Per item, seconds after a purchase when it may be recommended again (`None`: never).
    repurchase_after: Vec<Option<i64>>,
    /// Active-able pins: item, 0-based slot, start, end.
    pins: Vec<(ItemIdx, usize, Option<i64>, Option<i64>)>,
}

impl Placement {
    /// Compiles `config` for the items of `items`/`catalog`. Returns the placement and
    /// warnings (pinned items the catalog does not have), or an error for invalid settings.
    pub fn compile(
        name: &str,
        config: &PlacementConfig,
        items: &IdMap,
        catalog: &[Item],
    ) -> Result<(Self, Vec<String>)> {
        config.validate(name)?;
        let static_ok = catalog
            .iter()
            .map(|item| {
                (config.categories.is_empty() || in_categories(item, &config.categories))
                    && !in_categories(item, &config.exclude_categories)
                    && price_within(item, config.min_price, config.max_price)
                    && (config.in_stock != StockRule::Online || item.in_stock)
            })
            .collect();
        let boost = if config.boosts.is_empty() {
            Vec::new()
        } else {
            catalog
                .iter()
                .map(|item| {
                    config
                        .boosts
                        .iter()
                        .filter(|b| {
                            b.brand.as_ref().is_some_and(|brand| item.brand.as_ref() == Some(brand))
                                || b.tag.as_ref().is_some_and(|tag| item.tags.contains(tag))
                                || b.category
                                    .as_ref()
                                    .is_some_and(|c| in_categories(item, std::slice::from_ref(c)))
                        })
                        .map(|b| b.factor)
                        .product()
                })
                .collect()
        };
        let repurchase_after = catalog
            .iter()
            .map(|item| {
                // The most specific matching window wins.
                config
                    .repurchase_after_days
                    .iter()
                    .filter(|(category, _)| in_categories(item, std::slice::from_ref(*category)))
                    .max_by_key(|(category, _)| category.len())
                    .map(|(_, days)| (days * DAY) as i64)
            })
            .collect();
        let mut warnings = Vec::new();
        let mut pins = Vec::new();
        for pin in &config.pins {
            let Some(item) = items.get(&pin.item_id) else {
                warnings.push(format!(
                    "placement `{name}`: pinned item `{}` is not in the catalog; ignored",
                    pin.item_id
                ));
                continue;
            };
            // Validated above, so parsing cannot fail here.
            let time = |raw: &Option<String>| raw.as_deref().and_then(|r| parse_timestamp(r).ok());
            pins.push((ItemIdx(item), pin.slot - 1, time(&pin.from), time(&pin.until)));
        }
        pins.sort_by_key(|&(_, slot, _, _)| slot);
        let placement = Placement {
            name: name.to_string(),
            config: config.clone(),
            static_ok,
            boost,
            repurchase_after,
            pins,
        };
        Ok((placement, warnings))
    }

    /// A placement over `n_items` items whose only rule is the purchase exclusion: any stock,
    /// no availability window, any `k`.
    pub fn purchases_only(n_items: usize) -> Self {
        let config = PlacementConfig {
            in_stock: StockRule::Any,
            respect_availability: false,
            max_k: usize::MAX,
            ..PlacementConfig::default()
        };
        Placement {
            name: "batch".into(),
            config,
            static_ok: vec![true; n_items],
            boost: Vec::new(),
            repurchase_after: vec![None; n_items],
            pins: Vec::new(),
        }
    }

    /// The boost factor of `item` (1 without boosts).
    pub fn boost(&self, item: ItemIdx) -> f32 {
        self.boost.get(item.get()).copied().unwrap_or(1.0)
    }
}

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
    /// The person, when known to the artifact.
    pub user: Option<UserIdx>,
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
    placement: &'a Placement,
    catalog: &'a [Item],
    index: &'a CatalogIndex,
    request: Request<'a>,
    consumed: &'a [(u32, i64)],
    /// Cart, explicit exclusions and the viewed item, sorted.
    excluded: Vec<u32>,
}

impl<'a> Eligibility<'a> {
    /// Prepares the test; `consumed` is the person's consumed items (sorted by item).
    pub fn new(
        placement: &'a Placement,
        catalog: &'a [Item],
        index: &'a CatalogIndex,
        request: Request<'a>,
        consumed: &'a [(u32, i64)],
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
            if !index.has_store(store) {
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
        excluded.sort_unstable();
        excluded.dedup();
        Ok(Eligibility { placement, catalog, index, request, consumed, excluded })
    }

    /// Whether item `i` may be shown.
    pub fn allows(&self, i: usize) -> bool {
        let Some(item) = self.catalog.get(i) else { return false };
        let config = &self.placement.config;
        let request = &self.request;
        let filters = request.filters;
        self.placement.static_ok[i]
            && self.excluded.binary_search(&(i as u32)).is_err()
            && !self.consumed_now(i)
            && (!config.respect_availability
                || (item.available_from.is_none_or(|from| request.now >= from)
                    && item.available_until.is_none_or(|until| request.now < until)))
            && (config.in_stock != StockRule::Store
                || request
                    .store_id
                    .and_then(|s| self.index.store_stock.get(s))
                    .is_some_and(|set| set.contains(i)))
            && (filters.categories.is_empty() || in_categories(item, &filters.categories))
            && !in_categories(item, &filters.exclude_categories)
            && (filters.brands.is_empty() || item.brand.as_ref().is_some_and(|b| filters.brands.contains(b)))
            && price_within(item, filters.min_price, filters.max_price)
    }

    /// Whether the purchase exclusion holds item `i` back at the request's time.
    fn consumed_now(&self, i: usize) -> bool {
        if !self.placement.config.exclude_purchased {
            return false;
        }
        match self.consumed.binary_search_by_key(&(i as u32), |&(item, _)| item) {
            Err(_) => false,
            Ok(at) => match self.placement.repurchase_after[i] {
                None => true,
                Some(window) => self.request.now < self.consumed[at].1.saturating_add(window),
            },
        }
    }

    /// Multiplies scores by the placement's boosts, after shifting them so the lowest
    /// finite score is just above zero (a factor must lift every item it matches).
    pub fn apply_boosts(&self, scores: &mut [f32]) {
        if self.placement.boost.is_empty() {
            return;
        }
        let (lo, hi) = scores
            .iter()
            .filter(|s| s.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        if !lo.is_finite() {
            return;
        }
        let floor = ((hi - lo) * 1e-3).max(1e-6);
        for (s, &factor) in scores.iter_mut().zip(&self.placement.boost) {
            if s.is_finite() {
                *s = (*s - lo + floor) * factor;
            }
        }
    }
}

/// Where an item of an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The blend, for this person (or their session).
    Personalized,
    /// The blend, from the viewed item.
    Similar,
    /// Popular in the person's favourite categories.
    FavouriteCategories,
    /// Popular overall.
    Popular,
    /// A pin.
    Pinned,
}

impl Source {
    /// A stable snake-case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Personalized => "personalized",
            Source::Similar => "similar",
            Source::FavouriteCategories => "favourite_categories",
            Source::Popular => "popular",
            Source::Pinned => "pinned",
        }
    }
}

/// An answer being filled, stage by stage, under the diversity cap.
pub struct Selection<'a> {
    eligibility: &'a Eligibility<'a>,
    picked: Vec<(ScoredItem, Source)>,
    per_category: HashMap<u32, usize>,
}

impl<'a> Selection<'a> {
    /// An empty answer for `eligibility`'s request.
    pub fn new(eligibility: &'a Eligibility<'a>) -> Self {
        Selection {
            eligibility,
            // `k` may exceed the catalog (a batch asks for "everything"): never allocate past it.
            picked: Vec::with_capacity(eligibility.request.k.min(eligibility.catalog.len())),
            per_category: HashMap::new(),
        }
    }

    /// Whether the answer has its `k` items.
    pub fn is_full(&self) -> bool {
        self.picked.len() >= self.eligibility.request.k
    }

    /// Adds the best eligible items of `scores` not yet picked, within the diversity cap,
    /// until full. Items with non-finite scores are never taken.
    pub fn fill(&mut self, scores: &[f32], source: Source) {
        let k = self.eligibility.request.k;
        let cap = self.eligibility.placement.config.max_per_category;
        let index = self.eligibility.index;
        let n_items = scores.len();
        let mut pool = if cap.is_some() { k.saturating_mul(4).max(32) } else { k }.min(n_items);
        loop {
            let need = k - self.picked.len();
            if need == 0 {
                return;
            }
            let picked = &self.picked;
            let wanted = (pool + picked.len()).min(n_items);
            let ranked = top_k(scores, wanted, |i| {
                self.eligibility.allows(i) && picked.iter().all(|(p, _)| p.item.get() != i)
            });
            let exhausted = ranked.len() < wanted || wanted == n_items;
            let mut taken = Vec::new();
            for candidate in ranked {
                if taken.len() == need {
                    break;
                }
                if let (Some(max), Some(c)) = (cap, index.top_category(candidate.item)) {
                    let count = self.per_category.entry(c).or_default();
                    if *count >= max {
                        continue;
                    }
                    *count += 1;
                }
                taken.push(candidate);
            }
            let filled = taken.len() == need;
            self.picked.extend(taken.into_iter().map(|s| (s, source)));
            if filled || exhausted {
                return;
            }
            // The cap rejected too many; look deeper.
            pool = pool.saturating_mul(4).min(n_items);
        }
    }

    /// Applies the active pins and returns the answer, best first.
    pub fn finish(mut self) -> Vec<(ScoredItem, Source)> {
        let eligibility = self.eligibility;
        let now = eligibility.request.now;
        for &(item, slot, from, until) in &eligibility.placement.pins {
            let active = from.is_none_or(|f| now >= f) && until.is_none_or(|u| now < u);
            if !active || !eligibility.allows(item.get()) {
                continue;
            }
            let score = match self.picked.iter().position(|(p, _)| p.item == item) {
                Some(at) => self.picked.remove(at).0.score,
                None => f32::NAN,
            };
            let at = slot.min(self.picked.len());
            self.picked.insert(at, (ScoredItem { item, score }, Source::Pinned));
        }
        self.picked.truncate(eligibility.request.k);
        self.picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Eight items: 0–3 shoes (brand A, prices 10..40), 4–7 books (brand B, prices 50..80);
    /// item 3 is out of stock online; item 5 only in store `s1`.
    fn catalog() -> (IdMap, Vec<Item>) {
        let mut ids = IdMap::new();
        let items = (0..8)
            .map(|i| {
                ids.get_or_insert(&format!("i{i}"));
                let shoe = i < 4;
                Item {
                    item_id: format!("i{i}"),
                    categories: vec![if shoe { "shoes>running".into() } else { "books".into() }],
                    brand: Some(if shoe { "A" } else { "B" }.into()),
                    tags: if i == 6 { vec!["sale".into()] } else { Vec::new() },
                    price: Some(10.0 * (i + 1) as f32),
                    in_stock: i != 3,
                    store_stock: if i == 5 {
                        BTreeMap::from([("s1".to_string(), 2)])
                    } else {
                        BTreeMap::new()
                    },
                    ..Item::default()
                }
            })
            .collect();
        (ids, items)
    }

    /// Scores descending by item index: item 0 is best.
    fn scores() -> Vec<f32> {
        (0..8).map(|i| 8.0 - i as f32).collect()
    }

    const NO_FILTERS: &Filters = &Filters {
        categories: Vec::new(),
        exclude_categories: Vec::new(),
        brands: Vec::new(),
        min_price: None,
        max_price: None,
    };

    fn answer<'a>(
        config: PlacementConfig,
        request: impl FnOnce(&mut Request<'a>),
        consumed: &[(u32, i64)],
    ) -> Vec<u32> {
        let (ids, items) = catalog();
        let index = CatalogIndex::new(&items);
        let (placement, _) = Placement::compile("p", &config, &ids, &items).unwrap();
        let mut req = Request {
            user: None,
            k: 4,
            now: 1_000_000,
            viewed: None,
            cart: &[],
            exclude: &[],
            store_id: None,
            filters: NO_FILTERS,
        };
        request(&mut req);
        let eligibility = Eligibility::new(&placement, &items, &index, req, consumed).unwrap();
        let mut scores = scores();
        eligibility.apply_boosts(&mut scores);
        let mut selection = Selection::new(&eligibility);
        selection.fill(&scores, Source::Personalized);
        selection.finish().into_iter().map(|(s, _)| s.item.0).collect()
    }

    #[test]
    fn online_stock_is_the_default_and_purchases_are_excluded() {
        assert_eq!(answer(PlacementConfig::default(), |_| {}, &[]), [0, 1, 2, 4]);
        assert_eq!(answer(PlacementConfig::default(), |_| {}, &[(1, 0)]), [0, 2, 4, 5]);
        let keep =
            PlacementConfig { exclude_purchased: false, in_stock: StockRule::Any, ..Default::default() };
        assert_eq!(answer(keep, |_| {}, &[(1, 0)]), [0, 1, 2, 3]);
    }

    #[test]
    fn repurchase_window_lets_consumables_back() {
        let config = PlacementConfig {
            repurchase_after_days: BTreeMap::from([("shoes".to_string(), 10.0)]),
            ..Default::default()
        };
        // Bought 5 days ago: still held back; 11 days ago: back.
        let now = 1_000_000;
        assert_eq!(answer(config.clone(), |_| {}, &[(0, now - 5 * 86_400)]), [1, 2, 4, 5]);
        assert_eq!(answer(config, |_| {}, &[(0, now - 11 * 86_400)]), [0, 1, 2, 4]);
    }

    #[test]
    fn cart_viewed_and_explicit_exclusions() {
        let cart = [ItemIdx(0)];
        let exclude = [ItemIdx(2)];
        let got = answer(
            PlacementConfig::default(),
            |r| {
                r.cart = &cart;
                r.exclude = &exclude;
                r.viewed = Some(ItemIdx(4));
            },
            &[],
        );
        assert_eq!(got, [1, 5, 6, 7]);
        let keep_cart = PlacementConfig { exclude_cart: false, ..Default::default() };
        assert_eq!(answer(keep_cart, |r| r.cart = &cart, &[]), [0, 1, 2, 4]);
    }

    #[test]
    fn store_stock_category_price_and_availability() {
        let store = PlacementConfig { in_stock: StockRule::Store, ..Default::default() };
        assert_eq!(answer(store, |r| r.store_id = Some("s1"), &[]), [5]);
        let books =
            PlacementConfig { categories: vec!["books".into()], max_price: Some(70.0), ..Default::default() };
        assert_eq!(answer(books, |_| {}, &[]), [4, 5, 6]);
        let no_shoes = PlacementConfig { exclude_categories: vec!["shoes".into()], ..Default::default() };
        assert_eq!(answer(no_shoes, |_| {}, &[]), [4, 5, 6, 7]);
        // `shoe` is not a prefix of `shoes>running` at a level boundary.
        let partial = PlacementConfig { categories: vec!["shoe".into()], ..Default::default() };
        assert_eq!(answer(partial, |_| {}, &[]), Vec::<u32>::new());
        let (ids, mut items) = catalog();
        items[0].available_from = Some(2_000_000);
        items[1].available_until = Some(999_999);
        let index = CatalogIndex::new(&items);
        let (placement, _) = Placement::compile("p", &PlacementConfig::default(), &ids, &items).unwrap();
        let filters = Filters { brands: vec!["A".into()], ..Default::default() };
        let request = Request {
            user: None,
            k: 4,
            now: 1_000_000,
            viewed: None,
            cart: &[],
            exclude: &[],
            store_id: None,
            filters: &filters,
        };
        let eligibility = Eligibility::new(&placement, &items, &index, request, &[]).unwrap();
        assert_eq!((0..8).filter(|&i| eligibility.allows(i)).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn boosts_lift_matching_items_even_with_negative_scores() {
        let config = PlacementConfig {
            in_stock: StockRule::Any,
            boosts: vec![Boost { brand: None, category: None, tag: Some("sale".into()), factor: 100.0 }],
            ..Default::default()
        };
        assert_eq!(answer(config, |_| {}, &[]), [6, 0, 1, 2]);
        let (ids, items) = catalog();
        let config = PlacementConfig {
            boosts: vec![Boost { brand: Some("B".into()), category: None, tag: None, factor: 2.0 }],
            ..Default::default()
        };
        let (placement, _) = Placement::compile("p", &config, &ids, &items).unwrap();
        let index = CatalogIndex::new(&items);
        let filters = Filters::default();
        let request = Request {
            user: None,
            k: 2,
            now: 0,
            viewed: None,
            cart: &[],
            exclude: &[],
            store_id: None,
            filters: &filters,
        };
        let eligibility = Eligibility::new(&placement, &items, &index, request, &[]).unwrap();
        let mut scores = vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0];
        eligibility.apply_boosts(&mut scores);
        assert!(scores.iter().all(|&s| s > 0.0));
        // Item 4 (brand B) had less than item 3 and, doubled, passes it.
        assert!(scores[4] > scores[3]);
    }

    #[test]
    fn pins_take_their_slot_only_while_active_and_eligible() {
        let pin = |item: &str, slot, from: Option<&str>, until: Option<&str>| Pin {
            item_id: item.into(),
            slot,
            from: from.map(Into::into),
            until: until.map(Into::into),
        };
        let config = PlacementConfig {
            pins: vec![
                pin("i7", 1, None, None),
                pin("i6", 3, Some("2000000"), None),
                pin("i3", 2, None, None),
            ],
            ..Default::default()
        };
        // i7 first; i6 not yet active; i3 is out of stock online.
        assert_eq!(answer(config.clone(), |_| {}, &[]), [7, 0, 1, 2]);
        assert_eq!(answer(config, |r| r.now = 2_000_000, &[]), [7, 0, 6, 1]);
        let (ids, items) = catalog();
        let missing = PlacementConfig { pins: vec![pin("nope", 1, None, None)], ..Default::default() };
        let (_, warnings) = Placement::compile("p", &missing, &ids, &items).unwrap();
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn diversity_caps_items_per_top_category() {
        let config = PlacementConfig { max_per_category: Some(2), ..Default::default() };
        assert_eq!(answer(config.clone(), |_| {}, &[]), [0, 1, 4, 5]);
        assert_eq!(answer(config, |r| r.k = 6, &[]), [0, 1, 4, 5]);
    }

    #[test]
    fn invalid_settings_and_requests_are_named() {
        let bad = |config: PlacementConfig| config.validate("home").unwrap_err().to_string();
        assert!(bad(PlacementConfig { k: 0, ..Default::default() }).contains("k must be"));
        let boost = Boost { brand: Some("A".into()), category: None, tag: Some("x".into()), factor: 2.0 };
        assert!(bad(PlacementConfig { boosts: vec![boost], ..Default::default() }).contains("exactly one"));
        let pin = Pin { item_id: "i1".into(), slot: 1, from: Some("yesterday".into()), until: None };
        assert!(bad(PlacementConfig { pins: vec![pin], ..Default::default() }).contains("`from`"));
        let (ids, items) = catalog();
        let index = CatalogIndex::new(&items);
        let store = PlacementConfig { in_stock: StockRule::Store, ..Default::default() };
        let (placement, _) = Placement::compile("kiosk", &store, &ids, &items).unwrap();
        let filters = Filters::default();
        let request = Request {
            user: None,
            k: 4,
            now: 0,
            viewed: None,
            cart: &[],
            exclude: &[],
            store_id: None,
            filters: &filters,
        };
        let err = Eligibility::new(&placement, &items, &index, request, &[]).err().unwrap();
        assert_eq!(err, RuleError::MissingStore("kiosk".into()));
        let err =
            Eligibility::new(&placement, &items, &index, Request { k: 101, ..request }, &[]).err().unwrap();
        assert!(err.to_string().contains("between 1 and 100"));
    }

    proptest! {
        /// Whatever the scores, consumed items never appear, no item repeats, the answer
        /// has min(k, eligible) items, and the cap holds.
        #[test]
        fn answers_respect_exclusions_and_caps(
            scores in prop::collection::vec(-5.0f32..5.0, 8),
            consumed in prop::collection::btree_set(0u32..8, 0..5),
            k in 1usize..8,
            cap in prop::option::of(1usize..3),
        ) {
            let (ids, items) = catalog();
            let index = CatalogIndex::new(&items);
            let config = PlacementConfig { max_per_category: cap, in_stock: StockRule::Any, ..Default::default() };
            let (placement, _) = Placement::compile("p", &config, &ids, &items).unwrap();
            let filters = Filters::default();
            let request =
                Request { user: None, k, now: 0, viewed: None, cart: &[], exclude: &[], store_id: None, filters: &filters };
            let consumed: Vec<(u32, i64)> = consumed.into_iter().map(|i| (i, 0)).collect();
            let eligibility = Eligibility::new(&placement, &items, &index, request, &consumed).unwrap();
            let mut selection = Selection::new(&eligibility);
            selection.fill(&scores, Source::Personalized);
            let got: Vec<u32> = selection.finish().into_iter().map(|(s, _)| s.item.0).collect();
            prop_assert!(got.iter().all(|i| consumed.iter().all(|(c, _)| c != i)));
            let mut unique = got.clone();
            unique.sort_unstable();
            unique.dedup();
            prop_assert_eq!(unique.len(), got.len());
            let per_category = |shoes: bool| (0..8u32).filter(|&i| (i < 4) == shoes && consumed.iter().all(|(c, _)| *c != i)).count();
            let reachable = [per_category(true), per_category(false)]
                .iter()
                .map(|&n| cap.map_or(n, |c| n.min(c)))
                .sum::<usize>();
            prop_assert_eq!(got.len(), k.min(reachable));
        }
    }
}

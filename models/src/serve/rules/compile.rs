//! A placement compiled against a catalog: everything that does not change per request,
//! precomputed (static filters, boosts, repurchase windows, pins, catalog facts), and kept
//! current item by item as the catalog changes.

use std::collections::HashMap;

use datasets::schema::{Item, parse_timestamp};
use datasets::{IdMap, ItemIdx};

use crate::serve::catalog::LiveCatalog;

use crate::error::Result;

use super::*;

/// Whether `item` lies under any of `prefixes` (`a>b` is under `a` and `a>b`, not `ab`).
pub fn in_categories(item: &Item, prefixes: &[String]) -> bool {
    prefixes.iter().any(|prefix| {
        item.categories.iter().any(|path| {
            path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('>'))
        })
    })
}

pub(super) fn price_within(item: &Item, min: Option<f32>, max: Option<f32>) -> bool {
    item.price.is_none_or(|p| min.is_none_or(|lo| p >= lo) && max.is_none_or(|hi| p <= hi))
}

/// A set of item indices (a bit set that grows as needed).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ItemSet(Vec<u64>);

impl ItemSet {
    pub(super) fn new(n: usize) -> Self {
        ItemSet(vec![0; n.div_ceil(64)])
    }

    pub(super) fn insert(&mut self, i: usize) {
        if i / 64 >= self.0.len() {
            self.0.resize(i / 64 + 1, 0);
        }
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub(super) fn remove(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word &= !(1 << (i % 64));
        }
    }

    pub(super) fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// Catalog facts the rules need on every request, computed once per catalog and kept current
/// item by item as the catalog changes.
#[derive(Debug, Clone)]
pub struct CatalogIndex {
    /// Each item's top category as an index into `categories`.
    pub(super) top_category: Vec<Option<u32>>,
    pub(super) categories: IdMap,
    /// Per store id, the items with stock there.
    pub(super) store_stock: HashMap<String, ItemSet>,
    /// Each item's availability window `[from, until)`, an open start as `i64::MIN` and no
    /// end as `i64::MAX`: kept beside the other facts so that the per-item checks of a
    /// request do not read the item records.
    pub(super) windows: Vec<(i64, i64)>,
}

impl CatalogIndex {
    /// Indexes `catalog` (one entry per item index).
    pub fn new<'a>(catalog: impl ExactSizeIterator<Item = &'a Item>) -> Self {
        let mut index = CatalogIndex {
            top_category: Vec::with_capacity(catalog.len()),
            categories: IdMap::new(),
            store_stock: HashMap::new(),
            windows: Vec::with_capacity(catalog.len()),
        };
        for (i, item) in catalog.enumerate() {
            index.update(i, item);
        }
        index
    }

    /// Indexes `item` as the entry of index `i` (the next index, or one already indexed).
    pub fn update(&mut self, i: usize, item: &Item) {
        let top = item.top_category().map(|c| self.categories.get_or_insert(c));
        let window = (item.available_from.unwrap_or(i64::MIN), item.available_until.unwrap_or(i64::MAX));
        if i == self.top_category.len() {
            self.top_category.push(top);
            self.windows.push(window);
        } else {
            self.top_category[i] = top;
            self.windows[i] = window;
        }
        for set in self.store_stock.values_mut() {
            set.remove(i);
        }
        for (store, &units) in &item.store_stock {
            if units > 0 {
                let set = self.store_stock.entry(store.clone()).or_insert_with(|| ItemSet::new(0));
                set.insert(i);
            }
        }
        // A store left with no stock is no longer indexed (nor counted against the bound).
        self.store_stock.retain(|_, set| !set.is_empty());
    }

    /// How many stores have stock of some item.
    pub fn n_stores(&self) -> usize {
        self.store_stock.len()
    }

    /// The top category index of `item`.
    pub fn top_category(&self, item: ItemIdx) -> Option<u32> {
        self.top_category.get(item.get()).copied().flatten()
    }

    /// Whether item `i` is available at `now` (out of range: no).
    pub fn available_at(&self, i: usize, now: i64) -> bool {
        self.windows.get(i).is_some_and(|&(from, until)| from <= now && (now < until || until == i64::MAX))
    }

    /// The index of a top category by name.
    pub fn category(&self, name: &str) -> Option<u32> {
        self.categories.get(name)
    }

    /// Whether `store` is known (has stock of anything).
    pub fn has_store(&self, store: &str) -> bool {
        self.store_stock.get(store).is_some_and(|set| !set.is_empty())
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
    pub(super) static_ok: Vec<bool>,
    /// Per item, the product of matching boost factors; empty without boosts.
    pub(super) boost: Vec<f32>,
    /// Per item, seconds after a purchase when it may be recommended again (`None`: never).
    pub(super) repurchase_after: Vec<Option<i64>>,
    /// Active-able pins: item, 0-based slot, start, end.
    pub(super) pins: Vec<(ItemIdx, usize, Option<i64>, Option<i64>)>,
}

impl Placement {
    /// Compiles `config` for the items of `catalog`. Returns the placement and warnings
    /// (pinned items the catalog does not have), or an error for invalid settings.
    pub fn compile(
        name: &str,
        config: &PlacementConfig,
        catalog: &LiveCatalog,
    ) -> Result<(Self, Vec<String>)> {
        config.validate(name)?;
        let mut placement = Placement {
            name: name.to_string(),
            config: config.clone(),
            static_ok: Vec::with_capacity(catalog.len()),
            boost: Vec::new(),
            repurchase_after: Vec::with_capacity(catalog.len()),
            pins: Vec::new(),
        };
        for (i, item) in catalog.items().enumerate() {
            placement.compile_item(i, item);
        }
        let mut warnings = Vec::new();
        for pin in &config.pins {
            let Some(item) = catalog.get(&pin.item_id) else {
                warnings.push(format!(
                    "placement `{name}`: pinned item `{}` is not in the catalog; ignored",
                    pin.item_id
                ));
                continue;
            };
            // Validated above, so parsing cannot fail here.
            let time = |raw: &Option<String>| raw.as_deref().and_then(|r| parse_timestamp(r).ok());
            placement.pins.push((item, pin.slot - 1, time(&pin.from), time(&pin.until)));
        }
        placement.pins.sort_by_key(|&(_, slot, _, _)| slot);
        Ok((placement, warnings))
    }

    /// This placement over `catalog`, a later version of the catalog it was compiled for in
    /// which only the items `touched` changed (or were added).
    pub fn refreshed(&self, catalog: &LiveCatalog, touched: &[usize]) -> Self {
        let mut next = self.clone();
        for &i in touched {
            if let Some(item) = catalog.item(i) {
                next.compile_item(i, item);
            }
        }
        if next.pins.len() < self.config.pins.len() {
            // A pinned item the catalog lacked may have arrived.
            if let Ok((recompiled, _)) = Placement::compile(&self.name, &self.config, catalog) {
                next.pins = recompiled.pins;
            }
        }
        next
    }

    /// Computes what is request-independent for item `i` (the next index, or one compiled).
    fn compile_item(&mut self, i: usize, item: &Item) {
        let config = &self.config;
        let ok = (config.categories.is_empty() || in_categories(item, &config.categories))
            && !in_categories(item, &config.exclude_categories)
            && price_within(item, config.min_price, config.max_price)
            && (config.in_stock != StockRule::Online || item.in_stock);
        // The most specific matching window wins.
        let repurchase = config
            .repurchase_after_days
            .iter()
            .filter(|(category, _)| in_categories(item, std::slice::from_ref(*category)))
            .max_by_key(|(category, _)| category.len())
            .map(|(_, days)| (days * DAY) as i64);
        let boost = (!config.boosts.is_empty()).then(|| {
            config
                .boosts
                .iter()
                .filter(|b| {
                    b.brand.as_ref().is_some_and(|brand| item.brand.as_ref() == Some(brand))
                        || b.tag.as_ref().is_some_and(|tag| item.tags.contains(tag))
                        || b.category.as_ref().is_some_and(|c| in_categories(item, std::slice::from_ref(c)))
                })
                .map(|b| b.factor)
                .product::<f32>()
        });
        if i == self.static_ok.len() {
            self.static_ok.push(ok);
            self.repurchase_after.push(repurchase);
            self.boost.extend(boost);
        } else {
            self.static_ok[i] = ok;
            self.repurchase_after[i] = repurchase;
            if let Some(boost) = boost {
                self.boost[i] = boost;
            }
        }
    }

    /// Whether item `i` passes the placement's request-independent filters.
    pub fn passes(&self, i: usize) -> bool {
        self.static_ok.get(i).copied().unwrap_or(false)
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

    /// Whether the placement boosts any item.
    pub fn boosts(&self) -> bool {
        !self.boost.is_empty()
    }
}

//! A placement compiled against one artifact's catalog: everything that does not change per
//! request, precomputed (static filters, boosts, repurchase windows, pins, catalog facts).

use std::collections::HashMap;

use datasets::schema::{Item, parse_timestamp};
use datasets::{IdMap, ItemIdx};

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

/// A fixed-size set of item indices.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ItemSet(Vec<u64>);

impl ItemSet {
    pub(super) fn new(n: usize) -> Self {
        ItemSet(vec![0; n.div_ceil(64)])
    }

    pub(super) fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub(super) fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// Catalog facts the rules need on every request, computed once per artifact.
#[derive(Debug, Clone)]
pub struct CatalogIndex {
    /// Each item's top category as an index into `categories`.
    pub(super) top_category: Vec<Option<u32>>,
    pub(super) categories: IdMap,
    /// Per store id, the items with stock there.
    pub(super) store_stock: HashMap<String, ItemSet>,
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
    pub(super) static_ok: Vec<bool>,
    /// Per item, the product of matching boost factors; empty without boosts.
    pub(super) boost: Vec<f32>,
    /// Per item, seconds after a purchase when it may be recommended again (`None`: never).
    pub(super) repurchase_after: Vec<Option<i64>>,
    /// Active-able pins: item, 0-based slot, start, end.
    pub(super) pins: Vec<(ItemIdx, usize, Option<i64>, Option<i64>)>,
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

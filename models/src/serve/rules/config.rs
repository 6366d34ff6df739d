//! What an operator writes: a placement's settings (one TOML table each) and their checks.

use std::collections::BTreeMap;

use datasets::schema::parse_timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

/// How often one item may be shown to one person, across every channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    /// Most impressions of one item per person within the window (at least 1).
    pub max_impressions: u32,
    /// The window, in hours.
    pub window_hours: f64,
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
    /// Blend weights by model; empty uses the artifact's tuned weights.
    pub weights: crate::blend::Weights,
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
    /// The same item at most this often per person, across all channels.
    pub frequency_cap: Option<FrequencyCap>,
    /// Whether answers are personalised; `false` answers popular items under the rules (the
    /// person's purchases still excluded): an experiment's non-personalised control.
    pub personalized: bool,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            channel: None,
            kind: PlacementKind::Personal,
            k: 10,
            max_k: 100,
            weights: crate::blend::Weights::new(),
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
            frequency_cap: None,
            personalized: true,
        }
    }
}

/// The largest `max_k` a placement may allow: an answer is a page of items, and a bigger
/// ceiling only lets one request make the server rank and render a whole catalog.
pub const MAX_K: usize = 10_000;

/// How far a placement's boosts, all matching, may scale a score up (and down, by its
/// inverse).
pub const MAX_BOOST: f64 = 1e6;

pub(super) fn invalid(name: &'static str, reason: String) -> Error {
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
        if let Err(reason) = crate::blend::check_weights(&self.weights) {
            return Err(invalid("weights", format!("placement `{name}`: {reason}")));
        }
        if let Some((category, days)) =
            self.repurchase_after_days.iter().find(|(_, d)| !(d.is_finite() && **d >= 0.0))
        {
            return Err(invalid(
                "repurchase_after_days",
                format!("placement `{name}`: `{category}` = {days}, must be >= 0"),
            ));
        }
        for (field, price) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if let Some(price) = price.filter(|p| !p.is_finite()) {
                return Err(invalid(field, format!("placement `{name}`: {price} is not a finite price")));
            }
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
        // Matching boosts multiply: even all of them together must keep scores finite and
        // ordered.
        let (up, down) = self.boosts.iter().fold((1f64, 1f64), |(up, down), boost| {
            let factor = f64::from(boost.factor);
            (up * factor.max(1.0), down * factor.min(1.0))
        });
        if up > MAX_BOOST || down < 1.0 / MAX_BOOST {
            return Err(invalid(
                "boosts",
                format!(
                    "placement `{name}`: the boosts together multiply a score by up to {up:e} and down to                      {down:e}; keep both within {MAX_BOOST:e} and 1/{MAX_BOOST:e}"
                ),
            ));
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
        if let Some(cap) = &self.frequency_cap
            && (cap.max_impressions == 0 || !(cap.window_hours.is_finite() && cap.window_hours > 0.0))
        {
            return Err(invalid(
                "frequency_cap",
                format!(
                    "placement `{name}`: max_impressions must be at least 1 and window_hours above 0, found {} and {}",
                    cap.max_impressions, cap.window_hours
                ),
            ));
        }
        if self.max_per_category == Some(0) {
            return Err(invalid("max_per_category", format!("placement `{name}`: must be at least 1")));
        }
        Ok(())
    }
}

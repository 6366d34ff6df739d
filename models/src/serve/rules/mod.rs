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
//! 1. **Eligibility** (hard): deleted items never; category include/exclude and price range
//!    (placement and request), stock (online, at the request's store, or ignored), the
//!    availability window, and exclusions: items the person consumed (for ever, or for a
//!    per-category window so consumables come back), the cart, the item being viewed, an
//!    explicit list, and items over the frequency cap (shown to the person on any channel too
//!    often within a window, or at all within the request's `not_shown_within`).
//! 2. **Boosts**: scores are shifted so the lowest scores just above zero, then multiplied
//!    by every matching brand, category or tag factor.
//! 3. **Selection**: best first, at most `max_per_category` items per top category.
//! 4. **Pins**: an eligible pinned item takes its slot while its date range is active.
//!
//! The engine ([`crate::serve::engine`]) supplies scores for each stage of the fallback chain and
//! uses [`Selection`] to fill the answer across stages.

mod choice;
mod compile;
mod config;
mod eligibility;
mod selection;
#[cfg(test)]
mod tests;

pub use choice::{ChoiceError, PlacementAsk, choose};
pub use compile::{CatalogIndex, Placement, in_categories};
pub use config::{Boost, FrequencyCap, MAX_K, Pin, PlacementConfig, PlacementKind, StockRule};
pub use eligibility::{Eligibility, Filters, Request, RuleError};
pub use selection::{Selection, Source};

const DAY: f64 = 86_400.0;

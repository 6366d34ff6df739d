//! A training data set: persons, items, weighted interactions, the catalog and the activity
//! behind profile features, built from events (with identity resolution) or a plain
//! interactions file.

use std::collections::{BTreeMap, HashMap};

use sprs::CsMatI;

use crate::consumed::Consumed;
use crate::error::{Error, Result};
use crate::identity::{Decisions, IdentityReport, IdentityRules, resolve_with};
use crate::ids::{IdMap, ItemIdx, UserIdx};
use crate::load::{Catalog, RawInteraction};
use crate::recency::Recency;
use crate::schema::{Event, EventType, Item};

mod interactions;
pub use interactions::InteractionsBuilder;

/// How events become confidence weights.
///
/// The weight of an event is `event_weight[type] × channel_weight[channel]`, times the
/// event's `value` for types listed in `value_types` (ratings by default), times
/// `0.5^(age / half_life)` when a half-life is set (age relative to
/// [`Dataset::reference_timestamp`]).
/// A `return` carries the negative weight of a purchase and cancels it. Weights of one
/// person and item are summed; pairs whose sum is not positive are dropped.
///
/// This is also the trainer's `[weights]` table (`events`, `default`, `channels`,
/// `value_types`, `consumed`, `half_life_days`, `recency`) and is stored in every artifact's metadata,
/// so serving weighs a session's events exactly as training weighed history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightConfig {
    /// Weight per event type name (`view = 1`, `add_to_cart = 3`, `purchase = 5`, …); types
    /// not listed get `default_event_weight`.
    #[serde(rename = "events")]
    pub event_weights: BTreeMap<String, f32>,
    /// Weight of item events whose type is not listed (custom types such as `wishlist`).
    #[serde(rename = "default")]
    pub default_event_weight: f32,
    /// Multiplier per channel name (`store = 1.5`); channels not listed get 1.
    #[serde(rename = "channels")]
    pub channel_weights: BTreeMap<String, f32>,
    /// Event types whose weight is multiplied by the event's `value`.
    pub value_types: Vec<String>,
    /// Event types whose items count as consumed: never recommended back to that person.
    #[serde(rename = "consumed")]
    pub consumed_types: Vec<String>,
    /// Half-life of interactions in days; `None` for no time decay.
    pub half_life_days: Option<f32>,
    /// Each person's own recency, applied to the person's history when scoring
    /// (`[weights.recency]`; [`crate::recency`]).
    pub recency: Recency,
}

/// The event type of an impression a channel reports (an item shown): weighs 0 unless the
/// `[weights] events` table names it.
pub const IMPRESSION: &str = "impression";

impl Default for WeightConfig {
    fn default() -> Self {
        let event_weights = [
            ("view", 1.0),
            ("click", 1.0),
            ("add_to_cart", 3.0),
            ("purchase", 5.0),
            ("rating", 1.0),
            ("email_click", 1.0),
            ("email_open", 0.0),
            ("search", 0.0),
            // An item shown is no interest in it (channels report impressions as events).
            (IMPRESSION, 0.0),
        ];
        WeightConfig {
            event_weights: event_weights.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            default_event_weight: 1.0,
            channel_weights: BTreeMap::new(),
            value_types: vec!["rating".into()],
            consumed_types: vec!["purchase".into(), "rating".into()],
            half_life_days: None,
            recency: Recency::OFF,
        }
    }
}

impl WeightConfig {
    /// Checks that weights are between 0 and [`MAX_WEIGHT`] and the half-life positive.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: String, reason: &str| Err(Error::InvalidConfig { name, reason: reason.into() });
        let is_usable = |w: f32| w.is_finite() && (0.0..=MAX_WEIGHT).contains(&w);
        for (name, weight) in self.event_weights.iter().chain(&self.channel_weights) {
            if !is_usable(*weight) {
                return bad(format!("weights.{name}"), "must be a number between 0 and 1e6");
            }
        }
        // Events' type and channel names are read in lowercase; a name with a capital would
        // never match one.
        let names = self.event_weights.keys().chain(self.channel_weights.keys());
        let names = names.chain(&self.value_types).chain(&self.consumed_types);
        if let Some(name) = names.into_iter().find(|name| name.chars().any(|c| c.is_ascii_uppercase())) {
            return bad(
                format!("weights.{name}"),
                "type and channel names are lowercase (events' names are read so)",
            );
        }
        if !is_usable(self.default_event_weight) {
            return bad("weights.default".into(), "must be a number between 0 and 1e6");
        }
        if let Some(days) = self.half_life_days
            && !(days.is_finite() && days > 0.0)
        {
            return bad("weights.half_life_days".into(), "must be a positive number of days");
        }
        self.recency.validate()
    }

    /// The weight of one event of type `event_type` before channel and value: the listed
    /// weight, else the default (a return weighs what a purchase does, and cancels it).
    pub fn type_weight(&self, event_type: &EventType) -> f32 {
        let name = match event_type {
            EventType::Return => "purchase",
            other => other.as_str(),
        };
        self.event_weights.get(name).copied().unwrap_or(self.default_event_weight)
    }

    /// How one event counts for its item, the one weighting of training and serving: its
    /// confidence weight (`type_weight × channel weight`, times `value` for `value_types`;
    /// negative for a return, which cancels a purchase) and its consumption (+1 for a type in
    /// `consumed`, -1 for a return, 0 otherwise). Time decay is applied separately.
    pub fn weigh(&self, event: &Event) -> Weighed {
        self.weigh_named(event.event_type.as_str(), event.channel.as_str(), event.value)
    }

    /// [`WeightConfig::weigh`] of an event given by its type and channel names and value.
    pub fn weigh_named(&self, event_type: &str, channel: &str, value: Option<f32>) -> Weighed {
        let is_return = event_type == EventType::Return.as_str();
        let listed = if is_return { EventType::Purchase.as_str() } else { event_type };
        // An impression not named in the table weighs 0 whatever the default (configs and
        // artifacts written before it was listed): an item shown is no interest in it.
        let unlisted = if event_type == IMPRESSION { 0.0 } else { self.default_event_weight };
        let base = self.event_weights.get(listed).copied().unwrap_or(unlisted);
        let channel = self.channel_weights.get(channel).copied().unwrap_or(1.0);
        let value = if self.value_types.iter().any(|t| t == event_type) { value.unwrap_or(1.0) } else { 1.0 };
        let weight = base * channel * value;
        if is_return {
            Weighed { weight: -weight, consumption: -1 }
        } else {
            Weighed { weight, consumption: i8::from(self.consumed_types.iter().any(|t| t == event_type)) }
        }
    }
}

/// How one event counts ([`WeightConfig::weigh`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighed {
    /// Confidence weight before time decay; negative for a return.
    pub weight: f32,
    /// +1 for a consuming event (purchase), -1 for a return, 0 otherwise.
    pub consumption: i8,
}

/// The largest event or channel weight: with values bounded by
/// [`crate::load::MAX_ABS_VALUE`], every weight and every sum of weights stays far inside
/// the `f32` range the models compute in.
pub const MAX_WEIGHT: f32 = 1e6;

/// One person's weighted interaction with one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    /// The person.
    pub user: UserIdx,
    /// The item.
    pub item: ItemIdx,
    /// Confidence weight before time decay; negative for a return.
    pub weight: f32,
    /// Seconds since the epoch; 0 when the source had none.
    pub timestamp: i64,
    /// +1 for a consuming event (purchase), -1 for a return, 0 otherwise.
    pub consumption: i8,
}

/// A coarse kind of activity, for behavioural profile features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    /// A view or click.
    Browse,
    /// An add to cart.
    Cart,
    /// A purchase.
    Purchase,
    /// A return.
    Return,
    /// An email open or click.
    Engage,
    /// Anything else (search, rating, custom).
    Other,
}

/// One event of a person, kept for profile features (including events without items).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Activity {
    /// The person.
    pub user: UserIdx,
    /// What kind of event.
    pub kind: ActivityKind,
    /// Index into [`Dataset::channels`].
    pub channel: u16,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// Revenue for purchases (the event's value), else 0.
    pub revenue: f32,
}

/// A person × item matrix (CSR) with 32-bit item indices: 8 bytes per entry instead of 12
/// (there are fewer than 2³² items, [`IdMap`]); the row pointers stay `usize`, since
/// entries may number more.
pub type Matrix = CsMatI<f32, u32, usize>;

/// Persons, items and what happened between them.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Persons, by canonical key.
    pub users: IdMap,
    /// Items: the catalog's first, then any seen only in interactions.
    pub items: IdMap,
    /// Identifier keys (`kind:value`) to persons.
    pub aliases: HashMap<String, UserIdx>,
    /// One catalog entry per item (a stub titled by its id for items missing from the catalog).
    pub catalog: Vec<Item>,
    /// Whether a catalog was given.
    pub has_catalog: bool,
    /// Weighted interactions, in input order.
    pub interactions: Vec<Interaction>,
    /// For each interaction, the index of the input event or row it came from.
    pub origin: Vec<u32>,
    /// All events, for behavioural features; see [`Dataset::activities`].
    pub activity: Vec<Activity>,
    /// Whether the activity is the interactions themselves, each a purchase on the unknown
    /// channel (plain interaction rows), derived when asked for instead of stored: the
    /// same facts would otherwise take 24 bytes more per row.
    pub activity_from_interactions: bool,
    /// Channel names used by `activity`.
    pub channels: Vec<String>,
    /// Identity resolution's report, for event input.
    pub identity: Option<IdentityReport>,
    /// Half-life applied by [`Dataset::matrix`], from the weight config.
    pub half_life_days: Option<f32>,
}

fn catalog_items(catalog: Option<Catalog>) -> (IdMap, Vec<Item>, bool) {
    let has_catalog = catalog.is_some();
    let items: Vec<Item> = catalog.map(|c| c.items).unwrap_or_default();
    let ids = items.iter().map(|item| item.item_id.clone()).collect();
    (ids, items, has_catalog)
}

fn item_index(items: &mut IdMap, catalog: &mut Vec<Item>, item_id: &str) -> ItemIdx {
    let idx = items.get_or_insert(item_id);
    if idx as usize == catalog.len() {
        catalog.push(Item {
            item_id: item_id.to_owned(),
            title: item_id.to_owned(),
            in_stock: true,
            ..Item::default()
        });
    }
    ItemIdx(idx)
}

impl Dataset {
    /// Builds a data set from events: resolves identities under `rules`, then weights item
    /// events.
    pub fn from_events(
        events: &[Event],
        catalog: Option<Catalog>,
        weights: &WeightConfig,
        rules: &IdentityRules,
    ) -> Result<Self> {
        Dataset::from_events_with(events, catalog, weights, rules, &Decisions::default())
    }

    /// [`Dataset::from_events`] with explicit identity links and unlinks
    /// ([`crate::identity::resolve_with`]).
    pub fn from_events_with(
        events: &[Event],
        catalog: Option<Catalog>,
        weights: &WeightConfig,
        rules: &IdentityRules,
        decisions: &Decisions,
    ) -> Result<Self> {
        weights.validate()?;
        if events.is_empty() {
            return Err(Error::Empty("events".into()));
        }
        let resolution = resolve_with(events, rules, decisions);
        let (mut items, mut catalog, has_catalog) = catalog_items(catalog);
        let mut channels = IdMap::new();
        let mut interactions = Vec::new();
        let mut origin = Vec::new();
        let mut activity = Vec::with_capacity(events.len());
        for (event_idx, (event, &person)) in events.iter().zip(&resolution.person_of_event).enumerate() {
            // Events that carry placeholders only belong to nobody (counted in the report).
            let Some(person) = person else { continue };
            let user = UserIdx(person);
            let kind = match event.event_type {
                EventType::View | EventType::Click => ActivityKind::Browse,
                EventType::AddToCart => ActivityKind::Cart,
                EventType::Purchase => ActivityKind::Purchase,
                EventType::Return => ActivityKind::Return,
                EventType::EmailOpen | EventType::EmailClick => ActivityKind::Engage,
                _ => ActivityKind::Other,
            };
            let channel = channels.get_or_insert(event.channel.as_str()).min(u32::from(u16::MAX)) as u16;
            let revenue =
                if kind == ActivityKind::Purchase { event.value.unwrap_or(0.0).max(0.0) } else { 0.0 };
            activity.push(Activity { user, kind, channel, timestamp: event.timestamp, revenue });
            let Some(item_id) = &event.item_id else {
                continue;
            };
            let Weighed { weight, consumption } = weights.weigh(event);
            if weight == 0.0 && consumption == 0 {
                continue;
            }
            let item = item_index(&mut items, &mut catalog, item_id);
            interactions.push(Interaction { user, item, weight, timestamp: event.timestamp, consumption });
            origin.push(event_idx as u32);
        }
        if !interactions.iter().any(|i| i.weight > 0.0) {
            return Err(nothing_to_train(events, weights, resolution.report.n_placeholder_events));
        }
        let aliases = resolution.aliases.into_iter().map(|(k, v)| (k, UserIdx(v))).collect();
        Ok(Dataset {
            users: resolution.persons,
            items,
            aliases,
            catalog,
            has_catalog,
            interactions,
            origin,
            activity,
            activity_from_interactions: false,
            channels: channels.ids().to_vec(),
            identity: Some(resolution.report),
            half_life_days: weights.half_life_days,
        })
    }

    /// Builds a data set from a plain interactions file: the weight is the `value` (1 when
    /// absent), and every interacted item counts as consumed. Rows of the built-in placeholder
    /// user ids (`guest`, `0`) are left out; [`InteractionsBuilder::with_placeholders`] takes
    /// other rules.
    pub fn from_interactions(
        rows: &[RawInteraction],
        catalog: Option<Catalog>,
        weights: &WeightConfig,
    ) -> Result<Self> {
        let mut builder = InteractionsBuilder::new(catalog, weights)?;
        for row in rows {
            builder.push(&row.user_id, &row.item_id, row.value, row.timestamp);
        }
        builder.finish()
    }

    /// Number of persons.
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Every event, for behavioural features: the stored activity, or for plain interaction
    /// rows each interaction as a purchase on the unknown channel (channel 0).
    pub fn activities(&self) -> impl Iterator<Item = Activity> + Clone + '_ {
        let derived = if self.activity_from_interactions { &self.interactions[..] } else { &[] };
        self.activity.iter().copied().chain(derived.iter().map(|i| Activity {
            user: i.user,
            kind: ActivityKind::Purchase,
            channel: 0,
            timestamp: i.timestamp,
            revenue: 0.0,
        }))
    }

    /// The same persons, items and catalog with other interactions (a split's side); the
    /// origins of the new interactions are unknown and set to `u32::MAX`. Activity derived
    /// from interactions (plain rows) follows the new interactions; stored activity is kept.
    pub fn with_interactions(&self, interactions: Vec<Interaction>) -> Self {
        Dataset {
            users: self.users.clone(),
            items: self.items.clone(),
            aliases: self.aliases.clone(),
            catalog: self.catalog.clone(),
            has_catalog: self.has_catalog,
            origin: vec![u32::MAX; interactions.len()],
            interactions,
            activity: self.activity.clone(),
            activity_from_interactions: self.activity_from_interactions,
            channels: self.channels.clone(),
            identity: self.identity.clone(),
            half_life_days: self.half_life_days,
        }
    }

    /// Splits the interactions by origin: those from input events or rows before `n_first`,
    /// and the rest. For training on one file and testing on another loaded after it.
    pub fn partition_by_origin(&self, n_first: usize) -> (Vec<Interaction>, Vec<Interaction>) {
        let mut first = Vec::new();
        let mut rest = Vec::new();
        for (interaction, &origin) in self.interactions.iter().zip(&self.origin) {
            if (origin as usize) < n_first { first.push(*interaction) } else { rest.push(*interaction) }
        }
        (first, rest)
    }

    /// Finds the person behind an external key: a bare user id, or `kind:value` for any
    /// identifier kind (emails and phones may be given raw; they are hashed first).
    pub fn lookup_user(&self, key: &str) -> Option<UserIdx> {
        crate::identity::find_person(&self.users, key, |alias| self.aliases.get(alias).map(|u| u.0))
            .map(UserIdx)
    }

    /// The reference time of recency decay ("now" for the data): the 99.9th percentile of
    /// the interaction times, the newest one below a thousand interactions. A quantile rather
    /// than the maximum, so a few events dated far ahead cannot age every real event to
    /// nothing; newer interactions count as age 0.
    pub fn reference_timestamp(&self) -> i64 {
        let mut times: Vec<i64> = self.interactions.iter().map(|i| i.timestamp).collect();
        if times.is_empty() {
            return 0;
        }
        // One in a thousand is left above the reference: none below a thousand.
        let at = times.len() - 1 - times.len() / 1000;
        *times.select_nth_unstable(at).1
    }

    /// The person × item confidence matrix (CSR): summed, time-decayed weights; pairs whose
    /// sum is not positive are left out.
    pub fn matrix(&self) -> Matrix {
        self.matrix_at(self.reference_timestamp())
    }

    /// [`Dataset::matrix`] with the decay's reference time given (it is
    /// [`Dataset::reference_timestamp`], which reads every row's time).
    pub fn matrix_at(&self, reference: i64) -> Matrix {
        let decay = self.half_life_days.map(|days| f64::from(days) * 86_400.0);
        let mut entries: Vec<(u32, u32, f32)> = self
            .interactions
            .iter()
            .map(|interaction| {
                let factor = match decay {
                    Some(half_life) => {
                        0.5f64.powf((reference - interaction.timestamp).max(0) as f64 / half_life) as f32
                    }
                    None => 1.0,
                };
                (interaction.user.0, interaction.item.0, interaction.weight * factor)
            })
            .collect();
        // Sorting by (person, item) groups repeats of a pair; stable, so sums are
        // deterministic. Cheaper in memory than a hash map over all pairs.
        entries.sort_by_key(|&(user, item, _)| (user, item));
        let mut indptr = Vec::with_capacity(self.n_users() + 1);
        let mut indices = Vec::with_capacity(entries.len());
        let mut data = Vec::with_capacity(entries.len());
        indptr.push(0);
        let mut next = 0;
        for user in 0..self.n_users() as u32 {
            while next < entries.len() && entries[next].0 == user {
                let item = entries[next].1;
                // Summed in f64: many small weights lose nothing, and the f32 result is exact
                // to its precision.
                let mut total = 0f64;
                while next < entries.len() && entries[next].0 == user && entries[next].1 == item {
                    total += f64::from(entries[next].2);
                    next += 1;
                }
                if total > 0.0 {
                    indices.push(item);
                    data.push(total as f32);
                }
            }
            indptr.push(indices.len());
        }
        CsMatI::new((self.n_users(), self.n_items()), indptr, indices, data)
    }

    /// Per person, the items consumed (purchases net of returns), sorted by item, each with
    /// the time of its last consuming event (so a repurchase window can let consumables back).
    pub fn consumed(&self) -> Consumed {
        Consumed::from_interactions(self.n_users(), &self.interactions)
    }

    /// A stable fingerprint of the interactions (SHA-256 over the sorted records), to tell
    /// which data an artifact was trained on.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let mut bytes = Vec::with_capacity(1 << 16);
        for interaction in &self.interactions {
            bytes.extend_from_slice(self.users.id(interaction.user.0).unwrap_or("").as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(self.items.id(interaction.item.0).unwrap_or("").as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(&interaction.weight.to_le_bytes());
            bytes.extend_from_slice(&interaction.timestamp.to_le_bytes());
            if bytes.len() >= 1 << 16 {
                hasher.update(&bytes);
                bytes.clear();
            }
        }
        hasher.update(&bytes);
        crate::schema::hex(hasher.finalize().as_slice())
    }
}

/// Why events gave no positive person × item weight, for people: no item events at all, or
/// item events whose types and channels all weigh 0 (or are returns).
fn nothing_to_train(events: &[Event], weights: &WeightConfig, placeholder_events: usize) -> Error {
    if placeholder_events == events.len() {
        return Error::NothingToTrain(format!(
            "all {} events carry placeholder identifiers only (`guest`, `0`, `undefined`, …), which identify \
             nobody (see `[identity] placeholders` and `builtin_placeholders`)",
            events.len()
        ));
    }
    let types = |events: &mut dyn Iterator<Item = &Event>| {
        let names: std::collections::BTreeSet<&str> = events.map(|e| e.event_type.as_str()).collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    };
    let n_item_events = events.iter().filter(|e| e.item_id.is_some()).count();
    let reason = if n_item_events == 0 {
        format!("none of the {} events is about an item (types: {})", events.len(), types(&mut events.iter()))
    } else {
        let zero: Vec<String> =
            weights.event_weights.iter().filter(|(_, w)| **w == 0.0).map(|(name, _)| name.clone()).collect();
        format!(
            "all {n_item_events} item events weigh 0 or less after event and channel weights and returns \
             (types: {}; types weighted 0: {})",
            types(&mut events.iter().filter(|e| e.item_id.is_some())),
            if zero.is_empty() { "none".to_string() } else { zero.join(", ") }
        )
    };
    Error::NothingToTrain(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Placeholders;
    use crate::schema::{Channel, Identifier, IdentifierKind};

    fn ev(user: &str, kind: EventType, item: &str, ts: i64) -> Event {
        Event {
            identifiers: vec![Identifier::new(IdentifierKind::UserId, user).unwrap()],
            channel: Channel::Web,
            event_type: kind,
            item_id: Some(item.into()),
            timestamp: ts,
            value: None,
            event_id: None,
        }
    }

    #[test]
    fn event_weights_sum_and_returns_cancel() {
        let events = [
            ev("u", EventType::View, "a", 1),
            ev("u", EventType::AddToCart, "a", 2),
            ev("u", EventType::Purchase, "a", 3),
            ev("u", EventType::Purchase, "b", 3),
            ev("u", EventType::Return, "b", 4),
        ];
        let data =
            Dataset::from_events(&events, None, &WeightConfig::default(), &IdentityRules::default()).unwrap();
        let m = data.matrix();
        // a: view 1 + cart 3 + purchase 5 = 9; b: purchase 5 - return 5 = 0, dropped.
        assert_eq!(m.get(0, 0), Some(&9.0));
        assert_eq!(m.get(0, 1), None);
        assert_eq!(data.consumed().lists().collect::<Vec<_>>(), vec![vec![(ItemIdx(0), 3)]]);
    }

    #[test]
    fn an_impression_weighs_nothing_unless_the_table_names_it() {
        let shown = |weights: &WeightConfig| weights.weigh_named(IMPRESSION, "web", None).weight;
        assert_eq!(shown(&WeightConfig::default()), 0.0);
        // A table written before impressions were listed (an older artifact's, a config's).
        let mut older = WeightConfig::default();
        older.event_weights.remove(IMPRESSION);
        assert_eq!(shown(&older), 0.0);
        assert_eq!(older.weigh_named("wishlist", "web", None).weight, older.default_event_weight);
        older.event_weights.insert(IMPRESSION.into(), 0.2);
        assert_eq!(shown(&older), 0.2);
    }

    #[test]
    fn channel_weights_and_decay_apply() {
        let mut weights = WeightConfig::default();
        weights.channel_weights.insert("store".into(), 2.0);
        weights.half_life_days = Some(1.0);
        let mut store = ev("u", EventType::Purchase, "a", 86_400);
        store.channel = Channel::Store;
        let events = [store, ev("u", EventType::View, "b", 0)];
        let data = Dataset::from_events(&events, None, &weights, &IdentityRules::default()).unwrap();
        let m = data.matrix();
        // a: 5 × 2 (store), newest, no decay; b: 1 × 0.5 (one half-life old).
        assert_eq!(m.get(0, 0), Some(&10.0));
        assert_eq!(m.get(0, 1), Some(&0.5));
    }

    #[test]
    fn one_event_far_in_the_future_does_not_age_every_other_to_nothing() {
        let weights = WeightConfig { half_life_days: Some(30.0), ..WeightConfig::default() };
        let day = 86_400;
        let mut events: Vec<Event> =
            (0..2_000).map(|n| ev(&format!("u{n}"), EventType::View, "a", n * 60)).collect();
        // 2045, when the rest is in the first days of 1970.
        events.push(ev("late", EventType::View, "b", 2_366_841_600));
        let data = Dataset::from_events(&events, None, &weights, &IdentityRules::default()).unwrap();
        assert!(data.reference_timestamp() < 2 * day);
        let m = data.matrix();
        // The oldest real view is about a day older than the reference: still near full weight.
        let first = *m.get(0, 0).unwrap();
        assert!(first > 0.95, "{first}");
    }

    #[test]
    fn data_without_a_positive_item_weight_is_nothing_to_train() {
        let login = Event {
            item_id: None,
            event_type: EventType::Custom("login".into()),
            ..ev("u", EventType::View, "a", 1)
        };
        let err = Dataset::from_events(
            &[login.clone(), login],
            None,
            &WeightConfig::default(),
            &IdentityRules::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "nothing to train: none of the 2 events is about an item (types: login)");
        let opens = [ev("u", EventType::EmailOpen, "a", 1), ev("v", EventType::Search, "b", 2)];
        let err = Dataset::from_events(&opens, None, &WeightConfig::default(), &IdentityRules::default())
            .unwrap_err();
        assert!(err.to_string().starts_with("nothing to train: all 2 item events weigh 0 or less"), "{err}");
        let rows =
            [RawInteraction { user_id: "u".into(), item_id: "x".into(), value: Some(-2.0), timestamp: None }];
        let err = Dataset::from_interactions(&rows, None, &WeightConfig::default()).unwrap_err().to_string();
        assert_eq!(
            err,
            "nothing to train: all 1 rows have a value of 0 or less, and models learn only from positive weights"
        );
        let guests = [ev("guest", EventType::Purchase, "a", 1), ev("0", EventType::View, "b", 2)];
        let err = Dataset::from_events(&guests, None, &WeightConfig::default(), &IdentityRules::default())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("nothing to train: all 2 events carry placeholder identifiers"),
            "{err}"
        );
    }

    #[test]
    fn placeholder_user_ids_in_interactions_identify_nobody() {
        let row = |user: &str, item: &str| RawInteraction {
            user_id: user.into(),
            item_id: item.into(),
            value: None,
            timestamp: None,
        };
        let mut builder = InteractionsBuilder::new(None, &WeightConfig::default()).unwrap();
        for r in [
            row("guest", "a"),
            row("0", "b"),
            row("u1", "c"),
            row("GUEST", "d"),
            row("user_id:undefined", "e"),
        ] {
            builder.push(&r.user_id, &r.item_id, r.value, r.timestamp);
        }
        assert_eq!(builder.placeholder_rows(), 4);
        let data = builder.finish().unwrap();
        assert_eq!((data.users.ids(), data.interactions.len()), (&["u1".to_string()][..], 1));
        // Without the built-in list, `0` is someone (a data set counting users from 0).
        let mut builder = InteractionsBuilder::new(None, &WeightConfig::default())
            .unwrap()
            .with_placeholders(Placeholders::none());
        builder.push("0", "b", None, None);
        assert_eq!(builder.finish().unwrap().n_users(), 1);
        let mut builder = InteractionsBuilder::new(None, &WeightConfig::default()).unwrap();
        builder.push("guest", "b", None, None);
        let err = builder.finish().unwrap_err().to_string();
        assert!(err.starts_with("nothing to train: all 1 rows name a placeholder user id"), "{err}");
    }

    #[test]
    fn plain_interactions_use_value_and_count_as_consumed() {
        let rows = [
            RawInteraction {
                user_id: "u1".into(),
                item_id: "x".into(),
                value: Some(4.0),
                timestamp: Some(5),
            },
            RawInteraction { user_id: "u2".into(), item_id: "y".into(), value: None, timestamp: None },
        ];
        let catalog = Catalog { items: vec![Item { item_id: "z".into(), ..Item::default() }] };
        let data = Dataset::from_interactions(&rows, Some(catalog), &WeightConfig::default()).unwrap();
        // The catalog's items come first.
        assert_eq!(data.items.ids(), ["z", "x", "y"]);
        assert_eq!(data.matrix().get(0, 1), Some(&4.0));
        assert_eq!(data.consumed().of(UserIdx(1)).collect::<Vec<_>>(), vec![(ItemIdx(2), 0)]);
        assert_eq!(data.lookup_user("user_id:u2"), Some(UserIdx(1)));
        assert_eq!(data.catalog.len(), 3);
    }

    #[test]
    fn an_identifier_in_any_spelling_is_one_person_in_interactions() {
        let row = |user: &str, item: &str| RawInteraction {
            user_id: user.into(),
            item_id: item.into(),
            value: None,
            timestamp: None,
        };
        let rows =
            [row("email:Ann@Example.com", "x"), row("email: ann@example.com", "y"), row("acme:7", "x")];
        let data = Dataset::from_interactions(&rows, None, &WeightConfig::default()).unwrap();
        assert_eq!(data.n_users(), 2);
        let ann = Identifier::new(IdentifierKind::Email, "ann@example.com").unwrap();
        let person = data.lookup_user(&ann.key()).unwrap();
        assert_eq!(data.consumed().of(person).count(), 2);
        assert_eq!(data.lookup_user("user_id:acme:7"), Some(UserIdx(1)));
    }

    #[test]
    fn negative_weights_are_refused() {
        let mut weights = WeightConfig::default();
        weights.event_weights.insert("view".into(), -1.0);
        let err = weights.validate().unwrap_err().to_string();
        assert!(err.contains("weights.view"), "{err}");
    }
}

//! What each person consumed: purchases net of returns, per person and item, with the time
//! of the last purchase and, for the few pairs held more than once, how many. Held as flat
//! arrays (12 bytes per pair) because it is built while every interaction row is still in
//! memory, at the training run's peak.

use std::collections::BTreeMap;

use crate::dataset::{Interaction, WeightConfig};
use crate::ids::{IdMap, ItemIdx, UserIdx};
use crate::schema::Event;

/// Per identifier key (`kind:value`), the items held (item, time of the last purchase,
/// units), sorted by item.
pub type HeldByIdentifier = BTreeMap<String, Vec<(u32, i64, u32)>>;

/// Per person, the items consumed (purchases net of returns), sorted by item, each with the
/// time of its last consuming event (so a repurchase window can let consumables back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Person `u`'s pairs are `offsets[u]..offsets[u + 1]`.
    offsets: Vec<usize>,
    items: Vec<ItemIdx>,
    times: Vec<i64>,
    /// The pairs held more than once (bought more often than returned), with the units held,
    /// sorted; every other pair holds one.
    multiple: Vec<(UserIdx, ItemIdx, u32)>,
}

impl Consumed {
    /// Nets the consuming rows of `interactions` (consumption +1 a purchase, -1 a return)
    /// for `n_users` persons, in time order (a purchase before a return of the same second):
    /// a return cancels one earlier purchase, and one with none before it (a gift, or a
    /// purchase older than the data) cancels nothing, so a later purchase still counts.
    /// Memory: the result's arrays, sized to the consuming rows and shrunk after netting, a
    /// sign per consuming row while netting, and one person's rows at a time; no map over
    /// all pairs.
    pub fn from_interactions(n_users: usize, interactions: &[Interaction]) -> Self {
        let consuming = || interactions.iter().filter(|i| i.consumption != 0);
        let mut offsets = vec![0usize; n_users + 1];
        for interaction in consuming() {
            offsets[interaction.user.get() + 1] += 1;
        }
        for u in 0..n_users {
            offsets[u + 1] += offsets[u];
        }
        let total = offsets[n_users];
        let mut items = vec![ItemIdx(0); total];
        let mut times = vec![0i64; total];
        let mut returns = vec![false; total];
        let mut cursor = offsets.clone();
        for interaction in consuming() {
            let slot = &mut cursor[interaction.user.get()];
            items[*slot] = interaction.item;
            times[*slot] = interaction.timestamp;
            returns[*slot] = interaction.consumption < 0;
            *slot += 1;
        }
        drop(cursor);
        // Per person: sort the rows by item and time (purchases first within a second), then
        // net each item's rows into one pair written at `write`, which never passes the rows
        // still to be read.
        let mut rows: Vec<(ItemIdx, i64, bool)> = Vec::new();
        let mut write = 0;
        let mut multiple = Vec::new();
        for u in 0..n_users {
            let (start, end) = (offsets[u], offsets[u + 1]);
            offsets[u] = write;
            rows.clear();
            rows.extend((start..end).map(|r| (items[r], times[r], returns[r])));
            rows.sort_unstable();
            for group in rows.chunk_by(|a, b| a.0 == b.0) {
                let (mut held, mut last) = (0u32, i64::MIN);
                for &(_, at, returned) in group {
                    if returned {
                        held = held.saturating_sub(1);
                    } else {
                        held += 1;
                        last = at;
                    }
                }
                if held > 1 {
                    multiple.push((UserIdx(u as u32), group[0].0, held));
                }
                if held > 0 {
                    items[write] = group[0].0;
                    times[write] = last;
                    write += 1;
                }
            }
        }
        offsets[n_users] = write;
        items.truncate(write);
        items.shrink_to_fit();
        times.truncate(write);
        times.shrink_to_fit();
        Consumed { offsets, items, times, multiple }
    }

    /// Number of persons.
    pub fn n_users(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Number of (person, item) pairs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no person consumed anything.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A person's consumed items, sorted by item, each with its last purchase time; empty for
    /// a person out of range.
    pub fn of(&self, user: UserIdx) -> impl ExactSizeIterator<Item = (ItemIdx, i64)> + '_ {
        let range = match (self.offsets.get(user.get()), self.offsets.get(user.get() + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        };
        self.items[range.clone()].iter().copied().zip(self.times[range].iter().copied())
    }

    /// The pairs held more than once, with the units held, sorted by person and item; every
    /// other pair of [`Consumed::of`] holds one.
    pub fn multiple(&self) -> &[(UserIdx, ItemIdx, u32)] {
        &self.multiple
    }

    /// What `events` show held under each identifier they carry, netted per identifier as
    /// [`Consumed::from_interactions`] nets per person (purchases and returns by `weights`;
    /// items `items` does not know are left out). For events that no person was resolved
    /// from (a person who withheld consent is never trained on), so that what they bought
    /// is still never offered back.
    pub fn by_identifier(events: &[Event], items: &IdMap, weights: &WeightConfig) -> HeldByIdentifier {
        let mut keys = IdMap::default();
        let mut rows = Vec::new();
        for event in events {
            let consumption = weights.weigh(event).consumption;
            let Some(item) = event.item_id.as_deref().and_then(|id| items.get(id)) else { continue };
            if consumption == 0 {
                continue;
            }
            for identifier in &event.identifiers {
                let user = UserIdx(keys.get_or_insert(&identifier.key()));
                rows.push(Interaction {
                    user,
                    item: ItemIdx(item),
                    weight: 0.0,
                    timestamp: event.timestamp,
                    consumption,
                });
            }
        }
        let consumed = Consumed::from_interactions(keys.len(), &rows);
        let mut held = HeldByIdentifier::new();
        for (user, key) in keys.ids().iter().enumerate() {
            let user = UserIdx(user as u32);
            let list: Vec<(u32, i64, u32)> = consumed
                .of(user)
                .map(|(item, at)| {
                    let units = consumed
                        .multiple
                        .binary_search_by_key(&(user, item), |&(u, i, _)| (u, i))
                        .map_or(1, |found| consumed.multiple[found].2);
                    (item.0, at, units)
                })
                .collect();
            if !list.is_empty() {
                held.insert(key.clone(), list);
            }
        }
        held
    }

    /// One list per person, in person order.
    pub fn lists(&self) -> impl ExactSizeIterator<Item = Vec<(ItemIdx, i64)>> + '_ {
        (0..self.n_users()).map(|u| self.of(UserIdx(u as u32)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn row(user: u32, item: u32, timestamp: i64, consumption: i8) -> Interaction {
        Interaction { user: UserIdx(user), item: ItemIdx(item), weight: 1.0, timestamp, consumption }
    }

    #[test]
    fn returns_cancel_purchases_and_the_last_purchase_time_is_kept() {
        let rows = [
            row(0, 5, 10, 1),
            row(0, 5, 30, 1),
            row(0, 5, 40, -1),
            row(0, 2, 7, 1),
            row(0, 9, 8, 0),
            row(1, 3, 4, 1),
            row(1, 3, 5, -1),
            row(2, 1, 6, -1),
            // A return before any purchase (a gift) cancels nothing: the purchase after it counts.
            row(3, 4, 10, -1),
            row(3, 4, 20, 1),
            // A purchase and its return in the same second: returned.
            row(3, 6, 50, -1),
            row(3, 6, 50, 1),
        ];
        let consumed = Consumed::from_interactions(4, &rows);
        let lists: Vec<Vec<(ItemIdx, i64)>> = consumed.lists().collect();
        assert_eq!(
            lists,
            vec![vec![(ItemIdx(2), 7), (ItemIdx(5), 30)], vec![], vec![], vec![(ItemIdx(4), 20)]]
        );
        assert_eq!(consumed.len(), 3);
        assert_eq!(consumed.of(UserIdx(9)).len(), 0);
        // Bought twice and returned once: one held, like every other pair.
        assert!(consumed.multiple().is_empty());
        let twice = Consumed::from_interactions(2, &[row(1, 3, 4, 1), row(1, 3, 5, 1), row(1, 2, 5, 1)]);
        assert_eq!(twice.multiple(), &[(UserIdx(1), ItemIdx(3), 2)]);
    }

    #[test]
    fn by_identifier_nets_each_identifier_key_on_its_own() {
        use crate::schema::{Channel, EventType, Identifier, IdentifierKind};
        let event = |ids: &[&str], kind: EventType, item: &str, timestamp: i64| Event {
            identifiers: ids.iter().map(|id| Identifier::new(IdentifierKind::Email, id).unwrap()).collect(),
            channel: Channel::Store,
            event_type: kind,
            item_id: Some(item.into()),
            timestamp,
            value: None,
            event_id: None,
        };
        let mut items = IdMap::new();
        for id in ["a", "b", "c"] {
            items.get_or_insert(id);
        }
        let events = [
            event(&["x@example.com"], EventType::Purchase, "a", 10),
            event(&["x@example.com"], EventType::Purchase, "a", 20),
            event(&["x@example.com"], EventType::Return, "a", 30),
            event(&["x@example.com"], EventType::Purchase, "a", 40),
            // Two identifiers on one purchase: each holds it.
            event(&["x@example.com", "y@example.com"], EventType::Purchase, "b", 5),
            // Views do not hold; an item the model does not know cannot be stored.
            event(&["y@example.com"], EventType::View, "c", 6),
            event(&["y@example.com"], EventType::Purchase, "unknown", 7),
            // Bought and returned: nothing held, no entry.
            event(&["z@example.com"], EventType::Purchase, "c", 8),
            event(&["z@example.com"], EventType::Return, "c", 9),
        ];
        let held = Consumed::by_identifier(&events, &items, &WeightConfig::default());
        let key = |id: &str| Identifier::new(IdentifierKind::Email, id).unwrap().key();
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!(held[&key("x@example.com")], vec![(0, 40, 2), (1, 5, 1)]);
        assert_eq!(held[&key("y@example.com")], vec![(1, 5, 1)]);
    }

    proptest! {
        // Against a map over every pair, replaying each pair's rows in time order (purchases
        // first within a second): a return cancels one earlier purchase, if any; an item is
        // consumed when some purchase stays, at the time of its latest purchase.
        #[test]
        fn netting_matches_a_map_over_all_pairs(
            raw in proptest::collection::vec((0u32..6, 0u32..8, 0i64..50, -1i8..=1), 0..200)
        ) {
            let rows: Vec<Interaction> = raw.iter().map(|&(u, i, t, c)| row(u, i, t, c)).collect();
            let mut ordered: Vec<&Interaction> = rows.iter().filter(|r| r.consumption != 0).collect();
            ordered.sort_by_key(|r| (r.timestamp, -r.consumption));
            let mut expected: BTreeMap<(u32, u32), (i32, i64)> = BTreeMap::new();
            for r in ordered {
                let entry = expected.entry((r.user.0, r.item.0)).or_insert((0, i64::MIN));
                entry.0 = (entry.0 + i32::from(r.consumption)).max(0);
                if r.consumption > 0 {
                    entry.1 = entry.1.max(r.timestamp);
                }
            }
            let consumed = Consumed::from_interactions(6, &rows);
            for user in 0..6u32 {
                let want: Vec<(ItemIdx, i64)> = expected
                    .range((user, 0)..(user + 1, 0))
                    .filter(|(_, (count, _))| *count > 0)
                    .map(|(&(_, item), &(_, at))| (ItemIdx(item), at))
                    .collect();
                let got: Vec<(ItemIdx, i64)> = consumed.of(UserIdx(user)).collect();
                prop_assert_eq!(got, want);
            }
            let want: Vec<(UserIdx, ItemIdx, u32)> = expected
                .iter()
                .filter(|(_, (count, _))| *count > 1)
                .map(|(&(user, item), &(count, _))| (UserIdx(user), ItemIdx(item), count as u32))
                .collect();
            prop_assert_eq!(consumed.multiple(), &want[..]);
        }
    }
}

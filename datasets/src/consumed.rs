//! What each person consumed: purchases net of returns, per person and item, with the time
//! of the last purchase and, for the few pairs held more than once, how many. Held as flat
//! arrays (12 bytes per pair) because it is built while every interaction row is still in
//! memory, at the training run's peak.

use std::collections::{BTreeMap, HashMap};

use crate::dataset::{Interaction, WeightConfig};
use crate::identity::Resolution;
use crate::ids::{IdMap, ItemIdx, UserIdx};
use crate::schema::{Event, Identifier};

/// Per identifier key (`kind:value`), the items held (item, time of the last purchase,
/// units), sorted by item.
pub type HeldByIdentifier = BTreeMap<String, Vec<(u32, i64, u32)>>;

/// Per holder (`0..n`), the items `events` (each with its holder) show held: purchases net of
/// returns (by `weights`; items `items` does not know are left out), with the time of the
/// last purchase and the units.
fn held_lists<'a>(
    n: usize,
    events: impl Iterator<Item = (&'a Event, u32)>,
    items: &IdMap,
    weights: &WeightConfig,
) -> Vec<Vec<(u32, i64, u32)>> {
    let mut rows = Vec::new();
    for (event, holder) in events {
        let consumption = weights.weigh(event).consumption;
        let Some(item) = event.item_id.as_deref().and_then(|id| items.get(id)) else { continue };
        if consumption != 0 {
            rows.push(Interaction {
                user: UserIdx(holder),
                item: ItemIdx(item),
                weight: 0.0,
                timestamp: event.timestamp,
                consumption,
            });
        }
    }
    let consumed = Consumed::from_interactions(n, &rows);
    (0..n)
        .map(|user| {
            let user = UserIdx(user as u32);
            consumed
                .of(user)
                .map(|(item, at)| {
                    let units = consumed
                        .multiple
                        .binary_search_by_key(&(user, item), |&(u, i, _)| (u, i))
                        .map_or(1, |found| consumed.multiple[found].2);
                    (item.0, at, units)
                })
                .collect()
        })
        .collect()
}

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

    /// What `events` show held, under every identifier of the person who holds it: the
    /// events' persons as `resolution` (of `events`) resolved them (as training resolves
    /// them: a login joins the cookie and the account), their purchases and returns netted
    /// per person as [`Consumed::from_interactions`] nets them (by `weights`; items `items`
    /// does not know are left out), and each identifier that leads to a person lists what the
    /// person holds. For events no model learned from (a person who withheld consent is
    /// never trained on), so that what they bought is still never offered back, whichever of
    /// their identifiers asks.
    pub fn by_identifier(
        events: &[Event],
        resolution: &Resolution,
        items: &IdMap,
        weights: &WeightConfig,
    ) -> HeldByIdentifier {
        let persons = events.iter().zip(&resolution.person_of_event).filter_map(|(e, p)| Some((e, (*p)?)));
        let lists = held_lists(resolution.persons.len(), persons, items, weights);
        resolution
            .aliases
            .iter()
            .filter_map(|(key, &person)| {
                let list = lists.get(person as usize).filter(|list| !list.is_empty())?;
                Some((key.clone(), list.clone()))
            })
            .collect()
    }

    /// What `events` show held under each of `refused`, identifiers resolution refused for
    /// merging (so no person answers for them): the purchases and returns of the events that
    /// carry each, netted as [`Consumed::from_interactions`] nets them. Asked by such an
    /// identifier (an email a shared device put in conflict), what it bought is still known.
    pub fn by_refused(
        events: &[Event],
        refused: &[Identifier],
        items: &IdMap,
        weights: &WeightConfig,
    ) -> HeldByIdentifier {
        let index: HashMap<&Identifier, u32> = refused.iter().zip(0..).collect();
        let carried = events.iter().flat_map(|event| {
            event.identifiers.iter().filter_map(|i| index.get(i)).map(move |&holder| (event, holder))
        });
        let lists = held_lists(refused.len(), carried, items, weights);
        refused
            .iter()
            .zip(lists)
            .filter(|(_, list)| !list.is_empty())
            .map(|(i, list)| (i.key(), list))
            .collect()
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
    fn by_identifier_nets_each_person_and_lists_it_under_all_their_identifiers() {
        use crate::identity::IdentityRules;
        use crate::schema::{Channel, EventType, Identifier, IdentifierKind};
        let id = |raw: &str| {
            let (kind, value) = raw.split_once(':').unwrap();
            Identifier::new(IdentifierKind::parse(kind).unwrap(), value).unwrap()
        };
        let event = |ids: &[&str], kind: EventType, item: &str, timestamp: i64| Event {
            identifiers: ids.iter().map(|raw| id(raw)).collect(),
            channel: Channel::Store,
            event_type: kind,
            item_id: Some(item.into()),
            timestamp,
            value: None,
            event_id: None,
        };
        let mut items = IdMap::new();
        for id in ["a", "b", "c", "d"] {
            items.get_or_insert(id);
        }
        let events = [
            event(&["email:x@example.com"], EventType::Purchase, "a", 10),
            event(&["email:x@example.com"], EventType::Purchase, "a", 20),
            event(&["email:x@example.com"], EventType::Return, "a", 30),
            event(&["email:x@example.com"], EventType::Purchase, "a", 40),
            // Two identifiers on one purchase: one person, who holds it under both.
            event(&["email:x@example.com", "loyalty_id:L1"], EventType::Purchase, "b", 5),
            // A login joins a cookie: what the card bought is the cookie's person's too, and a
            // return under the cookie nets the card's purchase.
            event(&["cookie_id:c1", "loyalty_id:L1"], EventType::Custom("login".into()), "c", 6),
            event(&["loyalty_id:L1"], EventType::Purchase, "d", 7),
            event(&["cookie_id:c1"], EventType::Return, "d", 8),
            // Views do not hold; an item the model does not know cannot be stored.
            event(&["cookie_id:c1"], EventType::View, "c", 6),
            event(&["cookie_id:c1"], EventType::Purchase, "unknown", 7),
            // Another person, bought and returned: nothing held, no entry.
            event(&["email:z@example.com"], EventType::Purchase, "c", 8),
            event(&["email:z@example.com"], EventType::Return, "c", 9),
        ];
        let resolution = crate::identity::resolve(&events, &IdentityRules::default());
        let held = Consumed::by_identifier(&events, &resolution, &items, &WeightConfig::default());
        let all = vec![(0, 40, 2), (1, 5, 1)];
        let expected: HeldByIdentifier = ["email:x@example.com", "loyalty_id:L1", "cookie_id:c1"]
            .into_iter()
            .map(|raw| (id(raw).key(), all.clone()))
            .collect();
        assert_eq!(held, expected);
        // The persons known under more than one identifier, for the live graph to join.
        let mut joined: Vec<String> = ["cookie_id:c1", "email:x@example.com", "loyalty_id:L1"]
            .iter()
            .map(|raw| id(raw).key())
            .collect();
        joined.sort();
        assert_eq!(resolution.groups(), [joined]);
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

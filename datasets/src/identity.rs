//! Identity resolution: events whose identifiers overlap belong to one person.
//!
//! A union-find over identifiers, with merge protection. Each identifier kind has a limit on
//! how many identifiers of that kind one person may hold (one `user_id`, at most five emails,
//! …). Events are processed in time order; within an event, identifiers are taken in priority
//! order ([`IdentifierKind`] order), and the event's highest-priority identifier anchors it.
//! Linking another identifier whose person would push the merged person over a limit is
//! refused, and that identifier is blamed: it is the lower-priority bridge (a kiosk's
//! `device_id` seen with two loyalty cards, a family email seen with two accounts).
//!
//! Refused identifiers are then excluded from merging altogether and the graph is rebuilt from
//! scratch, so a bridge that was used before it was caught leaves no trace. This repeats until
//! no new identifier is refused (in practice twice). An event that carries only refused
//! identifiers is attributed to a person made of that identifier alone (an anonymous profile
//! of the shared device).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::ids::IdMap;
use crate::schema::{Event, Identifier, IdentifierKind};

/// How many identifiers of each kind one person may hold; `None` means no limit.
///
/// This is also the trainer's `[identity]` table: `limits = { email = 5 }` changes the
/// kinds it names (0 means unlimited) and keeps the defaults of the others; an unknown kind
/// is an error. Artifacts store it with every kind listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "LimitsTable", into = "LimitsTable")]
pub struct IdentityLimits {
    per_kind: [Option<usize>; IdentifierKind::ALL.len()],
}

/// The `[identity]` table as written: limits by kind name, 0 for unlimited.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsTable {
    limits: std::collections::BTreeMap<String, usize>,
}

impl Default for LimitsTable {
    fn default() -> Self {
        LimitsTable::from(IdentityLimits::default())
    }
}

impl TryFrom<LimitsTable> for IdentityLimits {
    type Error = String;

    fn try_from(table: LimitsTable) -> std::result::Result<Self, String> {
        let mut limits = IdentityLimits::default();
        for (name, limit) in table.limits {
            let kind = IdentifierKind::parse(&name).ok_or_else(|| {
                format!(
                    "unknown identifier kind `{name}` (expected one of {})",
                    IdentifierKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })?;
            limits.per_kind[kind.index()] = (limit > 0).then_some(limit);
        }
        Ok(limits)
    }
}

impl From<IdentityLimits> for LimitsTable {
    fn from(limits: IdentityLimits) -> Self {
        let limits = IdentifierKind::ALL
            .into_iter()
            .map(|kind| (kind.as_str().to_string(), limits.per_kind[kind.index()].unwrap_or(0)))
            .collect();
        LimitsTable { limits }
    }
}

impl Default for IdentityLimits {
    /// One account, loyalty card and POS number; five emails; three phones; ten devices; fifty
    /// cookies (cookies are cleared and renewed often).
    fn default() -> Self {
        let mut limits = IdentityLimits { per_kind: [None; IdentifierKind::ALL.len()] };
        for (kind, limit) in [
            (IdentifierKind::UserId, 1),
            (IdentifierKind::LoyaltyId, 1),
            (IdentifierKind::PosCustomerId, 1),
            (IdentifierKind::Email, 5),
            (IdentifierKind::Phone, 3),
            (IdentifierKind::DeviceId, 10),
            (IdentifierKind::CookieId, 50),
        ] {
            limits.per_kind[kind.index()] = Some(limit);
        }
        limits
    }
}

impl IdentityLimits {
    /// Limits with no bound for any kind.
    pub fn unlimited() -> Self {
        IdentityLimits { per_kind: [None; IdentifierKind::ALL.len()] }
    }

    /// Sets the limit for `kind` (`None`: unlimited). A limit of 0 is refused.
    pub fn set(&mut self, kind: IdentifierKind, limit: Option<usize>) -> Result<()> {
        if limit == Some(0) {
            return Err(Error::InvalidConfig {
                name: format!("identity.limits.{kind}"),
                reason: "must be at least 1".into(),
            });
        }
        self.per_kind[kind.index()] = limit;
        Ok(())
    }

    /// The limit for `kind`.
    pub fn get(&self, kind: IdentifierKind) -> Option<usize> {
        self.per_kind[kind.index()]
    }
}

/// An identifier that was not used for merging, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedIdentifier {
    /// The identifier.
    pub identifier: Identifier,
    /// The limit it would have broken, as a sentence fragment.
    pub reason: String,
}

/// What identity resolution did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityReport {
    /// Events resolved.
    pub n_events: usize,
    /// Distinct identifiers seen.
    pub n_identifiers: usize,
    /// Persons found.
    pub n_persons: usize,
    /// Successful merges of two partial persons.
    pub n_merges: usize,
    /// Identifiers excluded from merging.
    pub refused: Vec<RefusedIdentifier>,
    /// Rebuild rounds it took for the refused set to settle.
    pub rounds: usize,
}

/// The outcome: a dense person index for every event, and a lookup from identifiers.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The person of each input event, in input order.
    pub person_of_event: Vec<u32>,
    /// Each person's canonical key: the value of its highest-priority identifier, bare for a
    /// `user_id` and `kind:value` otherwise.
    pub persons: IdMap,
    /// Every identifier key (`kind:value`) that leads to a person.
    pub aliases: HashMap<String, u32>,
    /// Counts and refusals.
    pub report: IdentityReport,
}

/// The canonical person key for an identifier.
pub fn canonical_key(identifier: &Identifier) -> String {
    if identifier.kind == IdentifierKind::UserId { identifier.value.clone() } else { identifier.key() }
}

struct UnionFind {
    parent: Vec<u32>,
    counts: Vec<[u32; IdentifierKind::ALL.len()]>,
}

impl UnionFind {
    fn new(kinds: &[IdentifierKind]) -> Self {
        let counts = kinds
            .iter()
            .map(|kind| {
                let mut c = [0; IdentifierKind::ALL.len()];
                c[kind.index()] = 1;
                c
            })
            .collect();
        UnionFind { parent: (0..kinds.len() as u32).collect(), counts }
    }

    fn find(&mut self, mut node: u32) -> u32 {
        while self.parent[node as usize] != node {
            let grand = self.parent[self.parent[node as usize] as usize];
            self.parent[node as usize] = grand;
            node = grand;
        }
        node
    }

    /// The first kind whose limit merging `a` and `b` would break.
    fn violation(&self, a: u32, b: u32, limits: &IdentityLimits) -> Option<(IdentifierKind, usize)> {
        IdentifierKind::ALL.into_iter().find_map(|kind| {
            let limit = limits.get(kind)?;
            let total =
                (self.counts[a as usize][kind.index()] + self.counts[b as usize][kind.index()]) as usize;
            (total > limit).then_some((kind, limit))
        })
    }

    /// Merges `from` into `into` (both roots).
    fn union(&mut self, into: u32, from: u32) {
        self.parent[from as usize] = into;
        let moved = self.counts[from as usize];
        for (total, add) in self.counts[into as usize].iter_mut().zip(moved) {
            *total += add;
        }
    }
}

/// Resolves the persons behind `events` under `limits`.
pub fn resolve(events: &[Event], limits: &IdentityLimits) -> Resolution {
    // Intern identifiers as graph nodes.
    let mut node_of: HashMap<&Identifier, u32> = HashMap::new();
    let mut nodes: Vec<&Identifier> = Vec::new();
    let mut event_nodes: Vec<Vec<u32>> = events
        .iter()
        .map(|event| {
            event
                .identifiers
                .iter()
                .map(|identifier| {
                    *node_of.entry(identifier).or_insert_with(|| {
                        nodes.push(identifier);
                        (nodes.len() - 1) as u32
                    })
                })
                .collect()
        })
        .collect();
    // Priority order of the nodes, computed once, so events sort their identifiers by an
    // integer rank instead of comparing strings.
    let mut by_priority: Vec<u32> = (0..nodes.len() as u32).collect();
    by_priority.sort_by(|&a, &b| nodes[a as usize].cmp(nodes[b as usize]));
    let mut rank = vec![0u32; nodes.len()];
    for (position, &node) in by_priority.iter().enumerate() {
        rank[node as usize] = position as u32;
    }
    for ids in &mut event_nodes {
        ids.sort_unstable_by_key(|&node| rank[node as usize]);
        ids.dedup();
    }
    let kinds: Vec<IdentifierKind> = nodes.iter().map(|identifier| identifier.kind).collect();

    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| (events[i].timestamp, i));

    let mut refused: Vec<(u32, String)> = Vec::new();
    let mut is_refused = vec![false; nodes.len()];
    let mut rounds = 0;
    let (mut uf, n_merges) = loop {
        rounds += 1;
        let mut uf = UnionFind::new(&kinds);
        let mut n_merges = 0;
        let mut newly_refused = false;
        for &event_idx in &order {
            let mut usable = event_nodes[event_idx].iter().copied().filter(|&n| !is_refused[n as usize]);
            let Some(anchor) = usable.next() else {
                continue;
            };
            let usable: Vec<u32> = usable.collect();
            for node in usable {
                let target = uf.find(anchor);
                let root = uf.find(node);
                if root == target {
                    continue;
                }
                match uf.violation(target, root, limits) {
                    None => {
                        uf.union(target, root);
                        n_merges += 1;
                    }
                    Some((kind, limit)) => {
                        is_refused[node as usize] = true;
                        newly_refused = true;
                        refused.push((
                            node,
                            format!(
                                "would give one person more than {limit} {kind} identifier{}",
                                if limit == 1 { "" } else { "s" }
                            ),
                        ));
                    }
                }
            }
        }
        if !newly_refused || rounds >= 8 {
            break (uf, n_merges);
        }
    };

    // Dense persons, in order of first appearance in time.
    let mut persons = IdMap::new();
    let mut person_of_root: HashMap<u32, u32> = HashMap::new();
    let mut person_of_event = vec![0u32; events.len()];
    // The highest-priority identifier of each root names its person.
    let mut best_of_root: HashMap<u32, u32> = HashMap::new();
    for node in 0..nodes.len() as u32 {
        if is_refused[node as usize] {
            continue;
        }
        let root = uf.find(node);
        let best = best_of_root.entry(root).or_insert(node);
        if rank[node as usize] < rank[*best as usize] {
            *best = node;
        }
    }
    let mut aliases = HashMap::new();
    for &event_idx in &order {
        let ids = &event_nodes[event_idx];
        let anchor = ids.iter().copied().find(|&n| !is_refused[n as usize]);
        let (root, name_node) = match anchor {
            Some(node) => {
                let root = uf.find(node);
                (root, best_of_root[&root])
            }
            // Only refused identifiers: a profile of that identifier alone.
            None => (ids[0], ids[0]),
        };
        let person = *person_of_root
            .entry(root)
            .or_insert_with(|| persons.get_or_insert(&canonical_key(nodes[name_node as usize])));
        person_of_event[event_idx] = person;
        if anchor.is_none() {
            aliases.insert(nodes[name_node as usize].key(), person);
        }
    }
    for node in 0..nodes.len() as u32 {
        if !is_refused[node as usize]
            && let Some(&person) = person_of_root.get(&uf.find(node))
        {
            aliases.insert(nodes[node as usize].key(), person);
        }
    }

    refused.sort_by_key(|(node, _)| rank[*node as usize]);
    let report = IdentityReport {
        n_events: events.len(),
        n_identifiers: nodes.len(),
        n_persons: persons.len(),
        n_merges,
        refused: refused
            .into_iter()
            .map(|(node, reason)| RefusedIdentifier { identifier: nodes[node as usize].clone(), reason })
            .collect(),
        rounds,
    };
    Resolution { person_of_event, persons, aliases, report }
}

/// Pairwise agreement of a resolution with the ground truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairwiseScore {
    /// Of the identifier pairs put in one person, the share that truly are one person.
    pub precision: f64,
    /// Of the identifier pairs that truly are one person, the share put in one person.
    pub recall: f64,
    /// Identifiers scored (those with both a predicted and a true person).
    pub n_identifiers: usize,
}

/// Scores `resolution` against `truth`, a map from identifier key (`kind:value`, normalised)
/// to the true person. Identifiers missing from either side are not scored.
pub fn score_pairwise(resolution: &Resolution, truth: &HashMap<String, String>) -> PairwiseScore {
    let mut cells: HashMap<(u32, &str), u64> = HashMap::new();
    let mut predicted: HashMap<u32, u64> = HashMap::new();
    let mut actual: HashMap<&str, u64> = HashMap::new();
    let mut n_identifiers = 0;
    for (key, &person) in &resolution.aliases {
        let Some(true_person) = truth.get(key) else {
            continue;
        };
        n_identifiers += 1;
        *cells.entry((person, true_person)).or_default() += 1;
        *predicted.entry(person).or_default() += 1;
        *actual.entry(true_person).or_default() += 1;
    }
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let true_positive: u64 = cells.values().map(|&n| pairs(n)).sum();
    let predicted_pairs: u64 = predicted.values().map(|&n| pairs(n)).sum();
    let actual_pairs: u64 = actual.values().map(|&n| pairs(n)).sum();
    let ratio = |num: u64, den: u64| {
        if den == 0 { 1.0 } else { num as f64 / den as f64 }
    };
    PairwiseScore {
        precision: ratio(true_positive, predicted_pairs),
        recall: ratio(true_positive, actual_pairs),
        n_identifiers,
    }
}

/// Finds a person by canonical key or bare user id, else by any identifier given as
/// `kind:value` (raw emails and phones are normalised and hashed first), through `alias`,
/// which maps an identifier key to a person.
pub fn find_person(persons: &IdMap, key: &str, alias: impl Fn(&str) -> Option<u32>) -> Option<u32> {
    persons.get(key).or_else(|| alias(&Identifier::parse_key(key)?.key()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_table_overrides_named_kinds_and_keeps_the_rest() {
        let limits: IdentityLimits =
            serde_json::from_str(r#"{"limits": {"email": 2, "cookie_id": 0}}"#).unwrap();
        assert_eq!(limits.get(IdentifierKind::Email), Some(2));
        assert_eq!(limits.get(IdentifierKind::CookieId), None);
        assert_eq!(limits.get(IdentifierKind::Phone), IdentityLimits::default().get(IdentifierKind::Phone));
        let round_trip: IdentityLimits =
            serde_json::from_value(serde_json::to_value(&limits).unwrap()).unwrap();
        assert_eq!(round_trip, limits);
        let err = serde_json::from_str::<IdentityLimits>(r#"{"limits": {"shoe_size": 1}}"#).unwrap_err();
        assert!(err.to_string().starts_with("unknown identifier kind `shoe_size`"), "{err}");
    }
    use crate::schema::{Channel, EventType};

    fn event(ts: i64, ids: &[(IdentifierKind, &str)]) -> Event {
        Event {
            identifiers: ids.iter().map(|(kind, v)| Identifier::new(*kind, v).unwrap()).collect(),
            channel: Channel::Web,
            event_type: EventType::View,
            item_id: Some("i".into()),
            timestamp: ts,
            value: None,
            event_id: None,
        }
    }

    use IdentifierKind::{CookieId, DeviceId, Email, LoyaltyId, UserId};

    #[test]
    fn overlapping_identifiers_join_one_person() {
        let events = [
            event(1, &[(CookieId, "c1")]),
            event(2, &[(CookieId, "c1"), (UserId, "u1")]),
            event(3, &[(Email, "a@x.org"), (UserId, "u1")]),
            event(4, &[(LoyaltyId, "L1"), (Email, "a@x.org")]),
            event(5, &[(CookieId, "c2")]),
        ];
        let r = resolve(&events, &IdentityLimits::default());
        assert_eq!(r.persons.len(), 2);
        assert_eq!(r.person_of_event[..4], [0, 0, 0, 0]);
        assert_eq!(r.person_of_event[4], 1);
        // The person is named by its account id; the cookie-only person by its cookie.
        assert_eq!(r.persons.id(0), Some("u1"));
        assert_eq!(r.persons.id(1), Some("cookie_id:c2"));
        assert_eq!(r.aliases["loyalty_id:L1"], 0);
        assert_eq!(r.report.n_merges, 3);
        assert!(r.report.refused.is_empty());
    }

    #[test]
    fn kiosk_device_does_not_glue_card_holders() {
        // A store kiosk scanned with three loyalty cards: the device is the bridge and is refused.
        let events = [
            event(1, &[(DeviceId, "kiosk"), (LoyaltyId, "A")]),
            event(2, &[(DeviceId, "kiosk"), (LoyaltyId, "B")]),
            event(3, &[(DeviceId, "kiosk"), (LoyaltyId, "C")]),
            event(4, &[(DeviceId, "kiosk")]),
        ];
        let r = resolve(&events, &IdentityLimits::default());
        let people: std::collections::HashSet<u32> = r.person_of_event[..3].iter().copied().collect();
        assert_eq!(people.len(), 3, "each card holder stays a person of their own");
        assert_eq!(r.report.refused.len(), 1);
        assert_eq!(r.report.refused[0].identifier.key(), "device_id:kiosk");
        assert!(r.report.refused[0].reason.contains("loyalty_id"));
        // The anonymous kiosk event goes to a profile of the kiosk alone.
        assert!(!people.contains(&r.person_of_event[3]));
        assert_eq!(r.persons.id(r.person_of_event[3]), Some("device_id:kiosk"));
        // The first card holder kept nothing of the kiosk from the first round.
        assert_eq!(r.aliases["device_id:kiosk"], r.person_of_event[3]);
        assert_eq!(r.report.rounds, 2);
    }

    #[test]
    fn limit_on_emails_is_configurable() {
        let events: Vec<Event> =
            (0..4).map(|i| event(i, &[(UserId, "u1"), (Email, &format!("e{i}@x.org"))])).collect();
        let r = resolve(&events, &IdentityLimits::default());
        assert!(r.report.refused.is_empty());
        let mut limits = IdentityLimits::default();
        limits.set(Email, Some(2)).unwrap();
        let r = resolve(&events, &limits);
        assert_eq!(r.report.refused.len(), 2);
        // The refused emails still arrive at the account's person through the anchor.
        assert!(r.person_of_event.iter().all(|&p| p == 0));
        assert!(limits.set(Email, Some(0)).is_err());
    }

    #[test]
    fn unlimited_merges_everything_connected() {
        let events =
            [event(1, &[(DeviceId, "tab"), (UserId, "a")]), event(2, &[(DeviceId, "tab"), (UserId, "b")])];
        let r = resolve(&events, &IdentityLimits::unlimited());
        assert_eq!(r.persons.len(), 1);
        let r = resolve(&events, &IdentityLimits::default());
        assert_eq!(r.persons.len(), 2);
    }

    #[test]
    fn pairwise_score_counts_pairs() {
        let events =
            [event(1, &[(UserId, "a"), (CookieId, "c1")]), event(2, &[(UserId, "b"), (CookieId, "c2")])];
        let r = resolve(&events, &IdentityLimits::default());
        // Truth: c2 belongs to a, not b. Predicted pairs: (a,c1) right, (b,c2) wrong.
        // True pairs: (a,c1), (a,c2), (c1,c2): one of three found.
        let truth: HashMap<String, String> =
            [("user_id:a", "P"), ("cookie_id:c1", "P"), ("cookie_id:c2", "P"), ("user_id:b", "Q")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let score = score_pairwise(&r, &truth);
        assert_eq!(score.n_identifiers, 4);
        assert!((score.precision - 0.5).abs() < 1e-12);
        assert!((score.recall - 1.0 / 3.0).abs() < 1e-12);
    }
}

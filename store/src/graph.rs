//! The live identity graph: the trained model's persons, then every link the channels and
//! the API made since, replayed through the trainer's own [`IdentityGraph`] and rules.
//!
//! The graph is derived, never stored: at start-up (and whenever another model is loaded) it
//! is rebuilt from the model's persons ([`Seed`]) and the identity log ([`LinkRecord`]s, in
//! sequence order). Afterwards each new link is applied as it arrives; when a link is refused
//! for a broken limit or a hot identifier, or an unlink separates two identifiers, the persons
//! it touches are reset and their records replayed, exactly as training rebuilds after a
//! refusal. So a person is always what the log says, and an unlink is exact: each side keeps
//! the events filed under its own identifiers.
//!
//! Memory: one node per identifier the model or the log knows, and one record per distinct
//! set of identifiers seen together (repeats of a set add nothing, and are not logged).

use std::collections::HashSet;

use datasets::identity::{IdentityGraph, IdentityRules, LinkOutcome, RefusalKind, canonical_key};
use datasets::schema::{Identifier, IdentifierKind};

use crate::record::{LinkKind, LinkRecord};

/// The persons of a trained model, to start the live graph from.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    /// Each trained person's identifiers.
    pub groups: Vec<Vec<Identifier>>,
    /// Identifiers training refused for merging (each a person of its own).
    pub refused: Vec<Identifier>,
    /// Where the model's data ends (seconds since the epoch): identifiers erased at or after
    /// it are left out of the groups (the model learned them before the erasure). `i64::MIN`
    /// when unknown (a model not trained from this store's export): every erasure counts.
    pub data_until: i64,
    /// The erasures the model's export knew, when it recorded them: then an erasure not
    /// among them (or newer) is one the model may have learned, and `data_until` is not
    /// consulted ([`may_have_learned`]).
    pub erasures_known: Option<std::collections::BTreeMap<String, i64>>,
}

/// Whether a model may have learned the identifier whose suppression hash is `hash`, erased
/// at `at`: with the erasures its export knew, when it is not among them or was erased again
/// since; otherwise, when it was erased at or after the end of the model's data.
pub fn may_have_learned(
    hash: &str,
    at: i64,
    data_until: i64,
    erasures_known: Option<&std::collections::BTreeMap<String, i64>>,
) -> bool {
    match erasures_known {
        Some(known) => known.get(hash).is_none_or(|&before| at > before),
        None => at >= data_until,
    }
}

/// One person as the graph knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonIds {
    /// The person's key: its highest-priority identifier ([`canonical_key`]).
    pub key: String,
    /// Every identifier of the person, in priority order.
    pub identifiers: Vec<Identifier>,
    /// Why the person's identifier is refused for merging, when the person is a refused
    /// identifier on its own (a shared device's anonymous profile).
    pub refused: Option<String>,
    /// Whether the graph knows the person (an identifier it never saw is a person alone).
    pub known: bool,
}

#[derive(Debug, Clone)]
struct Record {
    nodes: Box<[u32]>,
    at: i64,
    /// The identity log entry; `None` for the model's persons.
    link: Option<u64>,
}

/// The live identity graph; see the module docs.
#[derive(Debug, Clone)]
pub struct LiveGraph {
    graph: IdentityGraph,
    records: Vec<Record>,
    /// Per node, the records that touch it.
    by_node: Vec<Vec<u32>>,
    /// Identifier sets already recorded.
    known_sets: HashSet<Box<[u32]>>,
}

impl LiveGraph {
    /// An empty graph under `rules`.
    pub fn new(rules: IdentityRules) -> Self {
        LiveGraph {
            graph: IdentityGraph::new(rules),
            records: Vec::new(),
            by_node: Vec::new(),
            known_sets: HashSet::new(),
        }
    }

    /// The graph of `seed`'s persons and the identity log `links` (in sequence order), with
    /// the identifiers `is_suppressed` names left out of the seed. The log is taken whole: an
    /// erasure deletes or redacts every entry naming the erased identifiers, so an entry that
    /// names one now was made after the erasure (the identifier came back as someone new).
    pub fn build(
        rules: IdentityRules,
        seed: &Seed,
        links: &[LinkRecord],
        is_suppressed: &dyn Fn(&Identifier) -> bool,
    ) -> Self {
        let mut live = LiveGraph::new(rules);
        for group in &seed.groups {
            let group: Vec<Identifier> = group.iter().filter(|i| !is_suppressed(i)).cloned().collect();
            live.add_record(&group, i64::MIN, None, false);
        }
        for identifier in seed.refused.iter().filter(|i| !is_suppressed(i)) {
            if let Some(node) = live.intern(identifier) {
                live.graph.refuse_for_good(node, "refused when the model was trained".into());
            }
        }
        for link in links {
            let identifiers: Vec<Identifier> =
                link.identifiers.iter().filter_map(|k| Identifier::parse_key(k)).collect();
            match link.kind {
                LinkKind::Event | LinkKind::Link => {
                    live.add_record(&identifiers, link.at, Some(link.seq), link.kind == LinkKind::Link);
                }
                LinkKind::Unlink => {
                    if let [a, b] = identifiers.as_slice()
                        && let (Some(a), Some(b)) = (live.intern(a), live.intern(b))
                    {
                        live.graph.separate(a, b);
                        live.attach(&[a, b], link.at, Some(link.seq));
                    }
                }
            }
        }
        let scope: Vec<u32> = (0..live.graph.len() as u32).collect();
        let records: Vec<(&[u32], i64)> = live.records.iter().map(|r| (&*r.nodes, r.at)).collect();
        live.graph.replay(&scope, &records);
        live
    }

    /// The rules.
    pub fn rules(&self) -> &IdentityRules {
        self.graph.rules()
    }

    /// Identifiers known.
    pub fn len(&self) -> usize {
        self.graph.len()
    }

    /// Whether no identifier is known.
    pub fn is_empty(&self) -> bool {
        self.graph.is_empty()
    }

    fn intern(&mut self, identifier: &Identifier) -> Option<u32> {
        let node = self.graph.intern(identifier)?;
        if node as usize >= self.by_node.len() {
            self.by_node.resize(node as usize + 1, Vec::new());
        }
        Some(node)
    }

    /// Adds a record of `identifiers` unless the same set is already recorded; returns its
    /// nodes (in priority order) and whether it is new. One identifier makes no record: it
    /// is new when the graph did not know it (it is then logged, so that the graph knows it
    /// after a restart as it did before: a person of their own, whose consent is theirs).
    fn add_record(
        &mut self,
        identifiers: &[Identifier],
        at: i64,
        link: Option<u64>,
        always: bool,
    ) -> (Vec<u32>, bool) {
        let known = self.graph.len();
        let nodes = self.graph.intern_all(identifiers);
        if let Some(&max) = nodes.iter().max()
            && max as usize >= self.by_node.len()
        {
            self.by_node.resize(max as usize + 1, Vec::new());
        }
        if nodes.len() < 2 {
            let first_seen = nodes.len() == 1 && self.graph.len() > known;
            return (nodes, first_seen);
        }
        let is_new = self.known_sets.insert(nodes.clone().into_boxed_slice());
        if is_new || always {
            self.attach(&nodes, at, link);
        }
        (nodes, is_new)
    }

    fn attach(&mut self, nodes: &[u32], at: i64, link: Option<u64>) {
        let index = self.records.len() as u32;
        self.records.push(Record { nodes: nodes.into(), at, link });
        for &node in nodes {
            self.by_node[node as usize].push(index);
        }
    }

    /// Links the identifiers of one event (or API link) seen at `at`, logged as entry `seq`
    /// if it is a set not seen before. Returns what the rules did and whether the set is new
    /// (then the caller logs it under `seq`).
    pub fn link(&mut self, identifiers: &[Identifier], at: i64, seq: u64) -> (LinkOutcome, bool) {
        self.link_recorded(identifiers, at, seq, false)
    }

    /// [`LiveGraph::link`] for an explicit link: recorded (part of the persons' provenance)
    /// even when the same identifiers were seen together before.
    pub fn link_explicit(&mut self, identifiers: &[Identifier], at: i64, seq: u64) -> LinkOutcome {
        self.link_recorded(identifiers, at, seq, true).0
    }

    fn link_recorded(
        &mut self,
        identifiers: &[Identifier],
        at: i64,
        seq: u64,
        always: bool,
    ) -> (LinkOutcome, bool) {
        let (nodes, is_new) = self.add_record(identifiers, at, Some(seq), always);
        let outcome = self.graph.link_nodes(&nodes, at);
        if outcome.refused.iter().any(|r| r.kind != RefusalKind::Separated) {
            // A new refusal: rebuild the persons it touches without the refused identifier,
            // as training's next round would.
            self.rebuild(&nodes);
        }
        (outcome, is_new)
    }

    /// Separates `a` and `b` (an unlink logged as entry `seq` at `at`): they are never one
    /// person again, and the person that held both is rebuilt from its records. Returns
    /// whether they were one person before.
    pub fn separate(&mut self, a: &Identifier, b: &Identifier, at: i64, seq: u64) -> bool {
        let (Some(na), Some(nb)) = (self.intern(a), self.intern(b)) else { return false };
        let were_one = self.graph.find(na) == self.graph.find(nb);
        self.graph.separate(na, nb);
        self.attach(&[na, nb], at, Some(seq));
        self.rebuild(&[na, nb]);
        were_one
    }

    /// Resets the persons of `nodes` and replays every record that touches them.
    fn rebuild(&mut self, nodes: &[u32]) {
        let mut roots: Vec<u32> = nodes.iter().map(|&n| self.graph.find(n)).collect();
        roots.sort_unstable();
        roots.dedup();
        let scope: Vec<u32> = roots.iter().flat_map(|&r| self.graph.members(r).iter().copied()).collect();
        let mut touching: Vec<u32> =
            scope.iter().flat_map(|&n| self.by_node[n as usize].iter().copied()).collect();
        touching.sort_unstable();
        touching.dedup();
        let records: Vec<(&[u32], i64)> = touching
            .iter()
            .map(|&r| (&*self.records[r as usize].nodes, self.records[r as usize].at))
            .collect();
        self.graph.replay(&scope, &records);
    }

    /// The identifier an event carrying `identifiers` is filed under; `None` for
    /// placeholders only.
    pub fn anchor_of(&self, identifiers: &[Identifier]) -> Option<Identifier> {
        self.graph.anchor_of(identifiers)
    }

    /// Whether `identifier` is a placeholder under the rules.
    pub fn is_placeholder(&self, identifier: &Identifier) -> bool {
        self.graph.rules().placeholders.contains(identifier)
    }

    /// The person behind `identifiers`: that of the highest-priority one the graph knows
    /// and did not refuse for merging (a shared device or kiosk is no one's in particular),
    /// else the highest-priority one it does not know, alone (an identifier never linked to
    /// another is a person of its own), else that of the highest-priority refused one;
    /// `None` for placeholders only.
    pub fn person(&self, identifiers: &[Identifier]) -> Option<PersonIds> {
        let mut sorted: Vec<&Identifier> = identifiers.iter().filter(|i| !self.is_placeholder(i)).collect();
        sorted.sort();
        let known = || sorted.iter().filter_map(|i| self.graph.node(i));
        if let Some(node) = known().find(|&node| self.graph.refusal(node).is_none()) {
            return Some(self.person_of_node(node));
        }
        // Next an identifier the graph does not know (an anonymous visitor's cookie seen
        // alone, which it never takes in), before one it refused (a kiosk's device answers
        // only for itself): as an event naming them is filed, under its first identifier
        // not refused, so the answer does not change once such an event comes.
        let unknown = sorted.iter().find(|i| self.graph.node(i).is_none());
        match unknown {
            Some(&alone) => Some(PersonIds {
                key: canonical_key(alone),
                identifiers: vec![alone.clone()],
                refused: None,
                known: false,
            }),
            None => known().next().map(|node| self.person_of_node(node)),
        }
    }

    /// The other persons `identifiers` name besides [`LiveGraph::person`]'s: each
    /// identifier's own person, unless it is the one already chosen, or the graph refused
    /// it for merging and it is of a shared kind (a device or a cookie: a kiosk's visitors are
    /// many) or was refused as hot (a till's generic card, a desk's phone: seen with many
    /// persons). An identifier the graph does not know is a person of its own, whom a model
    /// may know; a card or address refused by a merge limit and named beside an account (a
    /// second loyalty card over the one-card limit) is the person's own, as training keeps
    /// it. What they bought counts for the request too.
    pub fn also_named(&self, identifiers: &[Identifier], chosen: Option<&PersonIds>) -> Vec<PersonIds> {
        let mut others: Vec<PersonIds> = Vec::new();
        for identifier in identifiers.iter().filter(|i| !self.is_placeholder(i)) {
            let shared = matches!(identifier.kind, IdentifierKind::DeviceId | IdentifierKind::CookieId);
            let person = match self.graph.node(identifier) {
                Some(node)
                    if self.graph.refusal(node).is_some()
                        && (shared || self.graph.refusal_kind(node) == Some(RefusalKind::Hot)) =>
                {
                    continue;
                }
                Some(node) => self.person_of_node(node),
                None => PersonIds {
                    key: canonical_key(identifier),
                    identifiers: vec![identifier.clone()],
                    refused: None,
                    known: false,
                },
            };
            if chosen.is_some_and(|c| c.key == person.key) || others.iter().any(|o| o.key == person.key) {
                continue;
            }
            others.push(person);
        }
        others
    }

    /// The identity log entries that touch the person of `identifiers`, in order: its
    /// provenance.
    pub fn links_of(&self, identifiers: &[Identifier]) -> Vec<u64> {
        let mut links: Vec<u64> = identifiers
            .iter()
            .filter_map(|i| self.graph.node(i))
            .flat_map(|n| self.by_node[n as usize].iter().filter_map(|&r| self.records[r as usize].link))
            .collect();
        links.sort_unstable();
        links.dedup();
        links
    }

    fn person_of_node(&self, node: u32) -> PersonIds {
        let root = self.graph.find(node);
        let mut members: Vec<u32> = self.graph.members(root).to_vec();
        members.sort_by(|&a, &b| self.graph.identifier(a).cmp(self.graph.identifier(b)));
        PersonIds {
            key: canonical_key(self.graph.best(root)),
            identifiers: members.iter().map(|&n| self.graph.identifier(n).clone()).collect(),
            refused: self.graph.refusal(node).map(str::to_string),
            known: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::schema::IdentifierKind::{CookieId, DeviceId, Email, LoyaltyId, UserId};

    fn id(kind: datasets::schema::IdentifierKind, value: &str) -> Identifier {
        Identifier::new(kind, value).unwrap()
    }

    #[test]
    fn the_model_s_persons_are_where_live_links_start() {
        let seed = Seed {
            groups: vec![vec![id(UserId, "u1"), id(Email, "a@x.org")], vec![id(LoyaltyId, "L2")]],
            refused: vec![id(DeviceId, "kiosk")],
            ..Seed::default()
        };
        let mut live = LiveGraph::build(IdentityRules::default(), &seed, &[], &|_| false);
        assert_eq!(live.person(&[id(Email, "a@x.org")]).unwrap().key, "u1");
        // A login joins a new cookie to the trained person.
        let (outcome, is_new) = live.link(&[id(CookieId, "c1"), id(Email, "a@x.org")], 10, 1);
        assert!(is_new && outcome.merged == 1);
        assert_eq!(live.person(&[id(CookieId, "c1")]).unwrap().identifiers.len(), 3);
        // The same set again is nothing new.
        assert!(!live.link(&[id(Email, "a@x.org"), id(CookieId, "c1")], 11, 2).1);
        // Training refused the kiosk: it joins nobody, here either.
        let (outcome, _) = live.link(&[id(LoyaltyId, "L2"), id(DeviceId, "kiosk")], 12, 3);
        assert_eq!(outcome.merged, 0);
        let kiosk = live.person(&[id(DeviceId, "kiosk")]).unwrap();
        assert_eq!(kiosk.identifiers, [id(DeviceId, "kiosk")]);
        assert!(kiosk.refused.is_some());
        // Persons are looked up by their highest-priority known identifier.
        assert_eq!(live.person(&[id(CookieId, "zz"), id(LoyaltyId, "L2")]).unwrap().key, "loyalty_id:L2");
        let unseen = live.person(&[id(CookieId, "zz")]).unwrap();
        assert!(!unseen.known && unseen.identifiers == [id(CookieId, "zz")]);
        assert!(live.person(&[id(UserId, "guest")]).is_none(), "placeholders only");
    }

    #[test]
    fn a_family_tablet_seen_with_two_persons_cookies_is_refused_live_and_from_the_log() {
        // The tablet joins Ann's and Bob's cookies before either logs in; Bob's card would
        // give the joined person a second card. The tablet is refused, not Bob's email, and
        // each keeps their own cookie, email and card.
        let records = [
            vec![id(DeviceId, "tablet"), id(CookieId, "c-ann")],
            vec![id(DeviceId, "tablet"), id(CookieId, "c-bob")],
            vec![id(CookieId, "c-ann"), id(Email, "ann@x.org")],
            vec![id(CookieId, "c-bob"), id(Email, "bob@x.org")],
            vec![id(LoyaltyId, "L-ann"), id(Email, "ann@x.org")],
            vec![id(LoyaltyId, "L-bob"), id(Email, "bob@x.org")],
        ];
        let mut live = LiveGraph::new(IdentityRules::default());
        for (seq, identifiers) in records.iter().enumerate() {
            live.link(identifiers, seq as i64 + 1, seq as u64 + 1);
        }
        let mut bob = live.person(&[id(LoyaltyId, "L-bob")]).unwrap().identifiers;
        bob.sort();
        let mut want = vec![id(LoyaltyId, "L-bob"), id(Email, "bob@x.org"), id(CookieId, "c-bob")];
        want.sort();
        assert_eq!(bob, want);
        assert_eq!(live.person(&[id(CookieId, "c-ann")]).unwrap().identifiers.len(), 3);
        assert!(live.person(&[id(DeviceId, "tablet")]).unwrap().refused.is_some());
        let log: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(seq, identifiers)| record(seq as u64 + 1, identifiers))
            .collect();
        let rebuilt = LiveGraph::build(IdentityRules::default(), &Seed::default(), &log, &|_| false);
        for who in
            [id(LoyaltyId, "L-ann"), id(LoyaltyId, "L-bob"), id(CookieId, "c-bob"), id(DeviceId, "tablet")]
        {
            assert_eq!(
                rebuilt.person(std::slice::from_ref(&who)),
                live.person(std::slice::from_ref(&who)),
                "{who:?}"
            );
        }
    }

    #[test]
    fn a_refusal_rebuilds_the_person_without_the_bridge() {
        // A tablet links two accounts' cards: the second card breaks the loyalty limit, the
        // tablet is refused, and the first card holder keeps nothing of it.
        let mut live = LiveGraph::new(IdentityRules::default());
        live.link(&[id(LoyaltyId, "A"), id(DeviceId, "tab")], 1, 1);
        live.link(&[id(DeviceId, "tab"), id(CookieId, "c")], 2, 2);
        assert_eq!(live.person(&[id(LoyaltyId, "A")]).unwrap().identifiers.len(), 3);
        let (outcome, _) = live.link(&[id(LoyaltyId, "B"), id(DeviceId, "tab")], 3, 3);
        assert_eq!(outcome.refused[0].identifier, id(DeviceId, "tab"));
        let a = live.person(&[id(LoyaltyId, "A")]).unwrap();
        assert_eq!(a.identifiers, [id(LoyaltyId, "A")]);
        // The cookie seen only with the tablet is now a person of its own with the tablet's
        // records gone from its person too.
        assert_eq!(live.person(&[id(CookieId, "c")]).unwrap().identifiers, [id(CookieId, "c")]);
        // Rebuilding from the log gives the same.
        let log = [
            record(1, &[id(LoyaltyId, "A"), id(DeviceId, "tab")]),
            record(2, &[id(DeviceId, "tab"), id(CookieId, "c")]),
            record(3, &[id(LoyaltyId, "B"), id(DeviceId, "tab")]),
        ];
        let rebuilt = LiveGraph::build(IdentityRules::default(), &Seed::default(), &log, &|_| false);
        for who in [id(LoyaltyId, "A"), id(LoyaltyId, "B"), id(CookieId, "c"), id(DeviceId, "tab")] {
            assert_eq!(
                rebuilt.person(std::slice::from_ref(&who)),
                live.person(std::slice::from_ref(&who)),
                "{who:?}"
            );
        }
    }

    #[test]
    fn an_unlink_splits_exactly_and_keeps_each_side_s_links() {
        let mut live = LiveGraph::new(IdentityRules::default());
        live.link(&[id(Email, "a@x.org"), id(CookieId, "c1")], 1, 1);
        live.link(&[id(CookieId, "c1"), id(DeviceId, "d1")], 2, 2);
        live.link(&[id(Email, "a@x.org"), id(LoyaltyId, "L1")], 3, 3);
        assert_eq!(live.person(&[id(DeviceId, "d1")]).unwrap().key, "loyalty_id:L1");
        assert!(live.separate(&id(Email, "a@x.org"), &id(CookieId, "c1"), 4, 4));
        let cookie = live.person(&[id(CookieId, "c1")]).unwrap();
        assert_eq!(cookie.identifiers, [id(DeviceId, "d1"), id(CookieId, "c1")]);
        assert_eq!(live.links_of(&cookie.identifiers), [1, 2, 4]);
        let card = live.person(&[id(Email, "a@x.org")]).unwrap();
        assert_eq!(card.identifiers, [id(LoyaltyId, "L1"), id(Email, "a@x.org")]);
        // A later login with both stays refused.
        let (outcome, _) = live.link(&[id(CookieId, "c1"), id(Email, "a@x.org")], 5, 5);
        assert_eq!(outcome.refused[0].kind, RefusalKind::Separated);
        // And the log replays to the same persons.
        let mut unlink = record(4, &[id(Email, "a@x.org"), id(CookieId, "c1")]);
        unlink.kind = LinkKind::Unlink;
        let log = [
            record(1, &[id(Email, "a@x.org"), id(CookieId, "c1")]),
            record(2, &[id(CookieId, "c1"), id(DeviceId, "d1")]),
            record(3, &[id(Email, "a@x.org"), id(LoyaltyId, "L1")]),
            unlink,
        ];
        let rebuilt = LiveGraph::build(IdentityRules::default(), &Seed::default(), &log, &|_| false);
        assert_eq!(rebuilt.person(&[id(CookieId, "c1")]).unwrap().identifiers, cookie.identifiers);
        assert_eq!(rebuilt.person(&[id(Email, "a@x.org")]).unwrap().identifiers, card.identifiers);
    }

    #[test]
    fn suppressed_identifiers_are_left_out_of_the_seed_not_the_log() {
        let seed = Seed { groups: vec![vec![id(UserId, "u1"), id(Email, "a@x.org")]], ..Seed::default() };
        let erased = id(Email, "a@x.org");
        let live = LiveGraph::build(IdentityRules::default(), &seed, &[], &|i| *i == erased);
        assert!(!live.person(std::slice::from_ref(&erased)).unwrap().known);
        assert_eq!(live.person(&[id(UserId, "u1")]).unwrap().identifiers, [id(UserId, "u1")]);
        // An erasure removes every log entry naming the identifier; one naming it now came
        // after it (the address came back as someone new) and stands.
        let log = [record(1, &[id(Email, "a@x.org"), id(CookieId, "c1")])];
        let live = LiveGraph::build(IdentityRules::default(), &seed, &log, &|i| *i == erased);
        assert_eq!(live.person(&[id(CookieId, "c1")]).unwrap().identifiers, [erased, id(CookieId, "c1")]);
        assert_eq!(live.person(&[id(UserId, "u1")]).unwrap().identifiers, [id(UserId, "u1")]);
    }

    fn record(seq: u64, identifiers: &[Identifier]) -> LinkRecord {
        LinkRecord {
            seq,
            kind: LinkKind::Event,
            identifiers: identifiers.iter().map(Identifier::key).collect(),
            event_id: format!("e{seq}"),
            source: "web".into(),
            rule: String::new(),
            at: seq as i64,
        }
    }
}

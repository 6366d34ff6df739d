//! The identity graph: identifiers are nodes; a record that carries several identifiers (an
//! event, an explicit link) joins them into one person, under the rules.
//!
//! One structure serves training and serving. [`super::resolve`] replays every event of a
//! data set through it until the refused set settles; the server's live graph links each
//! event as it arrives and, after an unlink or a refusal, resets the persons concerned and
//! replays the records that touch them ([`IdentityGraph::replay`]), so the partition is
//! always what replaying the whole log would give for them.
//!
//! Within a record, identifiers are taken in priority order ([`IdentifierKind`] order) and
//! the highest-priority usable one anchors it. Linking another identifier is refused when the
//! merged person would hold more identifiers of a kind than its limit allows, when the
//! identifier is hot ([`super::HotGuard`]), or when an unlink separated the two sides. The
//! first two refuse an identifier for every later record; a separation refuses only that
//! link. A hot identifier is refused itself; past a limit, the bridge is (the identifier
//! that joined the two sides: a kiosk's `device_id` seen with two loyalty cards, a family
//! tablet seen with two persons' cookies), found by `IdentityGraph::bridge` on the chain of
//! links between the identifiers in conflict.
//! Placeholders ([`super::Placeholders`]) are not nodes at all.

use std::collections::HashMap;

use super::IdentityRules;
use crate::schema::{Identifier, IdentifierKind};

const KINDS: usize = IdentifierKind::ALL.len();

/// Why a link was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The merged person would break a merge limit; the identifier is refused from now on.
    Limit,
    /// The identifier is hot; it is refused from now on.
    Hot,
    /// An unlink separated the two persons; only this link is refused.
    Separated,
}

impl RefusalKind {
    /// A stable label for reports and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Limit => "limit",
            RefusalKind::Hot => "hot_identifier",
            RefusalKind::Separated => "unlinked",
        }
    }
}

/// One refused link.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The identifier that was not linked (the lower-priority side).
    pub identifier: Identifier,
    /// Which rule refused it.
    pub kind: RefusalKind,
    /// The rule, as a sentence fragment (`would give one person more than 1 loyalty_id
    /// identifier`).
    pub reason: String,
}

/// What linking one record did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkOutcome {
    /// The identifier the record belongs to: its highest-priority usable identifier, or,
    /// when all are refused, the first of them (a profile of that identifier alone); `None`
    /// when it carries placeholders only.
    pub anchor: Option<Identifier>,
    /// Persons merged into the anchor's.
    pub merged: usize,
    /// Links refused.
    pub refused: Vec<Refusal>,
}

/// Identifiers joined into persons under [`IdentityRules`]; see the module docs.
#[derive(Debug, Clone)]
pub struct IdentityGraph {
    rules: IdentityRules,
    index: HashMap<Identifier, u32>,
    nodes: Vec<Identifier>,
    parent: Vec<u32>,
    /// Per root: identifiers of each kind in its person.
    counts: Vec<[u32; KINDS]>,
    /// Per root: its members (empty for other nodes).
    members: Vec<Vec<u32>>,
    /// Per root: its highest-priority member.
    best: Vec<u32>,
    /// Per node: why it is refused for merging, if it is.
    refused: Vec<Option<String>>,
    /// Why each refused node was refused, where this graph refused it (`None`: refused for good
    /// from outside, by an earlier resolution).
    refused_kind: Vec<Option<RefusalKind>>,
    /// Nodes refused for good ([`IdentityGraph::refuse_for_good`]): a reset keeps them refused.
    pinned: std::collections::HashSet<u32>,
    /// Hot guard: per node, the distinct anchors it was seen with and when, last.
    seen_with: HashMap<u32, Vec<(u32, i64)>>,
    /// Per node: the nodes an unlink separated it from.
    separated: HashMap<u32, Vec<u32>>,
    /// Per root: its members that have separations.
    separated_members: HashMap<u32, Vec<u32>>,
    /// Per node: the nodes records linked it with inside its person (both ways), so a link
    /// that breaks a limit can be traced to the identifier that joined the two sides.
    adjacent: Vec<Vec<u32>>,
    n_merges: usize,
    /// How many nodes are refused (`refused` holding a reason): a replay compares it
    /// between rounds without scanning the whole graph.
    n_refused: usize,
}

impl IdentityGraph {
    /// An empty graph.
    pub fn new(rules: IdentityRules) -> Self {
        IdentityGraph {
            rules,
            index: HashMap::new(),
            nodes: Vec::new(),
            parent: Vec::new(),
            counts: Vec::new(),
            members: Vec::new(),
            best: Vec::new(),
            refused: Vec::new(),
            refused_kind: Vec::new(),
            pinned: std::collections::HashSet::new(),
            n_refused: 0,
            seen_with: HashMap::new(),
            separated: HashMap::new(),
            separated_members: HashMap::new(),
            adjacent: Vec::new(),
            n_merges: 0,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &IdentityRules {
        &self.rules
    }

    /// Number of identifiers (nodes).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph holds no identifier.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Merges made so far (every round of every [`IdentityGraph::replay`] counts).
    pub fn n_merges(&self) -> usize {
        self.n_merges
    }

    /// The node of `identifier`, if it is in the graph.
    pub fn node(&self, identifier: &Identifier) -> Option<u32> {
        self.index.get(identifier).copied()
    }

    /// The identifier of `node`.
    pub fn identifier(&self, node: u32) -> &Identifier {
        &self.nodes[node as usize]
    }

    /// The node of `identifier`, added as a person of its own when new; `None` for a
    /// placeholder.
    pub fn intern(&mut self, identifier: &Identifier) -> Option<u32> {
        if self.rules.placeholders.contains(identifier) {
            return None;
        }
        if let Some(&node) = self.index.get(identifier) {
            return Some(node);
        }
        let node = self.nodes.len() as u32;
        self.index.insert(identifier.clone(), node);
        self.nodes.push(identifier.clone());
        self.parent.push(node);
        let mut counts = [0; KINDS];
        counts[identifier.kind.index()] = 1;
        self.counts.push(counts);
        self.members.push(vec![node]);
        self.best.push(node);
        self.refused.push(None);
        self.refused_kind.push(None);
        self.adjacent.push(Vec::new());
        Some(node)
    }

    /// The nodes of `identifiers` in priority order, without placeholders or repeats, added
    /// when new.
    pub fn intern_all(&mut self, identifiers: &[Identifier]) -> Vec<u32> {
        let mut sorted: Vec<&Identifier> = identifiers.iter().collect();
        sorted.sort();
        sorted.dedup();
        sorted.into_iter().filter_map(|identifier| self.intern(identifier)).collect()
    }

    /// The root of `node`'s person.
    pub fn find(&self, mut node: u32) -> u32 {
        while self.parent[node as usize] != node {
            node = self.parent[node as usize];
        }
        node
    }

    fn find_mut(&mut self, node: u32) -> u32 {
        let root = self.find(node);
        let mut at = node;
        while self.parent[at as usize] != root {
            let next = self.parent[at as usize];
            self.parent[at as usize] = root;
            at = next;
        }
        root
    }

    /// The members of the person whose root is `root` (any order).
    pub fn members(&self, root: u32) -> &[u32] {
        &self.members[root as usize]
    }

    /// The highest-priority identifier of the person whose root is `root`: the one that names
    /// it ([`super::canonical_key`]).
    pub fn best(&self, root: u32) -> &Identifier {
        &self.nodes[self.best[root as usize] as usize]
    }

    /// Why `node` is refused for merging, if it is.
    pub fn refusal(&self, node: u32) -> Option<&str> {
        self.refused[node as usize].as_deref()
    }

    /// Why `node` was refused, when this graph refused it (`None` too for one refused for
    /// good from outside, or not refused).
    pub fn refusal_kind(&self, node: u32) -> Option<RefusalKind> {
        self.refused_kind[node as usize]
    }

    /// Every refused node with its reason.
    pub fn refused(&self) -> impl Iterator<Item = (u32, &str)> {
        self.refused.iter().enumerate().filter_map(|(node, reason)| Some((node as u32, reason.as_deref()?)))
    }

    /// Marks `node` refused for good, whatever a replay finds: an identifier that an earlier
    /// resolution refused (training's, when the live graph starts from a model's persons). It
    /// must be a person of its own.
    pub fn refuse_for_good(&mut self, node: u32, reason: String) {
        self.set_refused(node, Some(reason));
        self.pinned.insert(node);
    }

    /// Sets or clears why `node` is refused, keeping the count.
    fn set_refused(&mut self, node: u32, reason: Option<String>) {
        let slot = &mut self.refused[node as usize];
        match (slot.is_some(), reason.is_some()) {
            (false, true) => self.n_refused += 1,
            (true, false) => self.n_refused -= 1,
            _ => {}
        }
        *slot = reason;
    }

    /// The identifier a record carrying `identifiers` belongs to, as [`IdentityGraph::link`]
    /// would choose it now, without linking anything; `None` for placeholders only.
    pub fn anchor_of(&self, identifiers: &[Identifier]) -> Option<Identifier> {
        let mut usable: Vec<&Identifier> =
            identifiers.iter().filter(|i| !self.rules.placeholders.contains(i)).collect();
        usable.sort();
        let first = usable.first().copied()?;
        let is_refused =
            |i: &Identifier| self.node(i).is_some_and(|node| self.refused[node as usize].is_some());
        Some(usable.into_iter().find(|i| !is_refused(i)).unwrap_or(first).clone())
    }

    /// Links the identifiers of one record seen at time `at` (seconds); see the module docs.
    pub fn link(&mut self, identifiers: &[Identifier], at: i64) -> LinkOutcome {
        let nodes = self.intern_all(identifiers);
        self.link_nodes(&nodes, at)
    }

    /// [`IdentityGraph::link`] for nodes already interned, in priority order.
    pub fn link_nodes(&mut self, nodes: &[u32], at: i64) -> LinkOutcome {
        let mut usable = nodes.iter().copied().filter(|&n| self.refused[n as usize].is_none());
        let Some(anchor) = usable.next() else {
            return LinkOutcome {
                anchor: nodes.first().map(|&n| self.nodes[n as usize].clone()),
                ..Default::default()
            };
        };
        let rest: Vec<u32> = usable.collect();
        let mut outcome =
            LinkOutcome { anchor: Some(self.nodes[anchor as usize].clone()), ..Default::default() };
        for node in rest {
            let is_hot = self.sighting(node, anchor, at);
            let target = self.find_mut(anchor);
            let root = self.find_mut(node);
            if root == target {
                self.connect(anchor, node);
                continue;
            }
            let mut blamed = node;
            let refusal = if let Some((kind, limit)) = self.violation(target, root) {
                blamed = self.bridge(anchor, node, kind);
                Some((
                    RefusalKind::Limit,
                    format!(
                        "would give one person more than {limit} {kind} identifier{}",
                        if limit == 1 { "" } else { "s" }
                    ),
                ))
            } else if is_hot {
                Some((
                    RefusalKind::Hot,
                    format!(
                        "seen with more than {} persons within {} hours",
                        self.rules.hot.max_anchors,
                        self.rules.hot.window_seconds as f64 / 3_600.0
                    ),
                ))
            } else {
                self.separation(target, root).map(|(a, b)| {
                    (
                        RefusalKind::Separated,
                        format!(
                            "`{}` was unlinked from `{}`",
                            self.nodes[a as usize].key(),
                            self.nodes[b as usize].key()
                        ),
                    )
                })
            };
            match refusal {
                None => {
                    self.union(target, root);
                    self.connect(anchor, node);
                    outcome.merged += 1;
                    self.n_merges += 1;
                }
                Some((kind, reason)) => {
                    if kind != RefusalKind::Separated {
                        self.set_refused(blamed, Some(reason.clone()));
                        self.refused_kind[blamed as usize] = Some(kind);
                    }
                    outcome.refused.push(Refusal {
                        identifier: self.nodes[blamed as usize].clone(),
                        kind,
                        reason,
                    });
                    if blamed == anchor {
                        // The record's own anchor is the bridge: it links nothing more.
                        break;
                    }
                }
            }
        }
        outcome
    }

    /// Records that a record linked `a` and `b`, now one person.
    fn connect(&mut self, a: u32, b: u32) {
        if a != b && !self.adjacent[a as usize].contains(&b) {
            self.adjacent[a as usize].push(b);
            self.adjacent[b as usize].push(a);
        }
    }

    /// Which identifier to refuse when linking `node` to `anchor` would give one person more
    /// identifiers of `kind` than its limit: the one that joined the two sides. On the
    /// shortest chain of links from an identifier of `kind` on the anchor's side, through
    /// the new link, to one on `node`'s side, that is the identifier linked with the most
    /// others of one kind (at least two) among those of lower priority than `kind`: a
    /// family tablet seen with two persons' cookies, a kiosk with two loyalty cards. Ties go
    /// to the lower-priority kind, then to the one nearer the new link. `node` itself when
    /// no identifier on the chain is such a bridge.
    fn bridge(&self, anchor: u32, node: u32, kind: IdentifierKind) -> u32 {
        let (near, far) = (self.find(anchor), self.find(node));
        let neighbours = |n: u32| {
            let pending = if n == anchor {
                Some(node)
            } else if n == node {
                Some(anchor)
            } else {
                None
            };
            self.adjacent[n as usize].iter().copied().chain(pending)
        };
        // Breadth first from every identifier of `kind` on the anchor's side.
        let mut came_from: HashMap<u32, u32> = HashMap::new();
        let mut queue = std::collections::VecDeque::new();
        for &start in &self.members[near as usize] {
            if self.nodes[start as usize].kind == kind {
                came_from.insert(start, start);
                queue.push_back(start);
            }
        }
        let mut end = None;
        while let Some(at) = queue.pop_front() {
            if self.nodes[at as usize].kind == kind && self.find(at) == far {
                end = Some(at);
                break;
            }
            for next in neighbours(at) {
                if let std::collections::hash_map::Entry::Vacant(entry) = came_from.entry(next) {
                    entry.insert(at);
                    queue.push_back(next);
                }
            }
        }
        let Some(mut at) = end else { return node };
        let mut chain = vec![at];
        while came_from[&at] != at {
            at = came_from[&at];
            chain.push(at);
        }
        let new_link = chain.iter().position(|&n| n == node || n == anchor).unwrap_or(0);
        let inner = chain.len().saturating_sub(1);
        (1..inner)
            .filter_map(|i| {
                let n = chain[i];
                // An account, card or email of higher priority than the limited kind holds
                // its identifiers by right; only a lesser one can be the stray link.
                if self.nodes[n as usize].kind <= kind {
                    return None;
                }
                let mut per_kind = [0usize; KINDS];
                let mut linked: Vec<u32> = neighbours(n).collect();
                linked.sort_unstable();
                linked.dedup();
                for other in linked {
                    per_kind[self.nodes[other as usize].kind.index()] += 1;
                }
                let most = per_kind.into_iter().max().unwrap_or(0);
                (most >= 2).then_some((most, self.nodes[n as usize].kind.index(), i.abs_diff(new_link), n))
            })
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(b.2.cmp(&a.2)))
            .map_or(node, |(_, _, _, n)| n)
    }

    /// Records that `node` was seen with `anchor` at `at`; whether that makes it hot (more
    /// distinct anchors within the window than the guard allows).
    fn sighting(&mut self, node: u32, anchor: u32, at: i64) -> bool {
        let guard = self.rules.hot;
        if guard.max_anchors == 0 {
            return false;
        }
        let seen = self.seen_with.entry(node).or_default();
        seen.retain(|&(_, when)| at.saturating_sub(when) <= guard.window_seconds);
        match seen.iter_mut().find(|(a, _)| *a == anchor) {
            Some(entry) => entry.1 = entry.1.max(at),
            None => seen.push((anchor, at)),
        }
        seen.len() > guard.max_anchors
    }

    /// The first kind whose limit merging the persons of roots `a` and `b` would break.
    fn violation(&self, a: u32, b: u32) -> Option<(IdentifierKind, usize)> {
        IdentifierKind::ALL.into_iter().find_map(|kind| {
            let limit = self.rules.limits.get(kind)?;
            let total =
                (self.counts[a as usize][kind.index()] + self.counts[b as usize][kind.index()]) as usize;
            (total > limit).then_some((kind, limit))
        })
    }

    /// A pair of separated nodes, one in each of the persons of roots `a` and `b`.
    fn separation(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        let (small, other) = match (self.separated_members.get(&a), self.separated_members.get(&b)) {
            (Some(x), Some(y)) => {
                if x.len() <= y.len() {
                    (x, b)
                } else {
                    (y, a)
                }
            }
            _ => return None,
        };
        small.iter().find_map(|&member| {
            self.separated[&member]
                .iter()
                .find(|&&partner| self.find(partner) == other)
                .map(|&partner| (member, partner))
        })
    }

    /// Joins the persons of roots `a` and `b` (the larger absorbs the smaller).
    fn union(&mut self, a: u32, b: u32) {
        let (into, from) =
            if self.members[a as usize].len() >= self.members[b as usize].len() { (a, b) } else { (b, a) };
        self.parent[from as usize] = into;
        let moved = std::mem::take(&mut self.members[from as usize]);
        self.members[into as usize].extend(moved);
        let counts = self.counts[from as usize];
        for (total, add) in self.counts[into as usize].iter_mut().zip(counts) {
            *total += add;
        }
        let (best_into, best_from) = (self.best[into as usize], self.best[from as usize]);
        if self.nodes[best_from as usize] < self.nodes[best_into as usize] {
            self.best[into as usize] = best_from;
        }
        if let Some(moved) = self.separated_members.remove(&from) {
            self.separated_members.entry(into).or_default().extend(moved);
        }
    }

    /// Records that the persons of `a` and `b` must never be one again: later links between
    /// them are refused. Does not split anything by itself; replay the records of their
    /// person to split it.
    pub fn separate(&mut self, a: u32, b: u32) {
        for (x, y) in [(a, b), (b, a)] {
            let partners = self.separated.entry(x).or_default();
            if !partners.contains(&y) {
                partners.push(y);
            }
            let root = self.find(x);
            let members = self.separated_members.entry(root).or_default();
            if !members.contains(&x) {
                members.push(x);
            }
        }
    }

    /// Makes every node of `scope` a person of its own again, forgetting what made it hot
    /// and, unless `keep_refused`, why it was refused. `scope` must hold whole persons (every
    /// member of each person it touches), or other persons would keep pointing into it.
    pub fn reset(&mut self, scope: &[u32], keep_refused: bool) {
        for &node in scope {
            let n = node as usize;
            self.parent[n] = node;
            self.members[n] = vec![node];
            self.best[n] = node;
            let mut counts = [0; KINDS];
            counts[self.nodes[n].kind.index()] = 1;
            self.counts[n] = counts;
            if !keep_refused && !self.pinned.contains(&node) {
                self.set_refused(node, None);
                self.refused_kind[n] = None;
            }
            self.seen_with.remove(&node);
            self.separated_members.remove(&node);
            self.adjacent[n].clear();
        }
        for &node in scope {
            if self.separated.contains_key(&node) {
                self.separated_members.entry(node).or_default().push(node);
            }
        }
    }

    /// Resets `scope` and links `records` (node lists in priority order, with their times),
    /// in the order given, again and again until no new identifier is refused (at most eight
    /// rounds): refused identifiers are then excluded from merging altogether, so a bridge
    /// used before it was caught leaves no trace. Returns the rounds taken and the merges of
    /// the last round.
    pub fn replay(&mut self, scope: &[u32], records: &[(&[u32], i64)]) -> (usize, usize) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            self.reset(scope, rounds > 1);
            let refused_before = self.n_refused;
            let merges_before = self.n_merges;
            for &(nodes, at) in records {
                self.link_nodes(nodes, at);
            }
            let merges = self.n_merges - merges_before;
            let refused_after = self.n_refused;
            if refused_after == refused_before || rounds >= 8 {
                return (rounds, merges);
            }
        }
    }
}

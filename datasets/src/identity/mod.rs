//! Identity resolution: events whose identifiers overlap belong to one person.
//!
//! The rules ([`IdentityRules`]: merge limits per kind, placeholders, the hot-identifier
//! guard) and the graph that applies them ([`IdentityGraph`]) are shared by the trainer and
//! the server's live identity graph, so both stitch persons by one code path.
//!
//! [`resolve`] is the batch form: events are linked in time order; within an event,
//! identifiers are taken in priority order ([`crate::schema::IdentifierKind`] order), and the
//! event's highest-priority identifier anchors it. Linking another identifier whose person
//! would push the merged person over a limit is refused, and the bridge is blamed: on the
//! chain of links between the identifiers in conflict, the lower-priority identifier linked
//! with two or more of one kind (a kiosk's `device_id` seen with two loyalty cards, a family
//! tablet seen with two persons' cookies, a family email seen with two accounts), else the
//! record's own lower-priority identifier.
//!
//! Refused identifiers are then excluded from merging altogether and the graph is rebuilt from
//! scratch, so a bridge that was used before it was caught leaves no trace. This repeats until
//! no new identifier is refused (in practice twice). An event that carries only refused
//! identifiers is attributed to a person made of that identifier alone (an anonymous profile
//! of the shared device); an event that carries only placeholders belongs to nobody.

mod graph;
mod rules;

pub use graph::{IdentityGraph, LinkOutcome, Refusal, RefusalKind};
pub use rules::{BUILTIN_PLACEHOLDERS, HotGuard, IdentityLimits, IdentityRules, Placeholders};

use std::collections::HashMap;

use crate::ids::IdMap;
use crate::schema::{Event, Identifier, IdentifierKind};

/// An identifier that was not used for merging, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedIdentifier {
    /// The identifier.
    pub identifier: Identifier,
    /// The rule it would have broken, as a sentence fragment.
    pub reason: String,
}

/// What identity resolution did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdentityReport {
    /// Events resolved.
    pub n_events: usize,
    /// Distinct identifiers seen (placeholders not counted).
    pub n_identifiers: usize,
    /// Persons found.
    pub n_persons: usize,
    /// Successful merges of two partial persons.
    pub n_merges: usize,
    /// Identifiers excluded from merging.
    pub refused: Vec<RefusedIdentifier>,
    /// Events that carry placeholders only and so belong to nobody.
    pub n_placeholder_events: usize,
    /// Rebuild rounds it took for the refused set to settle.
    pub rounds: usize,
}

/// The outcome: the person of every event, and a lookup from identifiers.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The person of each input event, in input order; `None` for an event that carries
    /// placeholders only.
    pub person_of_event: Vec<Option<u32>>,
    /// Each person's canonical key: the value of its highest-priority identifier, bare for a
    /// `user_id` and `kind:value` otherwise.
    pub persons: IdMap,
    /// Every identifier key (`kind:value`) that leads to a person.
    pub aliases: HashMap<String, u32>,
    /// Counts and refusals.
    pub report: IdentityReport,
}

impl Resolution {
    /// The identifier keys (`kind:value`) of each person known under more than one, sorted,
    /// in person order: what the live identity graph must start joined for persons whose
    /// events are not trained on.
    pub fn groups(&self) -> Vec<Vec<String>> {
        let mut groups: Vec<Vec<String>> = vec![Vec::new(); self.persons.len()];
        for (key, &person) in &self.aliases {
            if let Some(group) = groups.get_mut(person as usize) {
                group.push(key.clone());
            }
        }
        groups.retain(|group| group.len() > 1);
        groups.iter_mut().for_each(|group| group.sort_unstable());
        groups
    }
}

/// The canonical person key for an identifier.
pub fn canonical_key(identifier: &Identifier) -> String {
    if identifier.kind == IdentifierKind::UserId { identifier.value.clone() } else { identifier.key() }
}

/// Identity decisions made outside events, through the server's API: explicit links (with
/// their time) and unlinks (two identifiers that must never be one person). A store export
/// carries them, so training stitches persons as the live graph did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    /// Identifiers linked explicitly, and when.
    pub links: Vec<(Identifier, Identifier, i64)>,
    /// Identifiers unlinked explicitly.
    pub separations: Vec<(Identifier, Identifier)>,
}

/// Resolves the persons behind `events` under `rules`.
pub fn resolve(events: &[Event], rules: &IdentityRules) -> Resolution {
    resolve_with(events, rules, &Decisions::default())
}

/// [`resolve`] with explicit links and unlinks: the links are replayed among the events by
/// time, the unlinked pairs are never joined.
pub fn resolve_with(events: &[Event], rules: &IdentityRules, decisions: &Decisions) -> Resolution {
    let mut graph = IdentityGraph::new(rules.clone());
    let event_nodes: Vec<Vec<u32>> =
        events.iter().map(|event| graph.intern_all(&event.identifiers)).collect();
    let link_nodes: Vec<(Vec<u32>, i64)> =
        decisions.links.iter().map(|(a, b, at)| (graph.intern_all(&[a.clone(), b.clone()]), *at)).collect();
    for (a, b) in &decisions.separations {
        if let (Some(a), Some(b)) = (graph.intern(a), graph.intern(b)) {
            graph.separate(a, b);
        }
    }
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| (events[i].timestamp, i));
    let mut records: Vec<(&[u32], i64)> =
        order.iter().map(|&i| (event_nodes[i].as_slice(), events[i].timestamp)).collect();
    records.extend(link_nodes.iter().map(|(nodes, at)| (nodes.as_slice(), *at)));
    // Stable: events keep their order among themselves, and an explicit link comes after the
    // events of its second.
    records.sort_by_key(|&(_, at)| at);
    let scope: Vec<u32> = (0..graph.len() as u32).collect();
    let (rounds, n_merges) = graph.replay(&scope, &records);

    // Dense persons, in order of first appearance in time.
    let mut persons = IdMap::new();
    let mut person_of_root: HashMap<u32, u32> = HashMap::new();
    let mut person_of_event = vec![None; events.len()];
    let mut aliases = HashMap::new();
    let mut n_placeholder_events = 0;
    for &event_idx in &order {
        let nodes = &event_nodes[event_idx];
        let Some(&first) = nodes.first() else {
            n_placeholder_events += 1;
            continue;
        };
        let anchor = nodes.iter().copied().find(|&n| graph.refusal(n).is_none());
        let (root, name) = match anchor {
            Some(node) => {
                let root = graph.find(node);
                (root, graph.best(root).clone())
            }
            // Only refused identifiers: a profile of that identifier alone.
            None => (first, graph.identifier(first).clone()),
        };
        let person =
            *person_of_root.entry(root).or_insert_with(|| persons.get_or_insert(&canonical_key(&name)));
        person_of_event[event_idx] = Some(person);
        if anchor.is_none() {
            aliases.insert(name.key(), person);
        }
    }
    for node in 0..graph.len() as u32 {
        if graph.refusal(node).is_none()
            && let Some(&person) = person_of_root.get(&graph.find(node))
        {
            aliases.insert(graph.identifier(node).key(), person);
        }
    }
    let mut refused: Vec<RefusedIdentifier> = graph
        .refused()
        .map(|(node, reason)| RefusedIdentifier {
            identifier: graph.identifier(node).clone(),
            reason: reason.to_string(),
        })
        .collect();
    refused.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    let report = IdentityReport {
        n_events: events.len(),
        n_identifiers: graph.len(),
        n_persons: persons.len(),
        n_merges,
        refused,
        n_placeholder_events,
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
mod tests;

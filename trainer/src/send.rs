//! What a server's export tells a batch send (`trainer recommend --suppressed-from`) that the
//! model cannot know: who was erased or withholds personalisation since, and what each
//! person bought (or returned) up to the export, on any channel.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use datasets::consumed::Consumed;
use datasets::dataset::Interaction;
use datasets::ids::IdMap;
use datasets::schema::Identifier;
use datasets::{ItemIdx, UserIdx};
use models::serve::engine::{Engine, Person};

use crate::input::{Export, for_each_exported};

/// Why a server's export leaves a person out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// Erased: no answer at all.
    Erased,
    /// Withholds personalisation: popular items.
    NoConsent,
}

/// What an export holds for a batch send; empty without one.
#[derive(Default)]
pub struct ExportState {
    /// Suppression hash → reason.
    hashes: HashMap<String, Suppressed>,
    /// The model's persons with a listed identifier.
    persons: HashMap<u32, Suppressed>,
    /// Identifier key (`kind:value`) → the live person its events belong to.
    person_of: HashMap<String, u32>,
    /// The model's person → the live persons of their identifiers.
    live_of_user: HashMap<u32, Vec<u32>>,
    /// Per live person (index into `person_of`'s values), the item ids held at the export,
    /// with the time of the last purchase.
    held: Vec<BTreeMap<String, i64>>,
}

impl ExportState {
    /// Reads `export` for the persons of `engine`: its suppression list, and its events'
    /// purchases and returns (as the model weighs them), netted per live person in time
    /// order as training nets them.
    pub fn read(engine: &Engine, export: &Export) -> Result<ExportState> {
        let hashes: HashMap<String, Suppressed> = export
            .manifest
            .suppressed
            .iter()
            .map(|s| {
                let reason =
                    if s.reason == "no_consent" { Suppressed::NoConsent } else { Suppressed::Erased };
                (s.hash.clone(), reason)
            })
            .collect();
        let mut persons: HashMap<u32, Suppressed> = HashMap::new();
        for (key, &person) in &engine.artifact().body.aliases {
            if let Some(&reason) = hashes.get(&store::record::suppression_hash(key)) {
                let entry = persons.entry(person).or_insert(reason);
                if reason == Suppressed::Erased {
                    *entry = reason;
                }
            }
        }
        let (person_of, held) = purchases(engine, export)?;
        let mut live_of_user: HashMap<u32, Vec<u32>> = HashMap::new();
        for (key, &user) in &engine.artifact().body.aliases {
            if let Some(&live) = person_of.get(key) {
                live_of_user.entry(user).or_default().push(live);
            }
        }
        Ok(ExportState { hashes, persons, person_of, live_of_user, held })
    }

    /// Why the person `id` names (a user id or `kind:value`) is listed, if they are.
    pub fn suppressed(&self, engine: &Engine, id: &str) -> Option<Suppressed> {
        let by_person = engine.lookup(id).and_then(|user| self.persons.get(&user.0).copied());
        let by_key = self.hashes.get(&store::record::suppression_hash(&key_of(id))).copied();
        match (by_person, by_key) {
            (Some(Suppressed::Erased), _) | (_, Some(Suppressed::Erased)) => Some(Suppressed::Erased),
            (a, b) => a.or(b),
        }
    }

    /// Adds to `person` (as `answering` knows them) what the export shows held by the live
    /// persons of `id` and of the identifiers the model read from (`production`, the one
    /// the export was read for) joins to it, by item id: bought since the model was trained,
    /// on any channel. What the model knows stays (a return since leaves an item excluded:
    /// the safe side).
    pub fn add_held(&self, person: &mut Person<'_>, answering: &Engine, production: &Engine, id: &str) {
        let mut live: HashSet<u32> = self.person_of.get(&key_of(id)).copied().into_iter().collect();
        if let Some(user) = production.lookup(id) {
            live.extend(self.live_of_user.get(&user.0).into_iter().flatten().copied());
        }
        if live.is_empty() {
            return;
        }
        let held = live.iter().flat_map(|&p| &self.held[p as usize]);
        add_consumed(
            person,
            held.filter_map(|(item_id, &at)| Some((answering.catalog().get(item_id)?.0, at))),
        );
    }
}

/// Adds `items` (item, time of the last purchase) to `person`'s consumed items: one entry
/// per item, sorted by item, at its latest purchase.
pub(crate) fn add_consumed(person: &mut Person<'_>, items: impl IntoIterator<Item = (u32, i64)>) {
    let mut consumed: Vec<(u32, i64)> = person.consumed.to_vec();
    consumed.extend(items);
    consumed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    consumed.dedup_by_key(|c| c.0);
    person.consumed = consumed.into();
}

/// The identifier key `id` names: itself when it is `kind:value`, else a user id.
fn key_of(id: &str) -> String {
    match Identifier::parse_key(id) {
        Some(identifier) => identifier.key(),
        None => format!("user_id:{id}"),
    }
}

/// The export's live persons by identifier key, and what each holds: netted as training
/// nets purchases ([`datasets::consumed::Consumed`]), per live person instead of per
/// resolved one.
#[allow(clippy::type_complexity)]
fn purchases(engine: &Engine, export: &Export) -> Result<(HashMap<String, u32>, Vec<BTreeMap<String, i64>>)> {
    let weights = &engine.artifact().metadata.config.weights;
    let mut live = IdMap::new();
    let mut items = IdMap::new();
    let mut person_of: HashMap<String, u32> = HashMap::new();
    let mut rows: Vec<Interaction> = Vec::new();
    // The events, and the purchases of persons who withhold personalisation (exports
    // written before they were kept have none).
    for path in [export.events(), export.withheld()] {
        if path == export.withheld() && !path.exists() {
            continue;
        }
        for_each_exported(&path, &mut |person, event| {
            let user = UserIdx(live.get_or_insert(person));
            for identifier in &event.identifiers {
                person_of.insert(identifier.key(), user.0);
            }
            let consumption = weights.weigh(&event).consumption;
            if let (Some(item), true) = (event.item_id.as_deref(), consumption != 0) {
                let item = ItemIdx(items.get_or_insert(item));
                rows.push(Interaction { user, item, weight: 0.0, timestamp: event.timestamp, consumption });
            }
            Ok(())
        })?;
    }
    let held = Consumed::from_interactions(live.len(), &rows)
        .lists()
        .map(|list| {
            list.into_iter().filter_map(|(item, at)| Some((items.id(item.0)?.to_owned(), at))).collect()
        })
        .collect();
    Ok((person_of, held))
}

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
    /// Identifier key (`kind:value`) → the export's person it belongs to.
    person_of: HashMap<String, u32>,
    /// Per export person, their identifier keys.
    members: Vec<Vec<String>>,
    /// The model's person → the export persons of their identifiers.
    live_of_user: HashMap<u32, Vec<u32>>,
    /// Per export person (index into `person_of`'s values), the item ids held at the
    /// export, with the time of the last purchase.
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
        let mut members: Vec<Vec<String>> = vec![Vec::new(); held.len()];
        for (key, &person) in &person_of {
            members[person as usize].push(key.clone());
        }
        let mut live_of_user: HashMap<u32, Vec<u32>> = HashMap::new();
        for (key, &user) in &engine.artifact().body.aliases {
            if let Some(&live) = person_of.get(key) {
                live_of_user.entry(user).or_default().push(live);
            }
        }
        Ok(ExportState { hashes, persons, person_of, members, live_of_user, held })
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

    /// Adds to `person` (as `answering` knows them) what the export shows held by the
    /// export's persons of `id` and of the identifiers the model read from (`production`, the
    /// one the export was read for) joins to it, by item id: bought since the model was
    /// trained, on any channel; and what the model knows the other trained persons of those
    /// export persons' identifiers hold (an explicit link since training). What the model
    /// knows of `id` stays (a return since leaves an item excluded: the safe side).
    pub fn add_held(&self, person: &mut Person<'_>, answering: &Engine, production: &Engine, id: &str) {
        let mut live: HashSet<u32> = self.person_of.get(&key_of(id)).copied().into_iter().collect();
        let own = production.lookup(id);
        if let Some(user) = own {
            live.extend(self.live_of_user.get(&user.0).into_iter().flatten().copied());
        }
        if live.is_empty() {
            return;
        }
        let mut others: Vec<datasets::UserIdx> = live
            .iter()
            .flat_map(|&p| &self.members[p as usize])
            .filter_map(|key| production.lookup(key))
            .filter(|&user| Some(user) != own)
            .collect();
        others.sort_unstable();
        others.dedup();
        let items = &production.artifact().body.items;
        let trained = others
            .iter()
            .flat_map(|&user| production.consumed(user))
            .filter_map(|&(item, at)| Some((answering.catalog().get(items.id(item)?)?.0, at)));
        let held = live.iter().flat_map(|&p| &self.held[p as usize]);
        let exported = held.filter_map(|(item_id, &at)| Some((answering.catalog().get(item_id)?.0, at)));
        add_consumed(person, exported.chain(trained));
    }
}

/// Adds to `person` what `production`'s inputs hold under `id` where no trained person
/// answers for it (a person who withheld consent, an email refused for merging; see
/// [`models::artifact::Body::withheld`]), in `answering`'s items.
pub(crate) fn add_withheld(person: &mut Person<'_>, answering: &Engine, production: &Engine, id: &str) {
    let items = &production.artifact().body.items;
    let held = production.withheld(&key_of(id)).iter();
    add_consumed(
        person,
        held.filter_map(|&(item, at, _)| Some((answering.catalog().get(items.id(item)?)?.0, at))),
    );
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

/// The export's persons by identifier key, and what each holds. The persons are resolved
/// from the export's events as training resolves them (the model's identity rules, the
/// explicit links and unlinks, the persons who withheld consent as the live graph joined them;
/// each event joined to the live person it was filed under, see [`for_each_exported`]), so an identifier refused for merging (a shared kiosk, an unlinked pair) is
/// not anyone else's; purchases and returns are netted per person as training nets them
/// ([`datasets::consumed::Consumed`]).
#[allow(clippy::type_complexity)]
fn purchases(engine: &Engine, export: &Export) -> Result<(HashMap<String, u32>, Vec<BTreeMap<String, i64>>)> {
    let config = &engine.artifact().metadata.config;
    let mut events: Vec<datasets::schema::Event> = Vec::new();
    // The events, and the purchases of persons who withhold personalisation (exports
    // written before they were kept have none).
    for path in [export.events(), export.withheld()] {
        if path == export.withheld() && !path.exists() {
            continue;
        }
        for_each_exported(&path, &mut |event| {
            events.push(event);
            Ok(())
        })?;
    }
    // An explicit link is a person even without events of theirs in the export (a trained
    // person linked to a new email): one event each, consuming nothing.
    let decisions = export.decisions();
    events.extend(decisions.links.iter().map(|(a, b, at)| datasets::schema::Event {
        identifiers: vec![a.clone(), b.clone()],
        channel: datasets::schema::Channel::parse("api"),
        event_type: datasets::schema::EventType::Custom("link".into()),
        item_id: None,
        timestamp: *at,
        value: None,
        event_id: None,
    }));
    events.extend(export.withheld_persons());
    let resolution = datasets::identity::resolve_with(&events, &config.identity, &decisions);
    let mut items = IdMap::new();
    let mut rows: Vec<Interaction> = Vec::new();
    for (event, person) in events.iter().zip(&resolution.person_of_event) {
        let consumption = config.weights.weigh(event).consumption;
        if let (Some(person), Some(item), true) = (person, event.item_id.as_deref(), consumption != 0) {
            let item = ItemIdx(items.get_or_insert(item));
            let user = UserIdx(*person);
            rows.push(Interaction { user, item, weight: 0.0, timestamp: event.timestamp, consumption });
        }
    }
    let held = Consumed::from_interactions(resolution.persons.len(), &rows)
        .lists()
        .map(|list| {
            list.into_iter().filter_map(|(item, at)| Some((items.id(item.0)?.to_owned(), at))).collect()
        })
        .collect();
    Ok((resolution.aliases.into_iter().collect(), held))
}

//! Who a request is for, as the store and the model know them together: the store's live
//! person (identity graph, events since the model's watermark, consumed ledger, consent,
//! erasure marks, what was shown) translated into the model's indices and joined with what the
//! model learned, by `models::serve::person::assemble`, where the rules of freshness live.

use std::collections::{BTreeMap, BTreeSet};

use datasets::schema::Identifier;
use datasets::{ItemIdx, UserIdx};
use models::serve::engine::Person;
use models::serve::person::{LiveSignals, assemble};
use store::{PERSONALIZATION, PersonQuery, Store};

use crate::error::ApiError;
use crate::state::Serving;

/// A request's person.
pub struct Who<'a> {
    /// The person as the engine takes them.
    pub person: Person<'a>,
    /// The live person's key (`person_id` in answers); `None` without identifiers.
    pub key: Option<String>,
    /// The identifier what is shown to the person is recorded under (its most trustworthy
    /// one, `kind:value`); `None` without a store.
    pub shown_under: Option<String>,
    /// Whether the person allows being measured (`analytics`): only then are they enrolled
    /// in experiments.
    pub analytics: bool,
}

/// The person behind `identifiers` under `serving`, with what was shown to them since
/// `shown_since`. Without a store, the model alone answers. What the other `loaded` model
/// versions know the person bought counts too (`serving` among them is skipped): a variant's
/// model, or a production promoted back to an older one, trained on less data.
pub fn person<'a>(
    serving: &'a Serving,
    loaded: &[&Serving],
    store: Option<&Store>,
    identifiers: &[Identifier],
    shown_since: Option<i64>,
) -> Result<Who<'a>, ApiError> {
    let engine = &serving.model.engine;
    let Some(store) = store else {
        let user = engine.find_person(identifiers);
        let key = identifiers.iter().min().map(datasets::identity::canonical_key);
        // What the model's inputs show held under these identifiers while consent was
        // withheld (never trained on) is never offered back, store or not.
        let withheld = withheld_holdings(serving, identifiers, &store::LivePerson::default());
        // The other trained persons the identifiers name (an anonymous cookie never seen with
        // the account): what they bought is excluded too, their history does not count.
        let mut others: Vec<datasets::UserIdx> = identifiers
            .iter()
            .filter_map(|i| engine.lookup(&i.key()))
            .filter(|&other| Some(other) != user)
            .collect();
        others.sort_unstable_by_key(|u| u.0);
        others.dedup();
        let person = if withheld.is_empty() && others.is_empty() {
            engine.person(user)
        } else {
            let signals = LiveSignals {
                trained: user.into_iter().collect(),
                also_trained: others,
                withheld,
                personalization: true,
                ..LiveSignals::default()
            };
            assemble(engine, &signals)
        };
        return Ok(Who { person, key, shown_under: None, analytics: false });
    };
    if identifiers.is_empty() {
        return Ok(Who { person: engine.person(None), key: None, shown_under: None, analytics: false });
    }
    let query = PersonQuery { after_seq: serving.model.after_seq, shown_since };
    let live = store.person(identifiers, query).map_err(ApiError::store)?;
    let catalog = &serving.view.catalog;
    let trained = trained_persons(serving, identifiers, &live);
    let also_trained = also_trained(serving, &live, &trained);
    let blocked = blocked_own(serving, identifiers, &live, &trained, &also_trained);
    let mut withheld = withheld_holdings(serving, identifiers, &live);
    let elsewhere = known_elsewhere(serving, loaded, identifiers, &live, &mut withheld);
    let item = |id: &Option<String>| id.as_deref().and_then(|id| catalog.get(id));
    let in_catalog = |ledger: &[(String, Vec<store::ConsumedEntry>)]| -> models::serve::person::Ledger {
        ledger
            .iter()
            .filter_map(|(item_id, entries)| {
                let item = catalog.get(item_id)?;
                Some((item, entries.iter().map(|e| (e.sign, e.timestamp)).collect()))
            })
            .collect()
    };
    let signals = LiveSignals {
        trained,
        blocked,
        also_trained,
        elsewhere,
        events: live.recent.iter().map(|e| (item(&e.item_id), e.to_event())).collect(),
        ledger: in_catalog(&live.consumed),
        also_ledgers: live.also_consumed.iter().map(|ledger| in_catalog(ledger)).collect(),
        withheld,
        personalization: live.allows(PERSONALIZATION),
        shown: live
            .shown
            .iter()
            .flat_map(|shown| {
                shown.items.iter().filter_map(|id| catalog.get(id)).map(move |i: ItemIdx| (i, shown.at))
            })
            .collect(),
    };
    let key = live.ids.as_ref().map(|ids| ids.key.clone());
    let shown_under = live.ids.as_ref().and_then(|ids| ids.identifiers.first()).map(Identifier::key);
    let analytics = live.allows(store::ANALYTICS);
    Ok(Who { person: assemble(engine, &signals), key, shown_under, analytics })
}

/// What the `loaded` model versions other than `serving` learned the person held, in the
/// served catalog's indices (items it does not know left out): per item the most any version
/// counts over its trained persons of the request. Their inputs' withheld holdings join
/// `withheld`.
fn known_elsewhere(
    serving: &Serving,
    loaded: &[&Serving],
    identifiers: &[Identifier],
    live: &store::LivePerson,
    withheld: &mut Vec<Vec<(ItemIdx, i64, u32)>>,
) -> Vec<(ItemIdx, i64, u32)> {
    let mut held: BTreeMap<ItemIdx, (i64, u32)> = BTreeMap::new();
    for other in loaded.iter().filter(|other| other.model.version() != serving.model.version()) {
        let engine = &other.model.engine;
        let items = &engine.artifact().body.items;
        let served = |item: u32| items.id(item).and_then(|id| serving.view.catalog.get(id));
        let mut users = trained_persons(other, identifiers, live);
        users.extend(also_trained(other, live, &users));
        users.extend(blocked_own(other, identifiers, live, &users, &[]));
        let mut theirs: BTreeMap<ItemIdx, (i64, u32)> = BTreeMap::new();
        for &user in &users {
            for &(item, at) in engine.consumed(user) {
                let Some(item_idx) = served(item) else { continue };
                let entry = theirs.entry(item_idx).or_insert((at, 0));
                entry.0 = entry.0.max(at);
                entry.1 += engine.held(user, item);
            }
        }
        for (item, (at, units)) in theirs {
            let entry = held.entry(item).or_insert((at, 0));
            entry.0 = entry.0.max(at);
            entry.1 = entry.1.max(units);
        }
        for list in withheld_holdings(other, identifiers, live) {
            withheld.push(
                list.into_iter().filter_map(|(item, at, units)| Some((served(item.0)?, at, units))).collect(),
            );
        }
    }
    held.into_iter().map(|(item, (at, units))| (item, at, units)).collect()
}

/// What the model's inputs show held under the identifiers of `identifiers` and the live
/// person `live` where no trained person answers for them (while consent was withheld, never
/// trained on; or refused for merging), per identifier in the served catalog's indices; none
/// for an erased identifier the model may have learned.
fn withheld_holdings(
    serving: &Serving,
    identifiers: &[Identifier],
    live: &store::LivePerson,
) -> Vec<Vec<(ItemIdx, i64, u32)>> {
    let engine = &serving.model.engine;
    if engine.artifact().body.withheld.is_empty() {
        return Vec::new();
    }
    let erased = learned_erased(serving, live);
    let mut keys: BTreeSet<String> =
        identifiers.iter().filter(|i| !erased.contains(i)).map(Identifier::key).collect();
    let theirs = live.ids.iter().chain(&live.also).flat_map(|ids| &ids.identifiers);
    keys.extend(theirs.filter(|i| !erased.contains(i)).map(Identifier::key));
    keys.iter()
        .map(|key| engine.withheld(key).iter().map(|&(item, at, units)| (ItemIdx(item), at, units)).collect())
        .filter(|held: &Vec<_>| !held.is_empty())
        .collect()
}

/// The identifiers of `live` whose erasure the model may predate (not among the erasures its
/// export knew, or erased at or after the end of its data when those are not recorded):
/// what it learned under them is the erased person's and is never used. One erased before
/// is someone new to the model (a model trained on a later export of this store left the
/// erased person's events out, and learned only what came after).
fn learned_erased<'a>(serving: &Serving, live: &'a store::LivePerson) -> BTreeSet<&'a Identifier> {
    let model = &serving.model;
    live.erased
        .iter()
        .filter(|(identifier, at)| {
            let hash = store::record::suppression_hash(&identifier.key());
            store::graph::may_have_learned(&hash, *at, model.data_until, model.erasures_known.as_ref())
        })
        .map(|(identifier, _)| identifier)
        .collect()
}

/// The model's persons behind the other persons the request names ([`store::LivePerson::also`])
/// that are not among `trained`: what they bought counts, not what they like. Erased
/// identifiers are left out as in [`trained_persons`].
fn also_trained(serving: &Serving, live: &store::LivePerson, trained: &[UserIdx]) -> Vec<UserIdx> {
    let theirs = live.also.iter().flat_map(|ids| &ids.identifiers).collect();
    model_persons(serving, theirs, live).into_iter().filter(|user| !trained.contains(user)).collect()
}

/// The model's persons behind the live person `live` (behind `identifiers` when the graph
/// chose none: every one is a placeholder), most trustworthy identifier's first: none for an
/// identifier of an erased person, nor any reachable from one (`learned_erased`), nor one
/// whose own key identifier the live graph gives someone else now (a trained cookie unlinked
/// from its account and taken over by another person answers for that person, without the
/// account holder's trained history). The other persons the request names are not among
/// them (`also_trained`): their history is not this person's.
pub fn trained_persons(
    serving: &Serving,
    identifiers: &[Identifier],
    live: &store::LivePerson,
) -> Vec<UserIdx> {
    let candidates: Vec<&Identifier> = match &live.ids {
        Some(ids) => ids.identifiers.iter().collect(),
        None => identifiers.iter().collect(),
    };
    let trained = model_persons(serving, candidates, live);
    trained.into_iter().filter(|&user| keyed_here(serving, user, live)).collect()
}

/// Whether the trained person `user`'s key identifier (their most trustworthy one) is among
/// the live person's identifiers (always, without a live person).
fn keyed_here(serving: &Serving, user: UserIdx, live: &store::LivePerson) -> bool {
    let Some(ids) = &live.ids else { return true };
    let Some(key) = serving.model.engine.artifact().body.users.id(user.0) else { return true };
    let identifier =
        Identifier::parse_key(key).or_else(|| Identifier::new(datasets::schema::IdentifierKind::UserId, key));
    identifier.is_none_or(|identifier| ids.identifiers.contains(&identifier))
}

/// The model's persons behind the live person's own identifiers that [`trained_persons`]
/// leaves out (neither in `trained` nor `also`): because an identifier they were trained
/// with was erased as someone else's (a shared browser's cookie, unlinked from them since
/// and erased with its other user), or because the live graph gives their key identifier
/// to someone else now: what they bought still counts, never offered back (the safe side);
/// what they like does not.
fn blocked_own(
    serving: &Serving,
    identifiers: &[Identifier],
    live: &store::LivePerson,
    trained: &[UserIdx],
    also: &[UserIdx],
) -> Vec<UserIdx> {
    let engine = &serving.model.engine;
    let erased = learned_erased(serving, live);
    let own: Vec<&Identifier> = match &live.ids {
        Some(ids) => ids.identifiers.iter().collect(),
        None => identifiers.iter().collect(),
    };
    let mut blocked: Vec<UserIdx> = Vec::new();
    for identifier in own.into_iter().filter(|i| !erased.contains(i)) {
        if let Some(user) = engine.lookup(&identifier.key())
            && !trained.contains(&user)
            && !also.contains(&user)
            && !blocked.contains(&user)
        {
            blocked.push(user);
        }
    }
    blocked
}

/// The model's persons of `candidates` in priority order, once each, skipping what `live`'s
/// erasure marks rule out.
fn model_persons(
    serving: &Serving,
    mut candidates: Vec<&Identifier>,
    live: &store::LivePerson,
) -> Vec<UserIdx> {
    let engine = &serving.model.engine;
    let erased = learned_erased(serving, live);
    let blocked: BTreeSet<UserIdx> =
        erased.iter().filter_map(|identifier| engine.lookup(&identifier.key())).collect();
    candidates.sort();
    let mut trained: Vec<UserIdx> = Vec::new();
    for identifier in candidates.into_iter().filter(|i| !erased.contains(i)) {
        if let Some(user) = engine.lookup(&identifier.key())
            && !blocked.contains(&user)
            && !trained.contains(&user)
        {
            trained.push(user);
        }
    }
    trained
}

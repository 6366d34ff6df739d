//! One person as served: what the model learned of them, joined with what happened since
//! training (the live store's events, translated by the caller into the model's indices).
//!
//! The rules of freshness, in one place:
//! - **Who**: the trained persons the live identity graph joins under one person (a live
//!   merge can join several); the first, the one of the person's most trustworthy
//!   identifier, lends its stored state (factors, profile).
//! - **History**: the trained persons' histories summed, plus every live event with an item,
//!   weighted by the artifact's own weighting ([`datasets::dataset::WeightConfig::weigh`]),
//!   so a view on the phone an hour ago shifts the web page as training would have; each
//!   entry keeps its latest time, so the person's own recency ([`datasets::recency`])
//!   counts the live events among the newest. A person
//!   with live events, or with several trained persons, is `fresh`: the models fold the
//!   history in instead of using stored factors.
//! - **Consumed**: the trained persons' consumed items (the units the artifact counted per
//!   trained person), and those of the trained persons behind other persons the request
//!   names (their purchases count, not their history); per item at least what another
//!   loaded model version learned they held (one trained on more data); plus what the model's inputs show held under the person's identifiers
//!   while they withheld consent (per item, the most any one identifier holds), then
//!   the live ledger after the model's watermark replayed on top in time order (not arrival
//!   order): a purchase adds one, a return takes one away if one is held, an item is
//!   consumed while the count is above zero. The caller passes only what came after the
//!   watermark, so nothing the model learned is counted twice; except for a person who
//!   withholds personalisation, whose whole stored ledger counts (exports leave it out) and
//!   may repeat what the model's inputs kept of them: per item the larger of the two.

use std::borrow::Cow;
use std::collections::BTreeMap;

use datasets::schema::Event;
use datasets::{ItemIdx, UserIdx};

use crate::serve::engine::{Engine, Person};

/// Per item, purchases (+1) and returns (-1) with their times, in order.
pub type Ledger = Vec<(ItemIdx, Vec<(i8, i64)>)>;

/// What the live store knows of a person, in the model's indices.
#[derive(Debug, Clone, Default)]
pub struct LiveSignals {
    /// The model's persons among the person's identifiers, most trustworthy identifier's
    /// first; those of erased persons left out.
    pub trained: Vec<UserIdx>,
    /// The model's persons behind the person's own identifiers that `trained` leaves out
    /// because an identifier they were trained with was erased as someone else's: what they
    /// bought is consumed; their history does not count.
    pub blocked: Vec<UserIdx>,
    /// The model's persons behind other persons the request names (a guest's cookie joined
    /// live to another trained identifier), not among `trained`: what they bought is consumed
    /// too; their history does not count.
    pub also_trained: Vec<UserIdx>,
    /// What other loaded model versions learned the person held (item, last purchase time,
    /// units): a version trained on more data knows purchases this one never saw. Per item
    /// the larger of this and the model's own count is held.
    pub elsewhere: Vec<(ItemIdx, i64, u32)>,
    /// Live events after the model's watermark, oldest first, each with its item's index in
    /// the served catalog (`None`: no item, or one the catalog does not know).
    pub events: Vec<(Option<ItemIdx>, Event)>,
    /// Per item, the purchases (+1) and returns (-1) after the watermark, with their times, in
    /// order.
    pub ledger: Ledger,
    /// The same for each of the other persons the request names, apart from the person's:
    /// what any of them holds is consumed; their returns cancel only their own purchases.
    pub also_ledgers: Vec<Ledger>,
    /// What the model's inputs show held under the person's identifiers while they withheld
    /// consent (never trained on): per identifier, (item, last purchase time, units), from
    /// [`Engine::withheld`]; those of erased identifiers left out.
    pub withheld: Vec<Vec<(ItemIdx, i64, u32)>>,
    /// Whether the person allows personalisation.
    pub personalization: bool,
    /// What was shown to the person lately (item, time).
    pub shown: Vec<(ItemIdx, i64)>,
}

/// The person of `live` for `engine`; see the module docs.
pub fn assemble(engine: &Engine, live: &LiveSignals) -> Person<'static> {
    let weights = &engine.artifact().metadata.config.weights;
    // Per item: summed weight and latest time.
    let mut history: BTreeMap<ItemIdx, (f32, i64)> = BTreeMap::new();
    for &user in &live.trained {
        let times = engine.history_times(user);
        for (i, (item, weight)) in engine.history(user).into_iter().enumerate() {
            let entry = history.entry(item).or_default();
            entry.0 += weight;
            entry.1 = entry.1.max(times.get(i).copied().unwrap_or(0));
        }
    }
    // What the person holds, from the trained persons `users` (theirs, and for exclusion
    // those behind their identifiers that are someone else's now) and their own signals.
    let mut consumed = held(engine, live, &mut live.trained.iter().chain(&live.blocked));
    // The other persons the request names, each netted apart: what the model knew any of
    // them bought, and what any of them holds after their own returns since. A return of
    // theirs since the model's data does not cancel what the model knew (the safe side).
    let mut theirs: BTreeMap<u32, i64> = BTreeMap::new();
    let mut mark = |item: u32, at: i64| {
        let entry = theirs.entry(item).or_insert(at);
        *entry = (*entry).max(at);
    };
    for &user in &live.also_trained {
        for &(item, at) in engine.consumed(user) {
            mark(item, at);
        }
    }
    for ledger in &live.also_ledgers {
        for (item, entries) in ledger {
            let (units, at) = replay((0, i64::MIN), entries);
            if units > 0 {
                mark(item.0, at);
            }
        }
    }
    for (item, at) in theirs {
        let entry = consumed.entry(item).or_insert((0, at));
        entry.0 = entry.0.max(1);
        entry.1 = entry.1.max(at);
    }
    let mut fresh = live.trained.len() > 1;
    for (item, event) in &live.events {
        let Some(item) = item else { continue };
        let weighed = weights.weigh(event);
        if weighed.weight > 0.0 {
            let entry = history.entry(*item).or_default();
            entry.0 += weighed.weight;
            entry.1 = entry.1.max(event.timestamp);
            fresh = true;
        }
    }
    let (history, history_times): (Vec<(ItemIdx, f32)>, Vec<i64>) =
        history.into_iter().filter(|&(_, (w, _))| w > 0.0).map(|(item, (w, at))| ((item, w), at)).unzip();
    Person {
        user: live.trained.first().copied(),
        history: Cow::Owned(history),
        history_times: Cow::Owned(history_times),
        consumed: Cow::Owned(
            consumed.into_iter().filter(|(_, (n, _))| *n > 0).map(|(item, (_, at))| (item, at)).collect(),
        ),
        bought: Some(Cow::Owned(own_purchases(engine, live))),
        fresh,
        personalization: live.personalization,
        shown: live.shown.clone(),
    }
}

/// The items the person bought themself, sorted, for explanations: what the model counted
/// for their own trained persons and their own ledger since, replayed. Other versions' and
/// withheld holdings are left out (they may be another named person's); an explanation
/// then says "looked at" where it could have said "bought", never the other way.
fn own_purchases(engine: &Engine, live: &LiveSignals) -> Vec<u32> {
    let mut own: BTreeMap<u32, (i32, i64)> = BTreeMap::new();
    for &user in &live.trained {
        for &(item, at) in engine.consumed(user) {
            let entry = own.entry(item).or_insert((0, at));
            entry.0 += engine.held(user, item) as i32;
            entry.1 = entry.1.max(at);
        }
    }
    for (item, entries) in &live.ledger {
        let entry = own.entry(item.0).or_insert((0, i64::MIN));
        *entry = replay(*entry, entries);
    }
    own.into_iter().filter(|(_, (n, _))| *n > 0).map(|(item, _)| item).collect()
}

/// Per item, the units held and the last purchase's time: the trained persons `users`' counts,
/// what other versions learned, what was kept while consent was withheld, and the ledger
/// since the model's data replayed on top (see the module docs).
fn held(
    engine: &Engine,
    live: &LiveSignals,
    users: &mut dyn Iterator<Item = &UserIdx>,
) -> BTreeMap<u32, (i32, i64)> {
    let mut consumed: BTreeMap<u32, (i32, i64)> = BTreeMap::new();
    for &user in users {
        // Each trained person holding the item holds what the artifact counted (a live merge
        // of two who both bought it needs two returns).
        for &(item, at) in engine.consumed(user) {
            let entry = consumed.entry(item).or_insert((0, at));
            entry.0 += engine.held(user, item) as i32;
            entry.1 = entry.1.max(at);
        }
    }
    // What other versions learned: the same purchases may be in this model's data, so per
    // item the larger count.
    for &(item, at, units) in &live.elsewhere {
        let entry = consumed.entry(item.0).or_insert((0, at));
        entry.0 = entry.0.max(units as i32);
        entry.1 = entry.1.max(at);
    }
    // Held under identifiers while consent was withheld: one purchase event may carry several
    // of the person's identifiers, so per item the most any one identifier holds.
    let mut withheld: BTreeMap<u32, (i32, i64)> = BTreeMap::new();
    for &(item, at, units) in live.withheld.iter().flatten() {
        let entry = withheld.entry(item.0).or_insert((0, at));
        entry.0 = entry.0.max(units as i32);
        entry.1 = entry.1.max(at);
    }
    if live.personalization {
        // The ledger is what came after the model's data: replayed on top of what it knew.
        for (item, (units, at)) in withheld {
            let entry = consumed.entry(item).or_insert((0, at));
            entry.0 += units;
            entry.1 = entry.1.max(at);
        }
        for (item, entries) in &live.ledger {
            let entry = consumed.entry(item.0).or_insert((0, i64::MIN));
            *entry = replay(*entry, entries);
        }
    } else {
        // Withholding personalisation, the whole stored ledger counts, and the model's
        // inputs may hold the same purchases (an export keeps them for this): per item, the
        // larger of the two.
        let mut held = withheld;
        for (item, entries) in &live.ledger {
            let (units, at) = replay((0, i64::MIN), entries);
            let entry = held.entry(item.0).or_insert((0, at));
            entry.0 = entry.0.max(units);
            entry.1 = entry.1.max(at);
        }
        for (item, (units, at)) in held {
            let entry = consumed.entry(item).or_insert((0, at));
            entry.0 += units;
            entry.1 = entry.1.max(at);
        }
    }
    consumed
}

/// Replays purchases (+1) and returns (-1) with their times on `(units held, time of the
/// last purchase)`, in time order (a purchase before a return of the same second), whatever
/// order they arrived in: a return sent late but dated before a purchase does not cancel
/// it. A return cancels one unit held, if any: one with nothing before it (a gift, or a
/// purchase older than the data) does not hide the next purchase. The units the start holds
/// (what the model knew) count from its last purchase on: when the others were bought is not
/// known, so a return dated before that cancels none of them (the safe side).
fn replay((units, last): (i32, i64), entries: &[(i8, i64)]) -> (i32, i64) {
    let mut ordered: Vec<(i32, i64)> = entries.iter().map(|&(sign, at)| (i32::from(sign), at)).collect();
    if units > 0 {
        ordered.push((units, last));
    }
    ordered.sort_by_key(|&(change, at)| (at, -change.signum()));
    let (mut held, mut last) = (0, last);
    for (change, at) in ordered {
        held = (held + change).max(0);
        if change > 0 {
            last = last.max(at);
        }
    }
    (held, last)
}

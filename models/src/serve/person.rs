//! One person as served: what the model learned of them, joined with what happened since
//! training (the live store's events, translated by the caller into the model's indices).
//!
//! The rules of freshness, in one place:
//! - **Who**: the trained persons the live identity graph joins under one person (a live
//!   merge can join several); the first, the one of the person's most trustworthy
//!   identifier, lends its stored state (factors, profile).
//! - **History**: the trained persons' histories summed, plus every live event with an item,
//!   weighted by the artifact's own weighting ([`datasets::dataset::WeightConfig::weigh`]),
//!   so a view on the phone an hour ago shifts the web page as training would have. A person
//!   with live events, or with several trained persons, is `fresh`: the models fold the
//!   history in instead of using stored factors.
//! - **Consumed**: the trained persons' consumed items, then the live ledger after the
//!   model's watermark replayed on top: a purchase adds one, a return takes one away, an item
//!   is consumed while the count is above zero. The caller passes only what came after the
//!   watermark, so nothing the model learned is counted twice.

use std::borrow::Cow;
use std::collections::BTreeMap;

use datasets::schema::Event;
use datasets::{ItemIdx, UserIdx};

use crate::serve::engine::{Engine, Person};

/// What the live store knows of a person, in the model's indices.
#[derive(Debug, Clone, Default)]
pub struct LiveSignals {
    /// The model's persons among the person's identifiers, most trustworthy identifier's
    /// first; those of erased persons left out.
    pub trained: Vec<UserIdx>,
    /// Live events after the model's watermark, oldest first, each with its item's index in
    /// the served catalog (`None`: no item, or one the catalog does not know).
    pub events: Vec<(Option<ItemIdx>, Event)>,
    /// Per item, the purchases (+1) and returns (-1) after the watermark, with their times, in
    /// order.
    pub ledger: Vec<(ItemIdx, Vec<(i8, i64)>)>,
    /// Whether the person allows personalisation.
    pub personalization: bool,
    /// What was shown to the person lately (item, time).
    pub shown: Vec<(ItemIdx, i64)>,
}

/// The person of `live` for `engine`; see the module docs.
pub fn assemble(engine: &Engine, live: &LiveSignals) -> Person<'static> {
    let weights = &engine.artifact().metadata.config.weights;
    let mut history: BTreeMap<ItemIdx, f32> = BTreeMap::new();
    let mut consumed: BTreeMap<u32, (i32, i64)> = BTreeMap::new();
    for &user in &live.trained {
        for (item, weight) in engine.history(user) {
            *history.entry(item).or_default() += weight;
        }
        for &(item, at) in engine.consumed(user) {
            let entry = consumed.entry(item).or_insert((1, at));
            entry.1 = entry.1.max(at);
        }
    }
    let mut fresh = live.trained.len() > 1;
    for (item, event) in &live.events {
        let Some(item) = item else { continue };
        let weighed = weights.weigh(event);
        if weighed.weight > 0.0 {
            *history.entry(*item).or_default() += weighed.weight;
            fresh = true;
        }
    }
    for (item, entries) in &live.ledger {
        let entry = consumed.entry(item.0).or_insert((0, i64::MIN));
        for &(sign, at) in entries {
            entry.0 += i32::from(sign);
            if sign > 0 {
                entry.1 = entry.1.max(at);
            }
        }
    }
    Person {
        user: live.trained.first().copied(),
        history: Cow::Owned(history.into_iter().filter(|&(_, w)| w > 0.0).collect()),
        consumed: Cow::Owned(
            consumed.into_iter().filter(|(_, (n, _))| *n > 0).map(|(item, (_, at))| (item, at)).collect(),
        ),
        fresh,
        personalization: live.personalization,
        shown: live.shown.clone(),
    }
}

//! The store's one writer: a thread that takes every change (events, links, consent,
//! erasure, catalog changes, what was served), applies whatever is waiting in one write
//! transaction, commits it with one disk sync, and only then answers each caller.
//!
//! A sync costs about 4 ms on the machines we run on, so a sync per request would cap
//! ingestion near 250 requests per second; grouped, one sync is shared by every request that
//! arrived while the previous one was syncing. Changes within a group see each other (two
//! requests re-sending one event id: the second is a duplicate). If the commit fails, nothing
//! of the group is kept, every caller is told, and the in-memory identity graph is rebuilt
//! from what is stored.

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, PoisonError};

use datasets::identity::{LinkOutcome, Refusal, RefusalKind};
use datasets::schema::{Event, Identifier, IdentifierKind};

use crate::backend::Writer;
use crate::error::{Error, Result};
use crate::graph::{LiveGraph, Seed};
use crate::record::{
    Assignment, CONSENT_EVENT, ConsentRecord, ConsumedEntry, Erased, EventRecord, ExperimentRecord, Exposure,
    Impression, ItemRecord, LINK_EVENT, LinkKind, LinkRecord, ModelRecord, Purposes, UNLINK_EVENT,
    suppression_hash,
};
use crate::{Committed, Erasure, Ingested, ItemChange, ItemOutcome, LinkAnswer, Shared, UnlinkAnswer};

mod erasure;

/// The most events one commit takes; more waiting requests go into the next one.
const MAX_EVENTS_PER_COMMIT: usize = 50_000;

/// One event to append, validated by the caller (schema, times); the writer checks what
/// needs the stored state: repeats, erased persons, placeholders.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event; `event_id` set.
    pub event: Event,
    /// The recommendation that led to it.
    pub recommendation_id: Option<String>,
    /// The store where it happened.
    pub store_id: Option<String>,
}

pub(crate) type Reply<T> = SyncSender<Result<T>>;

/// A durable change of the experiment and registry tables.
pub(crate) enum LabChange {
    Experiment(ExperimentRecord),
    Exposures(Vec<Exposure>),
    Model(ModelRecord),
}

pub(crate) enum Op {
    Ingest {
        events: Vec<NewEvent>,
        at: i64,
        reply: Reply<Vec<Ingested>>,
    },
    Link {
        a: Identifier,
        b: Identifier,
        source: String,
        at: i64,
        reply: Reply<LinkAnswer>,
    },
    Unlink {
        a: Identifier,
        b: Identifier,
        source: String,
        at: i64,
        reply: Reply<UnlinkAnswer>,
    },
    Consent {
        identifier: Identifier,
        purposes: Purposes,
        source: String,
        at: i64,
        reply: Reply<Purposes>,
    },
    Erase {
        identifier: Identifier,
        also: Vec<Identifier>,
        source: String,
        at: i64,
        reply: Reply<Option<Erasure>>,
    },
    Items {
        changes: Vec<ItemChange>,
        at: i64,
        reply: Reply<Vec<ItemOutcome>>,
    },
    /// Experiments, reported exposures, the model registry.
    Lab {
        change: LabChange,
        reply: Reply<Vec<bool>>,
    },
    /// Writes the served answers waiting in memory (sent by the timer).
    Flush,
    /// A model's persons and rules (boxed: the rules hold the placeholder sets).
    Reseed {
        seed: Box<(Seed, datasets::identity::IdentityRules)>,
        reply: Reply<()>,
    },
}

impl Op {
    fn size(&self) -> usize {
        match self {
            Op::Ingest { events, .. } => events.len(),
            Op::Items { changes, .. } => changes.len(),
            Op::Lab { change: LabChange::Exposures(exposures), .. } => exposures.len(),
            _ => 1,
        }
    }

    fn is_durable(&self) -> bool {
        !matches!(self, Op::Flush)
    }
}

/// An answer waiting for the commit.
enum Answer {
    Ingest(Reply<Vec<Ingested>>, Vec<Ingested>),
    Link(Reply<LinkAnswer>, LinkAnswer),
    Unlink(Reply<UnlinkAnswer>, UnlinkAnswer),
    Consent(Reply<Purposes>, Purposes),
    Erase(Reply<Option<Erasure>>, Option<Erasure>),
    Items(Reply<Vec<ItemOutcome>>, Vec<ItemOutcome>),
    Lab(Reply<Vec<bool>>, Vec<bool>),
    Reseed(Reply<()>),
    None,
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Ingest(reply, value) => drop(reply.send(Ok(value))),
            Answer::Link(reply, value) => drop(reply.send(Ok(value))),
            Answer::Unlink(reply, value) => drop(reply.send(Ok(value))),
            Answer::Consent(reply, value) => drop(reply.send(Ok(value))),
            Answer::Erase(reply, value) => drop(reply.send(Ok(value))),
            Answer::Items(reply, value) => drop(reply.send(Ok(value))),
            Answer::Lab(reply, value) => drop(reply.send(Ok(value))),
            Answer::Reseed(reply) => drop(reply.send(Ok(()))),
            Answer::None => {}
        }
    }
}

fn fail(op: Op, cause: &Error) {
    fn again<T>(cause: &Error) -> Result<T> {
        Err(cause.again())
    }
    match op {
        Op::Ingest { reply, .. } => drop(reply.send(again(cause))),
        Op::Link { reply, .. } => drop(reply.send(again(cause))),
        Op::Unlink { reply, .. } => drop(reply.send(again(cause))),
        Op::Consent { reply, .. } => drop(reply.send(again(cause))),
        Op::Erase { reply, .. } => drop(reply.send(again(cause))),
        Op::Items { reply, .. } => drop(reply.send(again(cause))),
        Op::Lab { reply, .. } => drop(reply.send(again(cause))),
        Op::Reseed { reply, .. } => drop(reply.send(again(cause))),
        Op::Flush => {}
    }
}

/// How long a served answer may wait in memory before it is written (a durable commit
/// writes what is waiting sooner).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// The writer thread's loop: blocks for the first change of a group, then takes whatever else
/// is already waiting, so requests that arrived during the previous sync share this one.
/// Served answers wait in memory and are written with the next commit, or by themselves
/// every [`FLUSH_EVERY`], so recording what was shown costs no commit of its own per request.
pub(crate) fn run(shared: Arc<Shared>, receiver: Receiver<Op>) {
    loop {
        let first = match receiver.recv_timeout(FLUSH_EVERY) {
            Ok(op) => op,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if shared.pending.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|p| !p.taken) {
                    Op::Flush
                } else {
                    continue;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        let mut size = group[0].size();
        while size < MAX_EVENTS_PER_COMMIT
            && let Ok(next) = receiver.try_recv()
        {
            size += next.size();
            group.push(next);
        }
        commit_group(&shared, group);
    }
    // Stopping: what is still waiting in memory goes to disk too.
    commit_group(&shared, vec![Op::Flush]);
}

fn commit_group(shared: &Shared, group: Vec<Op>) {
    if let Some(reason) = shared.broken.get() {
        // Served answers stay waiting in memory; every change is refused.
        let refused = Error::Unwritable(reason.clone());
        for op in group {
            fail(op, &refused);
        }
        return;
    }
    let durable = group.iter().any(Op::is_durable);
    let mut answers: Vec<Answer> = Vec::new();
    let mut committed = Committed::default();
    let mut graph_changed = false;
    // The served answers waiting now go with this commit; marked, so one committing
    // meanwhile is not taken twice.
    let served: Vec<(Impression, Option<Exposure>)> = {
        let mut pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .iter_mut()
            .filter(|p| !p.taken)
            .map(|p| {
                p.taken = true;
                (p.shown.clone(), p.exposure())
            })
            .collect()
    };
    if served.is_empty() && group.iter().all(|op| matches!(op, Op::Flush)) {
        return;
    }
    let mut ops: Vec<Option<Op>> = group.into_iter().map(Some).collect();
    let rebuilds = ops.iter().flatten().any(|op| matches!(op, Op::Erase { .. } | Op::Reseed { .. }));
    let rebuilding = rebuilds.then(|| shared.rebuilding.lock().unwrap_or_else(PoisonError::into_inner));
    let outcome = shared.backend.write(durable, &mut |w: &mut dyn Writer| {
        answers.clear();
        committed = Committed::default();
        let mut next = w.next_seq()?;
        // First what was served, so that the changes after it (an erasure) see it.
        for (impression, exposure) in &served {
            committed.served.push(impression.id.clone());
            if erased_since(w, &impression.person, impression.at)? {
                continue;
            }
            w.put_impression(impression, true)?;
            if let Some(exposure) = exposure {
                expose(w, exposure)?;
            }
        }
        for op in &ops {
            let op = op.as_ref().expect("ops are taken only after the transaction");
            let answer = apply(shared, w, op, &mut next, &mut committed, &mut graph_changed)?;
            answers.push(answer);
        }
        w.set_next_seq(next)
    });
    match outcome {
        Ok(()) => {
            if !committed.served.is_empty() {
                let written: std::collections::HashSet<&String> = committed.served.iter().collect();
                let mut pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
                pending.retain(|p| !(p.taken && written.contains(&p.shown.id)));
            }
            if committed.rebuild_graph
                && let Err(error) = shared.rebuild_graph()
            {
                tracing::error!(%error, "the identity graph could not be rebuilt after a commit");
            }
            drop(rebuilding);
            shared.notify(&committed);
            for answer in answers {
                answer.send();
            }
        }
        Err(error) => {
            if let Error::CommitUncertain(reason) | Error::Unwritable(reason) = &error {
                tracing::error!(%error, changes = ops.len(), "a group commit failed; the store takes no more writes");
                let _ = shared.broken.set(reason.clone());
            } else {
                tracing::error!(%error, changes = ops.len(), "a group commit failed; nothing of it was stored");
            }
            // The served answers wait for the next commit.
            for p in shared.pending.lock().unwrap_or_else(PoisonError::into_inner).iter_mut() {
                p.taken = false;
            }
            if graph_changed && let Err(error) = shared.rebuild_graph() {
                tracing::error!(%error, "the identity graph could not be rebuilt after a failed commit");
            }
            for op in ops.iter_mut().filter_map(Option::take) {
                fail(op, &error);
            }
        }
    }
}

/// Stores an exposure unless it is stored already, and the person's assignment under its key
/// if none is recorded there; whether it was new.
fn expose(w: &mut dyn Writer, exposure: &Exposure) -> Result<bool> {
    let experiment = &exposure.tag.experiment;
    if w.has_exposure(experiment, exposure.at, &exposure.id, &exposure.person)?
        || erased_since(w, &exposure.person, exposure.at)?
    {
        return Ok(false);
    }
    w.put_exposure(exposure)?;
    if w.assignment(&exposure.person, experiment)?.is_none() {
        let assignment = Assignment {
            variant: exposure.tag.variant.clone(),
            at: exposure.at,
            exposure_id: exposure.id.clone(),
        };
        w.put_assignment(&exposure.person, experiment, &assignment)?;
    }
    Ok(true)
}

/// Whether the person `key` names was erased at or after `at`: then what was shown to them
/// at `at` (an answer computed while the erasure committed, recorded just after it) is not
/// stored.
fn erased_since(w: &dyn Writer, key: &str, at: i64) -> Result<bool> {
    Ok(w.erased(&suppression_hash(key))?.is_some_and(|erased| erased.at >= at))
}

/// Files again, as training files them, the events filed under identifiers just refused
/// for merging: each under its first identifier that is not refused (a tablet refused once a
/// second card was seen on it no longer answers for the person who bought at it with their
/// cookie; the purchase goes to the cookie's person, consumed ledger included). An event
/// with no other identifier stays where it is.
fn refile(shared: &Shared, w: &mut dyn Writer, refused: &[Refusal]) -> Result<()> {
    for refusal in refused.iter().filter(|r| r.kind != RefusalKind::Separated) {
        let key = refusal.identifier.key();
        for seq in w.events_with(&key)? {
            let Some(event) = w.event(seq)? else { continue };
            if event.anchor != key {
                continue;
            }
            let identifiers: Vec<Identifier> =
                event.identifiers.iter().filter_map(|k| Identifier::parse_key(k)).collect();
            let anchor = shared.graph.read().unwrap_or_else(PoisonError::into_inner).anchor_of(&identifiers);
            let Some(anchor) = anchor.map(|a| a.key()).filter(|a| *a != key) else { continue };
            if let Some(item) = &event.item_id {
                let mut from = w.consumed_item(&key, item)?;
                let moved: Vec<ConsumedEntry> = from.iter().filter(|e| e.seq == seq).cloned().collect();
                if !moved.is_empty() {
                    from.retain(|e| e.seq != seq);
                    w.put_consumed(&key, item, &from)?;
                    let mut to = w.consumed_item(&anchor, item)?;
                    to.extend(moved);
                    to.sort_by_key(|e| e.seq);
                    w.put_consumed(&anchor, item, &to)?;
                }
            }
            w.delete_event(&event)?;
            w.put_event(&EventRecord { anchor, ..event })?;
        }
    }
    Ok(())
}

fn graph_of(shared: &Shared) -> std::sync::RwLockWriteGuard<'_, LiveGraph> {
    shared.graph.write().unwrap_or_else(PoisonError::into_inner)
}

fn apply(
    shared: &Shared,
    w: &mut dyn Writer,
    op: &Op,
    next: &mut u64,
    committed: &mut Committed,
    graph_changed: &mut bool,
) -> Result<Answer> {
    Ok(match op {
        Op::Ingest { events, at, reply } => {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                let outcome = ingest(shared, w, event, *at, next, committed, graph_changed)?;
                outcomes.push(outcome);
            }
            Answer::Ingest(reply.clone(), outcomes)
        }
        Op::Link { a, b, source, at, reply } => {
            *graph_changed = true;
            let seq = take(next);
            let record = api_event(seq, LINK_EVENT, &[a, b], *at, None);
            let outcome = graph_of(shared).link_explicit(&[a.clone(), b.clone()], *at, seq);
            refile(shared, w, &outcome.refused)?;
            w.put_event(&record)?;
            w.put_link(&LinkRecord {
                seq,
                kind: LinkKind::Link,
                identifiers: record.identifiers.clone(),
                event_id: record.event_id.clone(),
                source: source.clone(),
                rule: rule_summary(&outcome),
                at: *at,
            })?;
            committed.events.push(record);
            Answer::Link(reply.clone(), LinkAnswer { seq, merged: outcome.merged, refused: outcome.refused })
        }
        Op::Unlink { a, b, source, at, reply } => {
            let together = {
                let graph = shared.graph.read().unwrap_or_else(PoisonError::into_inner);
                graph.person(std::slice::from_ref(a)).is_some_and(|p| p.identifiers.contains(b))
            };
            if !together {
                return Ok(Answer::Unlink(reply.clone(), UnlinkAnswer { seq: None, were_linked: false }));
            }
            *graph_changed = true;
            let seq = take(next);
            let record = api_event(seq, UNLINK_EVENT, &[a, b], *at, None);
            graph_of(shared).separate(a, b, *at, seq);
            w.put_event(&record)?;
            w.put_link(&LinkRecord {
                seq,
                kind: LinkKind::Unlink,
                identifiers: vec![a.key(), b.key()],
                event_id: record.event_id.clone(),
                source: source.clone(),
                rule: "unlinked".into(),
                at: *at,
            })?;
            committed.events.push(record);
            Answer::Unlink(reply.clone(), UnlinkAnswer { seq: Some(seq), were_linked: true })
        }
        Op::Consent { identifier, purposes, source, at, reply } => {
            let seq = take(next);
            let record = api_event(seq, CONSENT_EVENT, &[identifier], *at, Some(purposes.clone()));
            let identifiers = {
                let mut graph = graph_of(shared);
                // Consent may come before any event: the identifier becomes known (logged,
                // so it still is after a restart).
                let (_, first_seen) = graph.link(std::slice::from_ref(identifier), *at, seq);
                if first_seen {
                    *graph_changed = true;
                    w.put_link(&LinkRecord {
                        seq,
                        kind: LinkKind::Event,
                        identifiers: vec![identifier.key()],
                        event_id: record.event_id.clone(),
                        source: source.clone(),
                        rule: "first seen".into(),
                        at: *at,
                    })?;
                }
                graph.person(std::slice::from_ref(identifier)).map(|p| p.identifiers).unwrap_or_default()
            };
            let mut effective = Purposes::new();
            for member in &identifiers {
                let key = member.key();
                let mut set = w.consent(&key)?.map(|c| c.purposes).unwrap_or_default();
                set.extend(purposes.iter().map(|(k, v)| (k.clone(), *v)));
                w.put_consent(
                    &key,
                    &ConsentRecord { purposes: set.clone(), at: *at, source: source.clone() },
                )?;
                if member == identifier {
                    effective = set;
                }
            }
            w.put_event(&record)?;
            committed.events.push(record);
            Answer::Consent(reply.clone(), effective)
        }
        Op::Erase { identifier, also, source, at, reply } => {
            let erasure = erasure::erase(shared, w, identifier, also, source, *at)?;
            if erasure.is_some() {
                *graph_changed = true;
                committed.rebuild_graph = true;
                committed.erased = true;
            }
            Answer::Erase(reply.clone(), erasure)
        }
        Op::Items { changes, at, reply } => {
            let mut outcomes = Vec::with_capacity(changes.len());
            for change in changes {
                outcomes.push(change_item(w, change, *at, next, committed)?);
            }
            Answer::Items(reply.clone(), outcomes)
        }
        Op::Flush => Answer::None,
        Op::Lab { change, reply } => {
            let outcomes = match change {
                LabChange::Experiment(experiment) => {
                    w.put_experiment(experiment)?;
                    vec![true]
                }
                LabChange::Model(model) => {
                    w.put_model(model)?;
                    vec![true]
                }
                LabChange::Exposures(exposures) => {
                    exposures.iter().map(|exposure| expose(w, exposure)).collect::<Result<Vec<bool>>>()?
                }
            };
            Answer::Lab(reply.clone(), outcomes)
        }
        Op::Reseed { seed, reply } => {
            *shared.seed.write().unwrap_or_else(PoisonError::into_inner) = (**seed).clone();
            committed.rebuild_graph = true;
            *graph_changed = true;
            Answer::Reseed(reply.clone())
        }
    })
}

fn take(next: &mut u64) -> u64 {
    let seq = *next;
    *next += 1;
    seq
}

fn rule_summary(outcome: &datasets::identity::LinkOutcome) -> String {
    let mut parts = Vec::new();
    if outcome.merged > 0 {
        parts.push(format!("merged {}", outcome.merged));
    }
    for refusal in &outcome.refused {
        parts.push(format!(
            "refused {} ({}): {}",
            refusal.identifier.key(),
            refusal.kind.as_str(),
            refusal.reason
        ));
    }
    if parts.is_empty() { "already one person".into() } else { parts.join("; ") }
}

/// The event recording an API call (a link, an unlink, a consent change).
fn api_event(
    seq: u64,
    event_type: &str,
    identifiers: &[&Identifier],
    at: i64,
    consent: Option<Purposes>,
) -> EventRecord {
    let mut keys: Vec<&Identifier> = identifiers.to_vec();
    keys.sort();
    EventRecord {
        seq,
        event_id: uuid::Uuid::now_v7().to_string(),
        identifiers: keys.iter().map(|i| i.key()).collect(),
        anchor: keys[0].key(),
        channel: crate::API_CHANNEL.into(),
        event_type: event_type.into(),
        item_id: None,
        timestamp: at,
        value: None,
        recommendation_id: None,
        store_id: None,
        received_at: at,
        consent,
    }
}

fn ingest(
    shared: &Shared,
    w: &mut dyn Writer,
    new: &NewEvent,
    at: i64,
    next: &mut u64,
    committed: &mut Committed,
    graph_changed: &mut bool,
) -> Result<Ingested> {
    let event = &new.event;
    let event_id = event.event_id.clone().unwrap_or_default();
    let mut identifiers: Vec<Identifier> = event.identifiers.clone();
    identifiers.sort();
    identifiers.dedup();
    let placeholder: Vec<bool> = {
        let graph = shared.graph.read().unwrap_or_else(PoisonError::into_inner);
        identifiers.iter().map(|i| graph.is_placeholder(i)).collect()
    };
    if placeholder.iter().all(|&p| p) {
        let kinds: Vec<&str> = identifiers.iter().map(|i| i.kind.as_str()).collect();
        return Ok(Ingested::Rejected {
            event_id,
            field: format!("identifiers.{}", kinds.first().copied().unwrap_or("user_id")),
            reason: format!(
                "only placeholder values ({}): they identify nobody; send a real identifier or none",
                kinds.join(", ")
            ),
        });
    }
    let mut record = EventRecord {
        seq: 0,
        event_id: event_id.clone(),
        identifiers: identifiers.iter().map(Identifier::key).collect(),
        anchor: String::new(),
        channel: event.channel.as_str().to_string(),
        event_type: event.event_type.as_str().to_string(),
        item_id: event.item_id.clone(),
        timestamp: event.timestamp,
        value: event.value,
        recommendation_id: new.recommendation_id.clone(),
        store_id: new.store_id.clone(),
        received_at: at,
        consent: None,
    };
    if let Some(seq) = w.event_seq(&event_id)? {
        let stored = w.event(seq)?.ok_or_else(|| {
            Error::Corrupt(format!("event id `{event_id}` points to event {seq}, which is missing"))
        })?;
        return Ok(if stored.same_content(&record) {
            Ingested::Duplicate { seq, event_id }
        } else {
            Ingested::Conflict { seq, event_id }
        });
    }
    for identifier in &identifiers {
        if let Some(erased) = w.erased(&suppression_hash(&identifier.key()))?
            && event.timestamp <= erased.at
        {
            return Ok(Ingested::Rejected {
                event_id,
                field: format!("identifiers.{}", identifier.kind.as_str()),
                reason: format!(
                    "the person was erased at {}: events dated before that are refused",
                    datasets::schema::format_timestamp(erased.at)
                ),
            });
        }
    }
    let seq = take(next);
    record.seq = seq;
    let usable: Vec<Identifier> =
        identifiers.into_iter().zip(&placeholder).filter(|(_, p)| !**p).map(|(i, _)| i).collect();
    // An anonymous cookie or device seen alone links nothing and is not logged (most of a
    // shop's visitors: the log would grow with each), so the graph does not take it in
    // either: rebuilt from the log, it would not know it.
    let anonymous = matches!(usable.as_slice(), [one] if matches!(one.kind, IdentifierKind::CookieId | IdentifierKind::DeviceId));
    let (outcome, is_new_set, anchor) = if anonymous {
        let anchor = shared.graph.read().unwrap_or_else(PoisonError::into_inner).anchor_of(&usable);
        (LinkOutcome { anchor: anchor.clone(), ..LinkOutcome::default() }, false, anchor)
    } else {
        let mut graph = graph_of(shared);
        let (outcome, is_new_set) = graph.link(&usable, event.timestamp, seq);
        // Filed under its first identifier not refused, after what this link refused (the
        // tablet this very event got refused is not where its purchase goes).
        let anchor = graph.anchor_of(&usable).or_else(|| outcome.anchor.clone());
        (outcome, is_new_set, anchor)
    };
    *graph_changed = true;
    refile(shared, w, &outcome.refused)?;
    record.anchor = anchor.as_ref().map(Identifier::key).unwrap_or_default();
    // A set first seen is logged; so is a customer's identifier first seen alone.
    if is_new_set {
        w.put_link(&LinkRecord {
            seq,
            kind: LinkKind::Event,
            identifiers: usable.iter().map(Identifier::key).collect(),
            event_id: event_id.clone(),
            source: record.channel.clone(),
            rule: if usable.len() == 1 { "first seen".into() } else { rule_summary(&outcome) },
            at: event.timestamp,
        })?;
    }
    w.put_event(&record)?;
    let weighed = shared.weights.read().unwrap_or_else(PoisonError::into_inner).weigh(event);
    if weighed.consumption != 0
        && let Some(item) = &record.item_id
    {
        let mut ledger = w.consumed_item(&record.anchor, item)?;
        ledger.push(ConsumedEntry { seq, sign: weighed.consumption, timestamp: event.timestamp });
        w.put_consumed(&record.anchor, item, &ledger)?;
    }
    if record.event_type == crate::IMPRESSION_EVENT {
        let items = match (&record.item_id, &record.recommendation_id) {
            (Some(item), _) => vec![item.clone()],
            // The served answer is recorded already; an impression naming an answer this
            // store never served carries no items to count.
            (None, _) => Vec::new(),
        };
        if !items.is_empty() {
            w.put_impression(
                &Impression {
                    id: event_id.clone(),
                    person: record.anchor.clone(),
                    channel: record.channel.clone(),
                    placement: None,
                    items,
                    at: event.timestamp,
                },
                false,
            )?;
        }
    }
    let answer = Ingested::Accepted {
        seq,
        event_id,
        anchor: record.anchor.clone(),
        merged: outcome.merged,
        refused: outcome.refused,
    };
    committed.events.push(record);
    Ok(answer)
}

fn change_item(
    w: &mut dyn Writer,
    change: &ItemChange,
    at: i64,
    next: &mut u64,
    committed: &mut Committed,
) -> Result<ItemOutcome> {
    let current = w.item(change.item_id())?;
    match change {
        ItemChange::Upsert { item_id, base, patch } => {
            let (start, created) = match (&current, base) {
                (Some(ItemRecord { item: Some(item), .. }), _) => (item.clone(), false),
                // Re-created after a delete, or new to the model: from what is sent.
                (Some(ItemRecord { item: None, .. }), _) | (None, None) => (new_item(item_id), true),
                (None, Some(base)) => ((**base).clone(), false),
            };
            match datasets::load::patch_item(start, patch) {
                Ok(item) => {
                    let record =
                        ItemRecord { item_id: item_id.clone(), item: Some(item), seq: take(next), at };
                    w.put_item(&record)?;
                    committed.items.push(record);
                    Ok(if created { ItemOutcome::Created } else { ItemOutcome::Updated })
                }
                Err(error) => Ok(ItemOutcome::Rejected { field: error.field, reason: error.reason }),
            }
        }
        ItemChange::Delete { item_id, in_model } => {
            let exists = match &current {
                Some(record) => record.item.is_some(),
                None => *in_model,
            };
            if !exists {
                return Ok(ItemOutcome::NotFound);
            }
            let record = ItemRecord { item_id: item_id.clone(), item: None, seq: take(next), at };
            w.put_item(&record)?;
            committed.items.push(record);
            Ok(ItemOutcome::Deleted)
        }
    }
}

fn new_item(item_id: &str) -> datasets::schema::Item {
    datasets::schema::Item {
        item_id: item_id.to_string(),
        title: item_id.to_string(),
        in_stock: true,
        ..Default::default()
    }
}

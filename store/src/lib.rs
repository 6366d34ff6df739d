//! omnirec's persistent state: the durable event log every channel writes to, the live
//! identity graph derived from it, consent, erasure, catalog changes and what was shown to
//! whom. It knows nothing of HTTP and nothing of models.
//!
//! [`Store`] is the interface the server uses. Its state lives behind [`Backend`]: the
//! embedded backend is one redb file ([`RedbBackend`]) in the server's data directory, so the
//! README's two commands need no other service; a shared PostgreSQL backend for several
//! server replicas will implement the same trait (see [`backend`]).
//!
//! - **Writes** go through one writer thread ([`writer`]) that groups whatever is waiting
//!   into one transaction and one disk sync, then answers: an accepted event is durable before
//!   its caller hears so.
//! - **Identity**: every event's identifiers are linked in the live graph ([`graph`]), which
//!   starts from the trained model's persons ([`Seed`]) and applies the trainer's own rules
//!   ([`datasets::identity`]). An event is filed under its anchor, the identifier the rules
//!   give it to; a person's events are those filed under any of its identifiers, so merges and
//!   unlinks move events between persons without rewriting them.
//! - **Reads** ([`Store::person`]) gather one person's live state: recent events, the consumed
//!   ledger, consent, erasure marks and what was shown to them.

pub mod backend;
mod error;
mod export;
pub mod graph;
mod lab;
pub mod record;
mod redb;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use datasets::dataset::WeightConfig;
use datasets::identity::{IdentityRules, Refusal};
use datasets::schema::Identifier;
use serde_json::{Map, Value};

pub use backend::Backend;
pub use error::{Error, Result};
pub use export::{ExportManifest, ExportedLink, Suppressed};
pub use graph::{LiveGraph, PersonIds, Seed};
pub use record::{
    ANALYTICS, Assignment, ConsentRecord, ConsumedEntry, EventRecord, ExperimentRecord, Exposure,
    ExposureTag, Impression, ItemRecord, LinkKind, LinkRecord, ModelRecord, ModelState, PERSONALIZATION,
    Purposes,
};
pub use redb::RedbBackend;
pub use writer::NewEvent;

use writer::Op;

mod pending;
pub(crate) use pending::Pending;

/// The type of the events channels send to report what they showed.
pub const IMPRESSION_EVENT: &str = datasets::dataset::IMPRESSION;
/// The channel of the store's own records of API calls: a channel's events may not name it.
pub const API_CHANNEL: &str = "api";
/// The event types of the store's own records of API calls (consent changes, explicit links
/// and unlinks): a channel may not send events of these types.
pub const RESERVED_EVENT_TYPES: [&str; 3] = [record::CONSENT_EVENT, record::LINK_EVENT, record::UNLINK_EVENT];

/// At most this many of an identifier's newest impressions are read per request (a person
/// shown answers for years on end would otherwise make every answer read them all): what
/// frequency caps and `not_shown_within_hours` look back on.
pub const MAX_SHOWN: usize = 1_000;

/// How the store behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Consent of persons who never set theirs, per purpose.
    pub consent_default: Purposes,
    /// Most events [`Store::person`] returns per person (the newest).
    pub recent_events: usize,
    /// Changes that may wait for the writer before callers block.
    pub queue: usize,
}

impl Default for StoreOptions {
    /// Personalisation and analytics allowed until the person says otherwise; the newest 200
    /// events per person.
    fn default() -> Self {
        StoreOptions {
            consent_default: [(PERSONALIZATION.to_string(), true), (ANALYTICS.to_string(), true)].into(),
            recent_events: 200,
            queue: 4_096,
        }
    }
}

/// What became of one appended event.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Stored, durably.
    Accepted {
        /// Its sequence number.
        seq: u64,
        /// Its id.
        event_id: String,
        /// The identifier key it is filed under.
        anchor: String,
        /// Persons its identifiers merged.
        merged: usize,
        /// Links its identifiers asked for and the rules refused.
        refused: Vec<Refusal>,
    },
    /// Already stored with the same content; nothing changed.
    Duplicate {
        /// The stored event's sequence number.
        seq: u64,
        /// Its id.
        event_id: String,
    },
    /// An event with this id is stored with other content; nothing changed.
    Conflict {
        /// The stored event's sequence number.
        seq: u64,
        /// Its id.
        event_id: String,
    },
    /// Refused by what the store knows: placeholders only, or an erased person's past.
    Rejected {
        /// Its id.
        event_id: String,
        /// The field at fault.
        field: String,
        /// Why.
        reason: String,
    },
}

/// What an explicit link did.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkAnswer {
    /// The identity log entry that records it.
    pub seq: u64,
    /// Persons merged (0: already one person, or refused).
    pub merged: usize,
    /// Why the rules refused it, if they did.
    pub refused: Vec<Refusal>,
}

/// What an unlink did.
#[derive(Debug, Clone, PartialEq)]
pub struct UnlinkAnswer {
    /// The identity log entry that records it; `None` when the two were not one person.
    pub seq: Option<u64>,
    /// Whether they were one person.
    pub were_linked: bool,
}

/// The receipt of an erasure: what was deleted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Erasure {
    /// The person's key before erasure.
    pub person: String,
    /// Identifiers erased (each now on the suppression list).
    pub identifiers: usize,
    /// The person's events deleted.
    pub events: u64,
    /// Other persons' events that carried one of the identifiers, kept without it.
    pub events_redacted: u64,
    /// Identity log entries deleted.
    pub links: u64,
    /// Identity log entries that also joined other persons' identifiers, kept without the
    /// erased ones.
    pub links_redacted: u64,
    /// Consent records deleted.
    pub consent_records: u64,
    /// Impressions deleted.
    pub impressions: u64,
    /// Experiment exposures deleted (their assignments with them).
    pub exposures: u64,
    /// When (seconds since the epoch).
    pub erased_at: i64,
    /// Who asked (the API key's name).
    pub requested_by: String,
}

/// One catalog change.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemChange {
    /// Create or change an item: `patch` (catalog fields as JSON) applied to the item's
    /// latest change, else to `base` (its entry in the loaded model), else to a new item.
    Upsert {
        /// The item.
        item_id: String,
        /// Its entry in the loaded model, if it has one.
        base: Option<Box<datasets::schema::Item>>,
        /// The fields to set.
        patch: Map<String, Value>,
    },
    /// Delete an item; `in_model` says whether the loaded model has it.
    Delete {
        /// The item.
        item_id: String,
        /// Whether the model has it.
        in_model: bool,
    },
}

impl ItemChange {
    fn item_id(&self) -> &str {
        match self {
            ItemChange::Upsert { item_id, .. } | ItemChange::Delete { item_id, .. } => item_id,
        }
    }
}

/// What became of one catalog change.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// A new item.
    Created,
    /// An item changed.
    Updated,
    /// Deleted.
    Deleted,
    /// Not in the model nor in any change: nothing to delete.
    NotFound,
    /// The change breaks a field's rules; nothing changed.
    Rejected {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}

/// What one commit changed, for listeners ([`Store::subscribe`]).
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// Events stored (channel events and the records of API calls).
    pub events: Vec<EventRecord>,
    /// Catalog changes stored.
    pub items: Vec<ItemRecord>,
    /// Served answers stored.
    pub served: Vec<String>,
    /// Whether the identity graph was rebuilt (after an erasure or another model's persons).
    pub rebuild_graph: bool,
    /// Whether a person was erased (what was counted from their events must be counted
    /// again without them).
    pub erased: bool,
}

type Listener = Box<dyn Fn(&Committed) + Send + Sync>;

/// What to gather about a person.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonQuery {
    /// Only events with a sequence number above this (those after the loaded model's
    /// training data; 0 for all).
    pub after_seq: u64,
    /// What was shown since this time (seconds since the epoch); `None` for nothing.
    pub shown_since: Option<i64>,
}

/// What the store knows of one person, for serving.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LivePerson {
    /// The person in the live graph; `None` when no identifier asked is known to it.
    pub ids: Option<PersonIds>,
    /// The other persons the identifiers asked about belong to
    /// ([`crate::graph::LiveGraph::also_named`]): nothing any of them bought is offered.
    pub also: Vec<PersonIds>,
    /// The identifiers asked about, the person's and those of [`LivePerson::also`] that
    /// belong to erased persons, with the time of erasure: no trained vector is to be used for
    /// them.
    pub erased: Vec<(Identifier, i64)>,
    /// The newest events filed under the person's identifiers, after `after_seq`, oldest
    /// first (at most [`StoreOptions::recent_events`]).
    pub recent: Vec<EventRecord>,
    /// Per item, the person's purchases and returns after `after_seq` (ledger entries in
    /// sequence order); all of them for a person who withholds personalisation (exports
    /// leave them out, so a model trained on one never learned what they bought).
    pub consumed: Vec<(String, Vec<ConsumedEntry>)>,
    /// The same for each of [`LivePerson::also`], apart: what they bought is not offered
    /// either, and one person's return does not cancel another's purchase.
    pub also_consumed: Vec<Vec<(String, Vec<ConsumedEntry>)>>,
    /// Consent per purpose: the most restrictive of the person's identifiers' latest choices,
    /// else the default.
    pub consent: Purposes,
    /// What was shown to the person since `shown_since`, oldest first (the newest
    /// [`MAX_SHOWN`] per identifier, and those still waiting to be written).
    pub shown: Vec<Impression>,
}

impl LivePerson {
    /// Whether the person allows `purpose`.
    pub fn allows(&self, purpose: &str) -> bool {
        self.consent.get(purpose).copied().unwrap_or(true)
    }
}

/// Ledgers by item, each in sequence order.
fn in_order(ledgers: BTreeMap<String, Vec<ConsumedEntry>>) -> Vec<(String, Vec<ConsumedEntry>)> {
    ledgers
        .into_iter()
        .map(|(item, mut entries)| {
            entries.sort_by_key(|e| e.seq);
            (item, entries)
        })
        .collect()
}

/// Consent per purpose from the latest choices of a person's identifiers: a purpose any of
/// them refused is refused, one they allowed is allowed, others take the default.
fn effective_consent(default: &Purposes, recorded: &[ConsentRecord]) -> Purposes {
    let mut consent = default.clone();
    let named: BTreeSet<&String> = recorded.iter().flat_map(|r| r.purposes.keys()).collect();
    for purpose in named {
        let refused = recorded.iter().any(|r| r.purposes.get(purpose) == Some(&false));
        consent.insert(purpose.clone(), !refused);
    }
    consent
}

pub(crate) struct Shared {
    backend: Box<dyn Backend>,
    graph: RwLock<LiveGraph>,
    /// What the graph starts from: the loaded model's persons and rules.
    seed: RwLock<(Seed, IdentityRules)>,
    weights: RwLock<WeightConfig>,
    /// Served answers not yet committed, each marked once a commit has taken it: a person's
    /// next request sees them (read-your-writes) before they are on disk.
    pending: Mutex<Vec<Pending>>,
    /// How many times an erasure has taken waiting entries out of `pending` (counted under
    /// its lock, before the erasure commits): see [`Shared::read_with_pending`].
    pending_erasures: AtomicU64,
    /// Why the store takes no more writes: a commit whose outcome is unknown
    /// ([`Error::CommitUncertain`]). Set once, by the writer.
    broken: std::sync::OnceLock<String>,
    /// Held by the writer from before it commits a group whose identity graph is rebuilt
    /// after (an erasure, a reseed) until that is done, and by an export while it reads the
    /// graph: an export's snapshot never meets a graph still holding an erased person.
    rebuilding: Mutex<()>,
    listeners: RwLock<Vec<Listener>>,
    options: StoreOptions,
}

impl Shared {
    /// Rebuilds the identity graph from the seed and the stored identity log.
    fn rebuild_graph(&self) -> Result<()> {
        let (seed, rules) = self.seed.read().unwrap_or_else(PoisonError::into_inner).clone();
        let mut links = Vec::new();
        let mut erased = BTreeMap::new();
        self.backend.read(&mut |r| {
            links.clear();
            erased.clear();
            r.scan_links(&mut |link| {
                links.push(link);
                Ok(())
            })?;
            r.scan_erased(&mut |hash, e| {
                erased.insert(hash.to_string(), e.at);
                Ok(())
            })
        })?;
        let is_suppressed = |identifier: &Identifier| {
            let hash = record::suppression_hash(&identifier.key());
            erased.get(&hash).is_some_and(|&at| {
                graph::may_have_learned(&hash, at, seed.data_until, seed.erasures_known.as_ref())
            })
        };
        let graph = LiveGraph::build(rules, &seed, &links, &is_suppressed);
        *self.graph.write().unwrap_or_else(PoisonError::into_inner) = graph;
        Ok(())
    }

    fn notify(&self, committed: &Committed) {
        for listener in self.listeners.read().unwrap_or_else(PoisonError::into_inner).iter() {
            listener(committed);
        }
    }
}

/// The store; see the crate docs.
pub struct Store {
    shared: Arc<Shared>,
    sender: Option<SyncSender<Op>>,
    writer: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens (or creates) the embedded store in `dir`.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store> {
        Store::with_backend(Box::new(RedbBackend::open_in(dir)?), options)
    }

    /// The store over `backend`, its graph built from the stored identity log alone until
    /// [`Store::reseed`] gives it a model's persons.
    pub fn with_backend(backend: Box<dyn Backend>, options: StoreOptions) -> Result<Store> {
        let rules = IdentityRules::default();
        let shared = Arc::new(Shared {
            backend,
            graph: RwLock::new(LiveGraph::new(rules.clone())),
            seed: RwLock::new((Seed::default(), rules)),
            weights: RwLock::new(WeightConfig::default()),
            pending: Mutex::new(Vec::new()),
            pending_erasures: AtomicU64::new(0),
            broken: std::sync::OnceLock::new(),
            rebuilding: Mutex::new(()),
            listeners: RwLock::new(Vec::new()),
            options,
        });
        shared.rebuild_graph()?;
        let (sender, receiver) = sync_channel(shared.options.queue);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("omnirec-store-writer".into())
            .spawn(move || writer::run(writer_shared, receiver))
            .map_err(|e| Error::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Store { shared, sender: Some(sender), writer: Some(writer) })
    }

    /// Why the store takes no more writes, once a commit failed with an unknown outcome
    /// (readiness should say so: only a restart, which reopens the file, clears it).
    pub fn broken(&self) -> Option<&str> {
        self.shared.broken.get().map(String::as_str)
    }

    fn submit<T>(&self, op: impl FnOnce(SyncSender<Result<T>>) -> Op) -> Result<T> {
        let sender = self.sender.as_ref().ok_or(Error::WriterStopped)?;
        let (reply, answer) = sync_channel(1);
        sender.send(op(reply)).map_err(|_| Error::WriterStopped)?;
        answer.recv().map_err(|_| Error::WriterStopped)?
    }

    /// Starts the identity graph anew from a model's persons and identity rules, and weighs
    /// later events (which consume their item) by the model's weights. Blocks until done.
    pub fn reseed(&self, seed: Seed, rules: IdentityRules, weights: WeightConfig) -> Result<()> {
        *self.shared.weights.write().unwrap_or_else(PoisonError::into_inner) = weights;
        self.submit(|reply| Op::Reseed { seed: Box::new((seed, rules)), reply })
    }

    /// Appends events received at `at` and returns once the accepted ones are durable, with
    /// one answer per event, in order. Blocks the calling thread.
    pub fn ingest(&self, events: Vec<NewEvent>, at: i64) -> Result<Vec<Ingested>> {
        self.submit(|reply| Op::Ingest { events, at, reply })
    }

    /// Links two identifiers explicitly (an API call by `source`), under the rules.
    pub fn link(&self, a: Identifier, b: Identifier, source: &str, at: i64) -> Result<LinkAnswer> {
        self.submit(|reply| Op::Link { a, b, source: source.to_string(), at, reply })
    }

    /// Separates two identifiers of one person for good; each side keeps the events filed
    /// under its own identifiers.
    pub fn unlink(&self, a: Identifier, b: Identifier, source: &str, at: i64) -> Result<UnlinkAnswer> {
        self.submit(|reply| Op::Unlink { a, b, source: source.to_string(), at, reply })
    }

    /// Sets consent for the purposes named (others keep theirs) for every identifier of the
    /// person of `identifier`, and records the change as an event. Returns the consent now
    /// set for `identifier`.
    pub fn set_consent(
        &self,
        identifier: Identifier,
        purposes: Purposes,
        source: &str,
        at: i64,
    ) -> Result<Purposes> {
        self.submit(|reply| Op::Consent { identifier, purposes, source: source.to_string(), at, reply })
    }

    /// Erases the person of `identifier` (and the identifiers in `also`: those the loaded
    /// model links to them): their events, consent, impressions and identity log entries are
    /// deleted, their identifiers go on the suppression list. `None` when the store knows no
    /// such person.
    pub fn erase(
        &self,
        identifier: Identifier,
        also: Vec<Identifier>,
        source: &str,
        at: i64,
    ) -> Result<Option<Erasure>> {
        self.submit(|reply| Op::Erase { identifier, also, source: source.to_string(), at, reply })
    }

    /// Applies catalog changes, durably; one outcome per change.
    pub fn change_items(&self, changes: Vec<ItemChange>, at: i64) -> Result<Vec<ItemOutcome>> {
        self.submit(|reply| Op::Items { changes, at, reply })
    }

    /// Records what was served, without waiting: the person's next request sees it at once,
    /// and it is on disk with the next commit, within [`writer`]'s flush interval (200 ms). A
    /// crash can lose that much of it: frequency caps are a courtesy, never worth a sync per
    /// answer. Served under an experiment's variant (`tag`), it is an exposure too, and the
    /// person's assignment is recorded under `impression.person` if none is yet (the
    /// assignment itself is derived again from the same hash after such a loss, so only a
    /// merge within those 200 ms could change a variant).
    pub fn record_served(&self, impression: Impression, tag: Option<ExposureTag>) {
        let pending = Pending { shown: impression, tag, taken: false };
        self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).push(pending);
    }

    /// Calls `listener` after every commit with what it stored (on the writer thread: keep it
    /// short).
    pub fn subscribe(&self, listener: impl Fn(&Committed) + Send + Sync + 'static) {
        self.shared.listeners.write().unwrap_or_else(PoisonError::into_inner).push(Box::new(listener));
    }

    /// The store's identity.
    pub fn store_id(&self) -> &str {
        self.shared.backend.store_id()
    }

    /// Where the data is, for messages.
    pub fn describe(&self) -> String {
        self.shared.backend.describe()
    }

    /// The sequence number the next record gets: every stored record's is below it.
    pub fn next_seq(&self) -> Result<u64> {
        let mut next = 0;
        self.shared.backend.read(&mut |r| {
            next = r.next_seq()?;
            Ok(())
        })?;
        Ok(next)
    }

    /// The live identity graph, read-locked: the person of `identifiers`.
    pub fn person_ids(&self, identifiers: &[Identifier]) -> Option<PersonIds> {
        self.shared.graph.read().unwrap_or_else(PoisonError::into_inner).person(identifiers)
    }

    /// Whether `identifier` is a placeholder under the rules in force.
    pub fn is_placeholder(&self, identifier: &Identifier) -> bool {
        self.shared.graph.read().unwrap_or_else(PoisonError::into_inner).is_placeholder(identifier)
    }

    /// The consent in force for the person `ids` (the most restrictive of their identifiers'
    /// latest choices, else the default), without the rest of [`Store::person`].
    pub fn consent(&self, ids: &PersonIds) -> Result<Purposes> {
        let mut recorded: Vec<ConsentRecord> = Vec::new();
        self.shared.backend.read(&mut |r| {
            recorded.clear();
            for identifier in &ids.identifiers {
                recorded.extend(r.consent(&identifier.key())?);
            }
            Ok(())
        })?;
        Ok(effective_consent(&self.shared.options.consent_default, &recorded))
    }

    /// What the store knows of the person behind `identifiers`; see [`LivePerson`].
    pub fn person(&self, identifiers: &[Identifier], query: PersonQuery) -> Result<LivePerson> {
        let (ids, also) = {
            let graph = self.shared.graph.read().unwrap_or_else(PoisonError::into_inner);
            let ids = graph.person(identifiers);
            let also = graph.also_named(identifiers, ids.as_ref());
            (ids, also)
        };
        let mut keys: BTreeSet<String> = identifiers.iter().map(Identifier::key).collect();
        let mut all: Vec<Identifier> = identifiers.to_vec();
        if let Some(ids) = &ids {
            keys.extend(ids.identifiers.iter().map(Identifier::key));
            all.extend(ids.identifiers.iter().cloned());
        }
        all.extend(also.iter().flat_map(|other| other.identifiers.iter().cloned()));
        all.sort();
        all.dedup();
        let recent_events = self.shared.options.recent_events;
        let mut person = LivePerson { ids: ids.clone(), also: also.clone(), ..LivePerson::default() };
        let default = &self.shared.options.consent_default;
        // Answers served and not yet committed, copied before the store is read (one
        // committed in between is in both, kept once), read again if an erasure took some.
        let copy = |pending: &[Pending]| -> Vec<Impression> {
            let Some(since) = query.shown_since else { return Vec::new() };
            let theirs = pending.iter().map(|p| &p.shown);
            theirs.filter(|p| p.at >= since && keys.contains(&p.person)).cloned().collect()
        };
        let waiting = self.shared.read_with_pending(copy, |waiting| {
            self.shared.backend.read(&mut |r| {
                person.erased.clear();
                person.recent.clear();
                person.consumed.clear();
                person.also_consumed.clear();
                person.shown.clear();
                person.consent = default.clone();
                for identifier in &all {
                    if let Some(erased) = r.erased(&record::suppression_hash(&identifier.key()))? {
                        person.erased.push((identifier.clone(), erased.at));
                    }
                }
                let Some(ids) = &ids else { return Ok(()) };
                let consent_of = |identifiers: &[Identifier]| -> Result<Purposes> {
                    let mut recorded: Vec<ConsentRecord> = Vec::new();
                    for identifier in identifiers {
                        recorded.extend(r.consent(&identifier.key())?);
                    }
                    Ok(effective_consent(default, &recorded))
                };
                person.consent = consent_of(&ids.identifiers)?;
                // A person who withholds personalisation is left out of exports, so a model
                // trained since knows nothing they bought: their whole ledger counts.
                let ledger_after = if person.allows(PERSONALIZATION) { query.after_seq } else { 0 };
                let mut seqs: Vec<u64> = Vec::new();
                let read_ledger = |ledgers: &mut BTreeMap<String, Vec<ConsumedEntry>>,
                                   key: &str,
                                   after: u64|
                 -> Result<()> {
                    for (item, entries) in r.consumed(key)? {
                        let after: Vec<ConsumedEntry> =
                            entries.into_iter().filter(|e| e.seq > after).collect();
                        if !after.is_empty() {
                            ledgers.entry(item).or_default().extend(after);
                        }
                    }
                    Ok(())
                };
                let mut ledgers: BTreeMap<String, Vec<ConsumedEntry>> = BTreeMap::new();
                for identifier in &ids.identifiers {
                    let key = identifier.key();
                    seqs.extend(r.events_of_anchor(&key, query.after_seq, recent_events)?);
                    read_ledger(&mut ledgers, &key, ledger_after)?;
                    if let Some(since) = query.shown_since {
                        person.shown.extend(r.impressions(&key, since, MAX_SHOWN)?);
                    }
                }
                // The other persons the request names (a guest's cookie beside the account it
                // logs into): what they bought is not offered either, whoever answers.
                for other in &also {
                    let allows =
                        consent_of(&other.identifiers)?.get(PERSONALIZATION).copied().unwrap_or(true);
                    let after = if allows { query.after_seq } else { 0 };
                    let mut theirs = BTreeMap::new();
                    for identifier in &other.identifiers {
                        read_ledger(&mut theirs, &identifier.key(), after)?;
                    }
                    person.also_consumed.push(in_order(theirs));
                }
                seqs.sort_unstable();
                seqs.dedup();
                let newest = &seqs[seqs.len().saturating_sub(recent_events)..];
                for &seq in newest {
                    if let Some(event) = r.event(seq)? {
                        person.recent.push(event);
                    }
                }
                person.consumed = in_order(ledgers);
                Ok(())
            })?;
            Ok(waiting)
        })?;
        if !waiting.is_empty() {
            let known: BTreeSet<String> = person.shown.iter().map(|s| s.id.clone()).collect();
            person.shown.extend(waiting.into_iter().filter(|p| !known.contains(&p.id)));
            person.shown.sort_by_key(|s| s.at);
        }
        Ok(person)
    }

    /// Every event filed under the person's identifiers after `after_seq`, in sequence order,
    /// at most `limit` (the newest); and how many there are in all.
    pub fn person_events(
        &self,
        ids: &PersonIds,
        after_seq: u64,
        limit: usize,
    ) -> Result<(u64, Vec<EventRecord>)> {
        let mut total = 0;
        let mut events = Vec::new();
        self.shared.backend.read(&mut |r| {
            total = 0;
            events.clear();
            let mut seqs = Vec::new();
            for identifier in &ids.identifiers {
                let key = identifier.key();
                total += r.count_of_anchor(&key, after_seq)?;
                seqs.extend(r.events_of_anchor(&key, after_seq, limit)?);
            }
            seqs.sort_unstable();
            for &seq in &seqs[seqs.len().saturating_sub(limit)..] {
                if let Some(event) = r.event(seq)? {
                    events.push(event);
                }
            }
            Ok(())
        })?;
        Ok((total, events))
    }

    /// The identity log entries of the person `ids`, in order: how their identifiers came
    /// together (and were separated).
    pub fn provenance(&self, ids: &PersonIds) -> Result<Vec<LinkRecord>> {
        let seqs =
            self.shared.graph.read().unwrap_or_else(PoisonError::into_inner).links_of(&ids.identifiers);
        self.links(&seqs)
    }

    /// The identity log entries `seqs`, in order.
    pub fn links(&self, seqs: &[u64]) -> Result<Vec<LinkRecord>> {
        let mut links = Vec::new();
        self.shared.backend.read(&mut |r| {
            links.clear();
            for &seq in seqs {
                links.extend(r.link(seq)?);
            }
            Ok(())
        })?;
        Ok(links)
    }

    /// Every catalog change, by item id.
    pub fn item_changes(&self) -> Result<Vec<ItemRecord>> {
        let mut items = Vec::new();
        self.shared.backend.read(&mut |r| {
            items.clear();
            r.scan_items(&mut |item| {
                items.push(item);
                Ok(())
            })
        })?;
        Ok(items)
    }

    /// Visits every stored event after `after_seq`, in order, in one snapshot.
    pub fn scan_events(
        &self,
        after_seq: u64,
        visit: &mut dyn FnMut(EventRecord) -> Result<()>,
    ) -> Result<()> {
        self.shared.backend.read(&mut |r| {
            r.scan_events(after_seq, &mut |event| {
                visit(event)?;
                Ok(true)
            })
        })
    }

    /// A served answer, by its recommendation id (committed or pending).
    pub fn served(&self, recommendation_id: &str) -> Result<Option<Impression>> {
        let copy = |pending: &[Pending]| {
            pending.iter().find(|p| p.shown.id == recommendation_id).map(|p| p.shown.clone())
        };
        self.shared.read_with_pending(copy, |waiting| {
            let mut served = None;
            self.shared.backend.read(&mut |r| {
                served = r.served(recommendation_id)?;
                Ok(())
            })?;
            Ok(served.or(waiting))
        })
    }
}

impl Drop for Store {
    /// Stops taking changes, lets the writer finish what it holds, and waits for it.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests;

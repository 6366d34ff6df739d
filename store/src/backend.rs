//! The storage interface: what a backend of the store must do. The embedded backend is one
//! redb file ([`crate::RedbBackend`]); a shared PostgreSQL backend for several server
//! replicas will implement the same traits, one table per record type.
//!
//! Everything the store does is a transaction through [`Backend::read`] (a consistent
//! snapshot) or [`Backend::write`] (all or nothing, synced before it returns when asked). The
//! store's one writer ([`crate::Store`]) runs every write, so a backend never sees two write
//! transactions at once from one process; with several replicas, the backend's own
//! transactions (PostgreSQL: serializable, or one advisory lock for the writer) keep them
//! apart. Records are plain data ([`crate::record`]); sequence numbers come from the
//! backend's counter ([`Reader::next_seq`]), so they are unique across writers and never
//! reused, even after erasure deletes records.

use crate::error::Result;
use crate::record::{
    Assignment, ConsentRecord, ConsumedEntry, Erased, EventRecord, ExperimentRecord, Exposure, Impression,
    ItemRecord, LinkRecord, ModelRecord,
};

/// Reads, in one transaction.
pub trait Reader {
    /// The sequence number the next record will get.
    fn next_seq(&self) -> Result<u64>;
    /// The event with sequence number `seq`.
    fn event(&self, seq: u64) -> Result<Option<EventRecord>>;
    /// The sequence number of the event with this id, if stored.
    fn event_seq(&self, event_id: &str) -> Result<Option<u64>>;
    /// Sequence numbers of every event that carries identifier `key`, ascending.
    fn events_with(&self, key: &str) -> Result<Vec<u64>>;
    /// Sequence numbers of the events filed under anchor `key` with a sequence number above
    /// `after`: the newest `newest` of them, ascending.
    fn events_of_anchor(&self, key: &str, after: u64, newest: usize) -> Result<Vec<u64>>;
    /// How many events are filed under anchor `key` with a sequence number above `after`.
    fn count_of_anchor(&self, key: &str, after: u64) -> Result<u64>;
    /// Every event with a sequence number above `after`, in order, until `visit` says stop
    /// (returns `false`).
    fn scan_events(&self, after: u64, visit: &mut dyn FnMut(EventRecord) -> Result<bool>) -> Result<()>;
    /// The consumed ledger of anchor `key`: per item, its purchases and returns.
    fn consumed(&self, key: &str) -> Result<Vec<(String, Vec<ConsumedEntry>)>>;
    /// The ledger of one anchor and item.
    fn consumed_item(&self, key: &str, item_id: &str) -> Result<Vec<ConsumedEntry>>;
    /// The consent last set for identifier `key`.
    fn consent(&self, key: &str) -> Result<Option<ConsentRecord>>;
    /// Whether the identifier with this suppression hash belongs to an erased person.
    fn erased(&self, hash: &str) -> Result<Option<Erased>>;
    /// Every suppression entry (hash, erasure).
    fn scan_erased(&self, visit: &mut dyn FnMut(&str, Erased) -> Result<()>) -> Result<()>;
    /// Every identity log entry, in order.
    fn scan_links(&self, visit: &mut dyn FnMut(LinkRecord) -> Result<()>) -> Result<()>;
    /// One identity log entry.
    fn link(&self, seq: u64) -> Result<Option<LinkRecord>>;
    /// The catalog change of one item.
    fn item(&self, item_id: &str) -> Result<Option<ItemRecord>>;
    /// Every catalog change, by item id.
    fn scan_items(&self, visit: &mut dyn FnMut(ItemRecord) -> Result<()>) -> Result<()>;
    /// What was shown to the person key `key` at or after `since`, oldest first: the newest
    /// `newest` of them.
    fn impressions(&self, key: &str, since: i64, newest: usize) -> Result<Vec<Impression>>;
    /// A served recommendation, by its id.
    fn served(&self, recommendation_id: &str) -> Result<Option<Impression>>;
    /// Every experiment, by name.
    fn scan_experiments(&self, visit: &mut dyn FnMut(ExperimentRecord) -> Result<()>) -> Result<()>;
    /// Every exposure of `experiment`, oldest first.
    fn scan_exposures(&self, experiment: &str, visit: &mut dyn FnMut(Exposure) -> Result<()>) -> Result<()>;
    /// Whether an exposure `id` of `experiment` is stored at time `at`, or under the person
    /// key `person` at any time (a retry reported later is the same exposure).
    fn has_exposure(&self, experiment: &str, at: i64, id: &str, person: &str) -> Result<bool>;
    /// The assignment recorded under identifier key `key` in `experiment`.
    fn assignment(&self, key: &str, experiment: &str) -> Result<Option<Assignment>>;
    /// Every model version of the registry, by version.
    fn scan_models(&self, visit: &mut dyn FnMut(ModelRecord) -> Result<()>) -> Result<()>;
}

/// Writes, in one transaction; reads see the transaction's own writes.
pub trait Writer: Reader {
    /// Sets the counter [`Reader::next_seq`] reads.
    fn set_next_seq(&mut self, next: u64) -> Result<()>;
    /// Stores an event and files it under its id, its anchor and each of its other
    /// identifiers.
    fn put_event(&mut self, event: &EventRecord) -> Result<()>;
    /// Removes an event and every index entry of it.
    fn delete_event(&mut self, event: &EventRecord) -> Result<()>;
    /// Replaces the ledger of one anchor and item (an empty ledger removes it).
    fn put_consumed(&mut self, key: &str, item_id: &str, entries: &[ConsumedEntry]) -> Result<()>;
    /// Removes every ledger of anchor `key`.
    fn delete_consumed(&mut self, key: &str) -> Result<()>;
    /// Sets the consent of identifier `key`.
    fn put_consent(&mut self, key: &str, consent: &ConsentRecord) -> Result<()>;
    /// Removes the consent of identifier `key`.
    fn delete_consent(&mut self, key: &str) -> Result<()>;
    /// Adds a suppression entry.
    fn put_erased(&mut self, hash: &str, erased: Erased) -> Result<()>;
    /// Appends an identity log entry.
    fn put_link(&mut self, link: &LinkRecord) -> Result<()>;
    /// Removes an identity log entry (erasure only: the log is otherwise append-only).
    fn delete_link(&mut self, seq: u64) -> Result<()>;
    /// Records a catalog change.
    fn put_item(&mut self, item: &ItemRecord) -> Result<()>;
    /// Records what was shown, under the person key it names (and, for served answers, under
    /// its recommendation id).
    fn put_impression(&mut self, impression: &Impression, is_served: bool) -> Result<()>;
    /// Removes everything shown under person key `key`; returns how many entries went.
    fn delete_impressions(&mut self, key: &str) -> Result<u64>;
    /// Creates or replaces an experiment.
    fn put_experiment(&mut self, experiment: &ExperimentRecord) -> Result<()>;
    /// Stores an exposure (and files it under its person key).
    fn put_exposure(&mut self, exposure: &Exposure) -> Result<()>;
    /// Records an assignment under identifier key `key`.
    fn put_assignment(&mut self, key: &str, experiment: &str, assignment: &Assignment) -> Result<()>;
    /// Removes every exposure and assignment filed under identifier key `key`; returns how
    /// many exposures went.
    fn delete_exposures(&mut self, key: &str) -> Result<u64>;
    /// Creates or replaces a model version's registry entry.
    fn put_model(&mut self, model: &ModelRecord) -> Result<()>;
}

/// A storage backend; see the module docs.
pub trait Backend: Send + Sync + 'static {
    /// Runs `work` in one read transaction.
    fn read(&self, work: &mut dyn FnMut(&dyn Reader) -> Result<()>) -> Result<()>;
    /// Runs `work` in one write transaction and commits it; when `durable`, the commit is on
    /// disk (synced) before this returns. If `work` fails nothing of it is kept.
    fn write(&self, durable: bool, work: &mut dyn FnMut(&mut dyn Writer) -> Result<()>) -> Result<()>;
    /// The store's identity: a random id made when it was created, so an artifact trained on
    /// an export knows which store its watermark counts in.
    fn store_id(&self) -> &str;
    /// Where the data is, for messages.
    fn describe(&self) -> String;
}

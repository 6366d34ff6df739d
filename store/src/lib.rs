//! omnirec's persistent state: the durable event log every channel writes to, and the
//! identifier links those events carry. It knows nothing of HTTP and nothing of models.
//!
//! [`EventLog`] is the interface; [`RedbLog`] the embedded backend (one redb file in the
//! server's data directory, so the README's two commands need no other service). The
//! interface is what a shared PostgreSQL backend will implement for several server replicas:
//! every method is one transaction, [`EventLog::append`] takes many requests' batches at once
//! so that one commit (one disk sync) covers them all, and nothing in it assumes a single
//! process (sequence numbers are the backend's, event ids are unique for ever).
//!
//! [`GroupCommit`] turns concurrent callers into such multi-batch appends: one writer thread
//! takes whatever requests are waiting, appends them in one transaction, syncs once and then
//! answers each. An event is acknowledged only after the sync that made it durable.
//!
//! [`live::person`] gathers one person's live events: the stored events reachable from the
//! identifiers a channel asks with, resolved into persons by the trainer's own rules
//! ([`datasets::identity::resolve`], with its merge limits), so training and serving never
//! disagree on who is who.

mod error;
mod group;
pub mod live;
mod record;
mod redb_log;

pub use error::{Error, Result};
pub use group::GroupCommit;
pub use record::{Appended, StoredEvent};
pub use redb_log::RedbLog;

/// The durable event log. Implementations are shared by every request thread.
pub trait EventLog: Send + Sync {
    /// Appends every batch in one transaction that is durable (synced) before this returns,
    /// and answers each event of each batch, in order: `Accepted` with its new sequence
    /// number, `Duplicate` when its `event_id` is stored with the same content (nothing
    /// changes, however long ago it was stored), `Conflict` when it is stored with other
    /// content (nothing changes either). Events of one call are checked against each other
    /// too. On an error nothing of the call is stored.
    fn append(&self, batches: &[Vec<StoredEvent>]) -> Result<Vec<Vec<Appended>>>;

    /// The stored events filed under the identifier `key` (`kind:value`, as
    /// [`datasets::schema::Identifier::key`] writes it), oldest first, at most `limit`
    /// (the newest ones when there are more).
    fn events_of(&self, key: &str, limit: usize) -> Result<Vec<(u64, StoredEvent)>>;

    /// How many events are stored.
    fn len(&self) -> Result<u64>;

    /// Whether no event is stored.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

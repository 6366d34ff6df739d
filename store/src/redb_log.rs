//! The embedded backend: one redb file.
//!
//! Tables: `events` (sequence number → the record as JSON), `event_ids` (event id →
//! sequence number: de-duplication for ever), `by_identifier` (identifier key → sequence
//! numbers: the links between identifiers are the events that carry several), `meta`
//! (`format`). Every append is one write transaction committed with redb's default
//! `Durability::Immediate`: `commit` returns after the file is synced.
//!
//! Erased data (to come with erasure) is removed from the tables; its bytes may survive in
//! free pages until they are reused or the file is compacted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use crate::EventLog;
use crate::error::{Error, Result};
use crate::record::{Appended, StoredEvent};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const EVENT_IDS: TableDefinition<&str, u64> = TableDefinition::new("event_ids");
const BY_IDENTIFIER: MultimapTableDefinition<&str, u64> = MultimapTableDefinition::new("by_identifier");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The layout version this code writes and reads.
const FORMAT: u64 = 1;

/// The event log in one redb file.
pub struct RedbLog {
    db: Database,
    path: PathBuf,
}

impl RedbLog {
    /// The file name inside a data directory.
    pub const FILE_NAME: &'static str = "store.redb";

    /// Opens the log in `dir`, creating it when absent. A file that is not an omnirec store
    /// (another program's, truncated, damaged, or of a newer layout) is an error naming it;
    /// it is never replaced.
    pub fn open_in(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE_NAME);
        let open_error = |reason: String| Error::Open { path: path.clone(), reason };
        let existed = path.exists();
        let db = Database::builder().create(&path).map_err(|e| open_error(e.to_string()))?;
        let log = RedbLog { db, path: path.clone() };
        let format = log.format().map_err(|e| open_error(e.to_string()))?;
        match format {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(open_error(format!("layout version {other}; this build reads {FORMAT}")));
            }
            None if existed && log.has_tables().map_err(|e| open_error(e.to_string()))? => {
                return Err(open_error("a redb file without omnirec's layout".into()));
            }
            None => log.initialise().map_err(|e| open_error(e.to_string()))?,
        }
        Ok(log)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> Result<Option<u64>> {
        let read = self.db.begin_read()?;
        match read.open_table(META) {
            Ok(meta) => Ok(meta.get("format")?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn has_tables(&self) -> Result<bool> {
        let read = self.db.begin_read()?;
        Ok(read.list_tables()?.next().is_some() || read.list_multimap_tables()?.next().is_some())
    }

    fn initialise(&self) -> Result<()> {
        let write = self.db.begin_write()?;
        {
            write.open_table(EVENTS)?;
            write.open_table(EVENT_IDS)?;
            write.open_multimap_table(BY_IDENTIFIER)?;
            write.open_table(META)?.insert("format", FORMAT)?;
        }
        write.commit()?;
        Ok(())
    }
}

fn decode(seq: u64, bytes: &[u8]) -> Result<StoredEvent> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt { seq, reason: e.to_string() })
}

impl EventLog for RedbLog {
    fn append(&self, batches: &[Vec<StoredEvent>]) -> Result<Vec<Vec<Appended>>> {
        let write = self.db.begin_write()?;
        let mut answers = Vec::with_capacity(batches.len());
        {
            let mut events = write.open_table(EVENTS)?;
            let mut ids = write.open_table(EVENT_IDS)?;
            let mut by_identifier = write.open_multimap_table(BY_IDENTIFIER)?;
            let mut next = events.last()?.map_or(1, |(seq, _)| seq.value() + 1);
            // Events of this call, for duplicates inside it.
            let mut fresh: HashMap<&str, (u64, &StoredEvent)> = HashMap::new();
            for batch in batches {
                let mut answer = Vec::with_capacity(batch.len());
                for event in batch {
                    let stored = match fresh.get(event.event_id.as_str()) {
                        Some(&(seq, earlier)) => Some((seq, earlier.clone())),
                        None => match ids.get(event.event_id.as_str())? {
                            Some(seq) => {
                                let seq = seq.value();
                                let bytes = events.get(seq)?.ok_or_else(|| Error::Corrupt {
                                    seq,
                                    reason: format!(
                                        "event id `{}` points to a missing event",
                                        event.event_id
                                    ),
                                })?;
                                Some((seq, decode(seq, bytes.value())?))
                            }
                            None => None,
                        },
                    };
                    if let Some((seq, earlier)) = stored {
                        answer.push(if earlier.same_content(event) {
                            Appended::Duplicate(seq)
                        } else {
                            Appended::Conflict(seq)
                        });
                        continue;
                    }
                    let bytes = serde_json::to_vec(event).map_err(|e| Error::Storage(e.to_string()))?;
                    events.insert(next, bytes.as_slice())?;
                    ids.insert(event.event_id.as_str(), next)?;
                    for key in &event.identifiers {
                        by_identifier.insert(key.as_str(), next)?;
                    }
                    fresh.insert(event.event_id.as_str(), (next, event));
                    answer.push(Appended::Accepted(next));
                    next += 1;
                }
                answers.push(answer);
            }
        }
        // Durability::Immediate (redb's default): synced before commit returns.
        write.commit()?;
        Ok(answers)
    }

    fn events_of(&self, key: &str, limit: usize) -> Result<Vec<(u64, StoredEvent)>> {
        let read = self.db.begin_read()?;
        let by_identifier = read.open_multimap_table(BY_IDENTIFIER)?;
        let events = read.open_table(EVENTS)?;
        let seqs: Vec<u64> =
            by_identifier.get(key)?.map(|s| s.map(|s| s.value())).collect::<Result<_, _>>()?;
        let newest = &seqs[seqs.len().saturating_sub(limit)..];
        newest
            .iter()
            .map(|&seq| {
                let bytes = events.get(seq)?.ok_or_else(|| Error::Corrupt {
                    seq,
                    reason: format!("filed under `{key}` but missing"),
                })?;
                Ok((seq, decode(seq, bytes.value())?))
            })
            .collect()
    }

    fn len(&self) -> Result<u64> {
        let read = self.db.begin_read()?;
        Ok(read.open_table(EVENTS)?.len()?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn event(id: &str, keys: &[&str], item: &str) -> StoredEvent {
        StoredEvent {
            event_id: id.into(),
            identifiers: keys.iter().map(|k| k.to_string()).collect(),
            channel: "web".into(),
            event_type: "purchase".into(),
            item_id: Some(item.into()),
            timestamp: 1_700_000_000,
            value: None,
            recommendation_id: None,
            store_id: None,
            received_at: 1,
        }
    }

    #[test]
    fn appends_once_for_ever_and_names_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let log = RedbLog::open_in(dir.path()).unwrap();
        let a = event("a", &["cookie_id:c1"], "i1");
        let b = event("b", &["cookie_id:c1", "email:x"], "i2");
        let answers = log.append(&[vec![a.clone(), b.clone()], vec![a.clone()]]).unwrap();
        assert_eq!(
            answers,
            [vec![Appended::Accepted(1), Appended::Accepted(2)], vec![Appended::Duplicate(1)]]
        );
        drop(log);
        // After a restart: the same id with the same content is a duplicate, with other
        // content a conflict; neither changes anything.
        let log = RedbLog::open_in(dir.path()).unwrap();
        let retry = StoredEvent { received_at: 50, ..a.clone() };
        let changed = StoredEvent { item_id: Some("i9".into()), ..a.clone() };
        let answers = log.append(&[vec![retry, changed, event("c", &["email:x"], "i3")]]).unwrap();
        assert_eq!(answers, [vec![Appended::Duplicate(1), Appended::Conflict(1), Appended::Accepted(3)]]);
        assert_eq!(log.len().unwrap(), 3);
        let of_email: Vec<u64> = log.events_of("email:x", 10).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(of_email, [2, 3]);
        assert_eq!(log.events_of("email:x", 1).unwrap()[0].1.event_id, "c");
        assert_eq!(log.events_of("cookie_id:c1", 10).unwrap()[0].1, a);
        assert!(log.events_of("phone:none", 10).unwrap().is_empty());
    }

    #[test]
    fn foreign_or_damaged_files_are_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RedbLog::FILE_NAME);
        std::fs::write(&path, b"not a database at all, just some text").unwrap();
        let err = RedbLog::open_in(dir.path()).err().unwrap().to_string();
        assert!(err.starts_with(&format!("cannot open the store {}", path.display())), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a database at all, just some text");

        // Another program's redb file.
        std::fs::remove_file(&path).unwrap();
        let db = Database::create(&path).unwrap();
        let write = db.begin_write().unwrap();
        write.open_table(TableDefinition::<u64, u64>::new("theirs")).unwrap().insert(1, 2).unwrap();
        write.commit().unwrap();
        drop(db);
        let err = RedbLog::open_in(dir.path()).err().unwrap().to_string();
        assert!(err.contains("without omnirec's layout"), "{err}");

        // A truncated store.
        std::fs::remove_file(&path).unwrap();
        let log = RedbLog::open_in(dir.path()).unwrap();
        log.append(&[vec![event("a", &["cookie_id:c1"], "i1")]]).unwrap();
        drop(log);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 3).unwrap();
        let err = RedbLog::open_in(dir.path()).err().unwrap().to_string();
        assert!(err.starts_with("cannot open the store"), "{err}");
    }
}

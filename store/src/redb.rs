//! The embedded backend: one redb file, `store.redb`, in the server's data directory.
//!
//! Tables (records bincode-encoded): `meta` (layout version, store id, next sequence number),
//! `events` (sequence → event), `event_ids` (event id → sequence: de-duplication for ever),
//! `by_anchor` and `by_identifier` ((key, sequence) → nothing: the events filed under an
//! anchor, and under each of their other identifiers), `consumed` ((anchor, item) → ledger),
//! `consent` (key → consent), `erased` (suppression hash → erasure), `links` (sequence →
//! identity log entry), `catalog` (item id → change), `impressions` ((person key, time, id) →
//! what was shown) and `served` (recommendation id → what was shown); for experiments and the
//! model registry: `experiments` (name → definition), `exposures` ((experiment, time, id) →
//! exposure), `exposed` ((person key, experiment, id) → time: the exposures filed under a
//! person, for erasure), `assignments` ((person key, experiment) → assignment) and `models`
//! (version → registry entry). Those five were added to layout 2 without changing it: a store
//! without them gets them, empty, when opened.
//!
//! A durable write commits with redb's `Durability::Immediate`: `commit` returns after the
//! file is synced. Erasure removes rows; the bytes they used stay in the file's free pages
//! until redb reuses those pages for new writes, or until the file is compacted
//! ([`RedbBackend::compact`], offline: `server compact --data-dir DIR`).

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, Reader, Writer};
use crate::error::{Error, Result};
use crate::record::{
    Assignment, ConsentRecord, ConsumedEntry, Erased, EventRecord, ExperimentRecord, Exposure, Impression,
    ItemRecord, LinkRecord, ModelRecord,
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const EVENT_IDS: TableDefinition<&str, u64> = TableDefinition::new("event_ids");
const BY_IDENTIFIER: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_identifier");
const BY_ANCHOR: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_anchor");
const CONSUMED: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("consumed");
const CONSENT: TableDefinition<&str, &[u8]> = TableDefinition::new("consent");
const ERASED: TableDefinition<&str, i64> = TableDefinition::new("erased");
const LINKS: TableDefinition<u64, &[u8]> = TableDefinition::new("links");
const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");
const IMPRESSIONS: TableDefinition<(&str, i64, &str), &[u8]> = TableDefinition::new("impressions");
const SERVED: TableDefinition<&str, &[u8]> = TableDefinition::new("served");
const EXPERIMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("experiments");
const EXPOSURES: TableDefinition<(&str, i64, &str), &[u8]> = TableDefinition::new("exposures");
const EXPOSED: TableDefinition<(&str, &str, &str), i64> = TableDefinition::new("exposed");
const ASSIGNMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("assignments");
const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");

/// The layout version this code writes and reads.
const FORMAT: u64 = 2;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Storage(e.to_string()))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| Error::Corrupt(format!("{what} is unreadable: {e}")))
}

/// The store in one redb file.
pub struct RedbBackend {
    db: Database,
    path: PathBuf,
    store_id: String,
}

impl RedbBackend {
    /// The file name inside a data directory.
    pub const FILE_NAME: &'static str = "store.redb";

    /// Opens the store in `dir`, creating it when absent. A file that is not an omnirec store
    /// (another program's, truncated, damaged, or of another layout) is an error naming it,
    /// and is never replaced.
    pub fn open_in(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE_NAME);
        let existed = path.metadata().is_ok_and(|m| m.len() > 0);
        let db = Database::builder().create(&path).map_err(|e| open_error(&path, e.to_string()))?;
        Self::init(db, path, existed)
    }

    /// Opens the store on a custom storage `backend` (tests wrap the file backend to watch
    /// every sync); `path` is only for messages.
    pub fn open_with(backend: impl StorageBackend, path: PathBuf, existed: bool) -> Result<Self> {
        let db =
            Database::builder().create_with_backend(backend).map_err(|e| open_error(&path, e.to_string()))?;
        Self::init(db, path, existed)
    }

    fn init(db: Database, path: PathBuf, existed: bool) -> Result<Self> {
        let fail = |e: Error| open_error(&path, e.to_string());
        let read_meta = || -> Result<(Option<u64>, bool)> {
            let read = db.begin_read()?;
            let has_tables =
                read.list_tables()?.next().is_some() || read.list_multimap_tables()?.next().is_some();
            let format = match read.open_table(META) {
                Ok(meta) => {
                    meta.get("format")?.and_then(|v| v.value().try_into().ok()).map(u64::from_le_bytes)
                }
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            Ok((format, has_tables))
        };
        let (format, has_tables) = read_meta().map_err(fail)?;
        match format {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(open_error(&path, format!("layout version {other}; this build reads {FORMAT}")));
            }
            None if existed && has_tables => {
                return Err(open_error(&path, "a redb file without omnirec's layout".into()));
            }
            None => {
                let write = db.begin_write().map_err(|e| fail(e.into()))?;
                let create = || -> Result<()> {
                    let mut meta = write.open_table(META)?;
                    meta.insert("format", FORMAT.to_le_bytes().as_slice())?;
                    let id = uuid::Uuid::new_v4().to_string();
                    meta.insert("store_id", id.as_bytes())?;
                    meta.insert("next_seq", 1u64.to_le_bytes().as_slice())?;
                    drop(meta);
                    write.open_table(EVENTS)?;
                    write.open_table(EVENT_IDS)?;
                    write.open_table(BY_IDENTIFIER)?;
                    write.open_table(BY_ANCHOR)?;
                    write.open_table(CONSUMED)?;
                    write.open_table(CONSENT)?;
                    write.open_table(ERASED)?;
                    write.open_table(LINKS)?;
                    write.open_table(CATALOG)?;
                    write.open_table(IMPRESSIONS)?;
                    write.open_table(SERVED)?;
                    Ok(())
                };
                create().map_err(fail)?;
                write.commit().map_err(|e| fail(e.into()))?;
            }
        }
        // The experiment and registry tables came after layout 2's first release.
        let ensure_lab = || -> Result<()> {
            let write = db.begin_write()?;
            write.open_table(EXPERIMENTS)?;
            write.open_table(EXPOSURES)?;
            write.open_table(EXPOSED)?;
            write.open_table(ASSIGNMENTS)?;
            write.open_table(MODELS)?;
            write.commit()?;
            Ok(())
        };
        ensure_lab().map_err(fail)?;
        let store_id = (|| -> Result<String> {
            let read = db.begin_read()?;
            let meta = read.open_table(META)?;
            let id = meta.get("store_id")?.ok_or_else(|| Error::Corrupt("the store id is missing".into()))?;
            String::from_utf8(id.value().to_vec())
                .map_err(|_| Error::Corrupt("the store id is not text".into()))
        })()
        .map_err(fail)?;
        Ok(RedbBackend { db, path, store_id })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the file without free pages, so the bytes of erased records are gone from it.
    /// Needs the store to itself: the server runs it only when stopped (`server compact`).
    pub fn compact(&mut self) -> Result<bool> {
        self.db.compact().map_err(|e| Error::Storage(format!("compacting {}: {e}", self.path.display())))
    }
}

fn open_error(path: &Path, reason: String) -> Error {
    Error::Open { path: path.to_path_buf(), reason }
}

/// The tables of one transaction, opened once.
/// The experiment and registry tables.
struct Lab<Ex, Xp, Xd, As, Mo> {
    experiments: Ex,
    exposures: Xp,
    exposed: Xd,
    assignments: As,
    models: Mo,
}

struct Tables<Me, Ev, Ei, Bi, Ba, Cu, Cs, Er, Li, Ca, Im, Se, La> {
    meta: Me,
    events: Ev,
    event_ids: Ei,
    by_identifier: Bi,
    by_anchor: Ba,
    consumed: Cu,
    consent: Cs,
    erased: Er,
    links: Li,
    catalog: Ca,
    impressions: Im,
    served: Se,
    lab: La,
}

macro_rules! open_tables {
    ($txn:expr) => {
        Tables {
            meta: $txn.open_table(META)?,
            events: $txn.open_table(EVENTS)?,
            event_ids: $txn.open_table(EVENT_IDS)?,
            by_identifier: $txn.open_table(BY_IDENTIFIER)?,
            by_anchor: $txn.open_table(BY_ANCHOR)?,
            consumed: $txn.open_table(CONSUMED)?,
            consent: $txn.open_table(CONSENT)?,
            erased: $txn.open_table(ERASED)?,
            links: $txn.open_table(LINKS)?,
            catalog: $txn.open_table(CATALOG)?,
            impressions: $txn.open_table(IMPRESSIONS)?,
            served: $txn.open_table(SERVED)?,
            lab: Lab {
                experiments: $txn.open_table(EXPERIMENTS)?,
                exposures: $txn.open_table(EXPOSURES)?,
                exposed: $txn.open_table(EXPOSED)?,
                assignments: $txn.open_table(ASSIGNMENTS)?,
                models: $txn.open_table(MODELS)?,
            },
        }
    };
}

/// Reads of the experiment and registry tables, whatever the transaction.
trait LabRead {
    fn scan_experiments(&self, visit: &mut dyn FnMut(ExperimentRecord) -> Result<()>) -> Result<()>;
    fn scan_exposures(&self, experiment: &str, visit: &mut dyn FnMut(Exposure) -> Result<()>) -> Result<()>;
    fn has_exposure(&self, experiment: &str, at: i64, id: &str, person: &str) -> Result<bool>;
    fn assignment(&self, key: &str, experiment: &str) -> Result<Option<Assignment>>;
    fn scan_models(&self, visit: &mut dyn FnMut(ModelRecord) -> Result<()>) -> Result<()>;
}

impl<Ex, Xp, Xd, As, Mo> LabRead for Lab<Ex, Xp, Xd, As, Mo>
where
    Ex: ReadableTable<&'static str, &'static [u8]>,
    Xp: ReadableTable<(&'static str, i64, &'static str), &'static [u8]>,
    Xd: ReadableTable<(&'static str, &'static str, &'static str), i64>,
    As: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    Mo: ReadableTable<&'static str, &'static [u8]>,
{
    fn scan_experiments(&self, visit: &mut dyn FnMut(ExperimentRecord) -> Result<()>) -> Result<()> {
        for entry in self.experiments.range::<&str>(..)? {
            let (name, bytes) = entry?;
            visit(decode(&format!("experiment {}", name.value()), bytes.value())?)?;
        }
        Ok(())
    }

    fn scan_exposures(&self, experiment: &str, visit: &mut dyn FnMut(Exposure) -> Result<()>) -> Result<()> {
        for entry in self.exposures.range((experiment, i64::MIN, "")..)? {
            let (key, bytes) = entry?;
            if key.value().0 != experiment {
                break;
            }
            visit(decode(&format!("an exposure of {experiment}"), bytes.value())?)?;
        }
        Ok(())
    }

    fn has_exposure(&self, experiment: &str, at: i64, id: &str, person: &str) -> Result<bool> {
        Ok(self.exposures.get((experiment, at, id))?.is_some()
            || self.exposed.get((person, experiment, id))?.is_some())
    }

    fn assignment(&self, key: &str, experiment: &str) -> Result<Option<Assignment>> {
        match self.assignments.get((key, experiment))? {
            Some(bytes) => {
                Ok(Some(decode(&format!("the assignment of {key} in {experiment}"), bytes.value())?))
            }
            None => Ok(None),
        }
    }

    fn scan_models(&self, visit: &mut dyn FnMut(ModelRecord) -> Result<()>) -> Result<()> {
        for entry in self.models.range::<&str>(..)? {
            let (version, bytes) = entry?;
            visit(decode(&format!("model {}", version.value()), bytes.value())?)?;
        }
        Ok(())
    }
}

impl<Me, Ev, Ei, Bi, Ba, Cu, Cs, Er, Li, Ca, Im, Se, La> Reader
    for Tables<Me, Ev, Ei, Bi, Ba, Cu, Cs, Er, Li, Ca, Im, Se, La>
where
    Me: ReadableTable<&'static str, &'static [u8]>,
    Ev: ReadableTable<u64, &'static [u8]>,
    Ei: ReadableTable<&'static str, u64>,
    Bi: ReadableTable<(&'static str, u64), ()>,
    Ba: ReadableTable<(&'static str, u64), ()>,
    Cu: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    Cs: ReadableTable<&'static str, &'static [u8]>,
    Er: ReadableTable<&'static str, i64>,
    Li: ReadableTable<u64, &'static [u8]>,
    Ca: ReadableTable<&'static str, &'static [u8]>,
    Im: ReadableTable<(&'static str, i64, &'static str), &'static [u8]>,
    Se: ReadableTable<&'static str, &'static [u8]>,
    La: LabRead,
{
    fn next_seq(&self) -> Result<u64> {
        let value = self
            .meta
            .get("next_seq")?
            .ok_or_else(|| Error::Corrupt("the sequence counter is missing".into()))?;
        let bytes: [u8; 8] = value
            .value()
            .try_into()
            .map_err(|_| Error::Corrupt("the sequence counter is not 8 bytes".into()))?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn event(&self, seq: u64) -> Result<Option<EventRecord>> {
        match self.events.get(seq)? {
            Some(bytes) => Ok(Some(decode(&format!("event {seq}"), bytes.value())?)),
            None => Ok(None),
        }
    }

    fn event_seq(&self, event_id: &str) -> Result<Option<u64>> {
        Ok(self.event_ids.get(event_id)?.map(|v| v.value()))
    }

    fn events_with(&self, key: &str) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        // An event is filed under its anchor in `by_anchor` only, and under its other
        // identifiers in `by_identifier`: one entry fewer for most events.
        for entry in self.by_identifier.range((key, 0)..=(key, u64::MAX))? {
            seqs.push(entry?.0.value().1);
        }
        for entry in self.by_anchor.range((key, 0)..=(key, u64::MAX))? {
            seqs.push(entry?.0.value().1);
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    fn events_of_anchor(&self, key: &str, after: u64, newest: usize) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        if after == u64::MAX {
            return Ok(seqs);
        }
        for entry in self.by_anchor.range((key, after + 1)..=(key, u64::MAX))?.rev().take(newest) {
            seqs.push(entry?.0.value().1);
        }
        seqs.reverse();
        Ok(seqs)
    }

    fn count_of_anchor(&self, key: &str, after: u64) -> Result<u64> {
        if after == u64::MAX {
            return Ok(0);
        }
        let mut count = 0;
        for entry in self.by_anchor.range((key, after + 1)..=(key, u64::MAX))? {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    fn scan_events(&self, after: u64, visit: &mut dyn FnMut(EventRecord) -> Result<bool>) -> Result<()> {
        for entry in self.events.range(after.saturating_add(1)..)? {
            let (seq, bytes) = entry?;
            if !visit(decode(&format!("event {}", seq.value()), bytes.value())?)? {
                break;
            }
        }
        Ok(())
    }

    fn consumed(&self, key: &str) -> Result<Vec<(String, Vec<ConsumedEntry>)>> {
        let mut ledgers = Vec::new();
        for entry in self.consumed.range((key, "")..)? {
            let (k, bytes) = entry?;
            let (anchor, item) = k.value();
            if anchor != key {
                break;
            }
            ledgers.push((
                item.to_string(),
                decode(&format!("the ledger of {anchor} and {item}"), bytes.value())?,
            ));
        }
        Ok(ledgers)
    }

    fn consumed_item(&self, key: &str, item_id: &str) -> Result<Vec<ConsumedEntry>> {
        match self.consumed.get((key, item_id))? {
            Some(bytes) => decode(&format!("the ledger of {key} and {item_id}"), bytes.value()),
            None => Ok(Vec::new()),
        }
    }

    fn consent(&self, key: &str) -> Result<Option<ConsentRecord>> {
        match self.consent.get(key)? {
            Some(bytes) => Ok(Some(decode(&format!("the consent of {key}"), bytes.value())?)),
            None => Ok(None),
        }
    }

    fn erased(&self, hash: &str) -> Result<Option<Erased>> {
        Ok(self.erased.get(hash)?.map(|at| Erased { at: at.value() }))
    }

    fn scan_erased(&self, visit: &mut dyn FnMut(&str, Erased) -> Result<()>) -> Result<()> {
        for entry in self.erased.range::<&str>(..)? {
            let (hash, at) = entry?;
            visit(hash.value(), Erased { at: at.value() })?;
        }
        Ok(())
    }

    fn scan_links(&self, visit: &mut dyn FnMut(LinkRecord) -> Result<()>) -> Result<()> {
        for entry in self.links.range::<u64>(..)? {
            let (seq, bytes) = entry?;
            visit(decode(&format!("identity log entry {}", seq.value()), bytes.value())?)?;
        }
        Ok(())
    }

    fn link(&self, seq: u64) -> Result<Option<LinkRecord>> {
        match self.links.get(seq)? {
            Some(bytes) => Ok(Some(decode(&format!("identity log entry {seq}"), bytes.value())?)),
            None => Ok(None),
        }
    }

    fn item(&self, item_id: &str) -> Result<Option<ItemRecord>> {
        match self.catalog.get(item_id)? {
            Some(bytes) => Ok(Some(decode(&format!("the catalog change of {item_id}"), bytes.value())?)),
            None => Ok(None),
        }
    }

    fn scan_items(&self, visit: &mut dyn FnMut(ItemRecord) -> Result<()>) -> Result<()> {
        for entry in self.catalog.range::<&str>(..)? {
            let (id, bytes) = entry?;
            visit(decode(&format!("the catalog change of {}", id.value()), bytes.value())?)?;
        }
        Ok(())
    }

    fn impressions(&self, key: &str, since: i64, newest: usize) -> Result<Vec<Impression>> {
        let mut shown = Vec::new();
        // No accepted time reaches i64::MAX, so the range holds all of the key's from `since`.
        for entry in self.impressions.range((key, since, "")..(key, i64::MAX, ""))?.rev().take(newest) {
            let (_, bytes) = entry?;
            shown.push(decode(&format!("an impression of {key}"), bytes.value())?);
        }
        shown.reverse();
        Ok(shown)
    }

    fn served(&self, recommendation_id: &str) -> Result<Option<Impression>> {
        match self.served.get(recommendation_id)? {
            Some(bytes) => Ok(Some(decode(&format!("served answer {recommendation_id}"), bytes.value())?)),
            None => Ok(None),
        }
    }

    fn scan_experiments(&self, visit: &mut dyn FnMut(ExperimentRecord) -> Result<()>) -> Result<()> {
        self.lab.scan_experiments(visit)
    }

    fn scan_exposures(&self, experiment: &str, visit: &mut dyn FnMut(Exposure) -> Result<()>) -> Result<()> {
        self.lab.scan_exposures(experiment, visit)
    }

    fn has_exposure(&self, experiment: &str, at: i64, id: &str, person: &str) -> Result<bool> {
        self.lab.has_exposure(experiment, at, id, person)
    }

    fn assignment(&self, key: &str, experiment: &str) -> Result<Option<Assignment>> {
        self.lab.assignment(key, experiment)
    }

    fn scan_models(&self, visit: &mut dyn FnMut(ModelRecord) -> Result<()>) -> Result<()> {
        self.lab.scan_models(visit)
    }
}

type WriteTables<'t> = Tables<
    redb::Table<'t, &'static str, &'static [u8]>,
    redb::Table<'t, u64, &'static [u8]>,
    redb::Table<'t, &'static str, u64>,
    redb::Table<'t, (&'static str, u64), ()>,
    redb::Table<'t, (&'static str, u64), ()>,
    redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    redb::Table<'t, &'static str, &'static [u8]>,
    redb::Table<'t, &'static str, i64>,
    redb::Table<'t, u64, &'static [u8]>,
    redb::Table<'t, &'static str, &'static [u8]>,
    redb::Table<'t, (&'static str, i64, &'static str), &'static [u8]>,
    redb::Table<'t, &'static str, &'static [u8]>,
    Lab<
        redb::Table<'t, &'static str, &'static [u8]>,
        redb::Table<'t, (&'static str, i64, &'static str), &'static [u8]>,
        redb::Table<'t, (&'static str, &'static str, &'static str), i64>,
        redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
        redb::Table<'t, &'static str, &'static [u8]>,
    >,
>;

impl Writer for WriteTables<'_> {
    fn set_next_seq(&mut self, next: u64) -> Result<()> {
        self.meta.insert("next_seq", next.to_le_bytes().as_slice())?;
        Ok(())
    }

    fn put_event(&mut self, event: &EventRecord) -> Result<()> {
        self.events.insert(event.seq, encode(event)?.as_slice())?;
        self.event_ids.insert(event.event_id.as_str(), event.seq)?;
        for key in event.identifiers.iter().filter(|k| **k != event.anchor) {
            self.by_identifier.insert((key.as_str(), event.seq), ())?;
        }
        self.by_anchor.insert((event.anchor.as_str(), event.seq), ())?;
        Ok(())
    }

    fn delete_event(&mut self, event: &EventRecord) -> Result<()> {
        self.events.remove(event.seq)?;
        self.event_ids.remove(event.event_id.as_str())?;
        for key in event.identifiers.iter().filter(|k| **k != event.anchor) {
            self.by_identifier.remove((key.as_str(), event.seq))?;
        }
        self.by_anchor.remove((event.anchor.as_str(), event.seq))?;
        Ok(())
    }

    fn put_consumed(&mut self, key: &str, item_id: &str, entries: &[ConsumedEntry]) -> Result<()> {
        if entries.is_empty() {
            self.consumed.remove((key, item_id))?;
        } else {
            self.consumed.insert((key, item_id), encode(&entries)?.as_slice())?;
        }
        Ok(())
    }

    fn delete_consumed(&mut self, key: &str) -> Result<()> {
        let items: Vec<String> = self.consumed(key)?.into_iter().map(|(item, _)| item).collect();
        for item in items {
            self.consumed.remove((key, item.as_str()))?;
        }
        Ok(())
    }

    fn put_consent(&mut self, key: &str, consent: &ConsentRecord) -> Result<()> {
        self.consent.insert(key, encode(consent)?.as_slice())?;
        Ok(())
    }

    fn delete_consent(&mut self, key: &str) -> Result<()> {
        self.consent.remove(key)?;
        Ok(())
    }

    fn put_erased(&mut self, hash: &str, erased: Erased) -> Result<()> {
        self.erased.insert(hash, erased.at)?;
        Ok(())
    }

    fn put_link(&mut self, link: &LinkRecord) -> Result<()> {
        self.links.insert(link.seq, encode(link)?.as_slice())?;
        Ok(())
    }

    fn delete_link(&mut self, seq: u64) -> Result<()> {
        self.links.remove(seq)?;
        Ok(())
    }

    fn put_item(&mut self, item: &ItemRecord) -> Result<()> {
        self.catalog.insert(item.item_id.as_str(), encode(item)?.as_slice())?;
        Ok(())
    }

    fn put_impression(&mut self, impression: &Impression, is_served: bool) -> Result<()> {
        let bytes = encode(impression)?;
        self.impressions
            .insert((impression.person.as_str(), impression.at, impression.id.as_str()), bytes.as_slice())?;
        if is_served {
            self.served.insert(impression.id.as_str(), bytes.as_slice())?;
        }
        Ok(())
    }

    fn delete_impressions(&mut self, key: &str) -> Result<u64> {
        let shown = self.impressions(key, i64::MIN, usize::MAX)?;
        for impression in &shown {
            self.impressions.remove((key, impression.at, impression.id.as_str()))?;
            let is_theirs = self.served(&impression.id)?.is_some_and(|s| s.person == key);
            if is_theirs {
                self.served.remove(impression.id.as_str())?;
            }
        }
        Ok(shown.len() as u64)
    }

    fn put_experiment(&mut self, experiment: &ExperimentRecord) -> Result<()> {
        self.lab.experiments.insert(experiment.name.as_str(), encode(experiment)?.as_slice())?;
        Ok(())
    }

    fn put_exposure(&mut self, exposure: &Exposure) -> Result<()> {
        let experiment = exposure.tag.experiment.as_str();
        let id = exposure.id.as_str();
        self.lab.exposures.insert((experiment, exposure.at, id), encode(exposure)?.as_slice())?;
        self.lab.exposed.insert((exposure.person.as_str(), experiment, id), exposure.at)?;
        Ok(())
    }

    fn put_assignment(&mut self, key: &str, experiment: &str, assignment: &Assignment) -> Result<()> {
        self.lab.assignments.insert((key, experiment), encode(assignment)?.as_slice())?;
        Ok(())
    }

    fn delete_exposures(&mut self, key: &str) -> Result<u64> {
        let mut filed: Vec<(String, String, i64)> = Vec::new();
        for entry in self.lab.exposed.range((key, "", "")..)? {
            let (k, at) = entry?;
            let (person, experiment, id) = k.value();
            if person != key {
                break;
            }
            filed.push((experiment.to_string(), id.to_string(), at.value()));
        }
        for (experiment, id, at) in &filed {
            self.lab.exposures.remove((experiment.as_str(), *at, id.as_str()))?;
            self.lab.exposed.remove((key, experiment.as_str(), id.as_str()))?;
        }
        let mut assigned: Vec<String> = Vec::new();
        for entry in self.lab.assignments.range((key, "")..)? {
            let (k, _) = entry?;
            let (person, experiment) = k.value();
            if person != key {
                break;
            }
            assigned.push(experiment.to_string());
        }
        for experiment in &assigned {
            self.lab.assignments.remove((key, experiment.as_str()))?;
        }
        Ok(filed.len() as u64)
    }

    fn put_model(&mut self, model: &ModelRecord) -> Result<()> {
        self.lab.models.insert(model.version.as_str(), encode(model)?.as_slice())?;
        Ok(())
    }
}

impl Backend for RedbBackend {
    fn read(&self, work: &mut dyn FnMut(&dyn Reader) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_read()?;
        let tables = open_tables!(txn);
        work(&tables)
    }

    fn write(&self, durable: bool, work: &mut dyn FnMut(&mut dyn Writer) -> Result<()>) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        let outcome = (|| -> Result<()> {
            let mut tables: WriteTables<'_> = open_tables!(txn);
            work(&mut tables)
        })();
        match outcome {
            Ok(()) => {
                // redb: after a failed commit the changes may already be durable, and no
                // write transaction begins until the database is opened again.
                txn.commit().map_err(|error| Error::CommitUncertain(error.to_string()))
            }
            Err(error) => {
                txn.abort()?;
                Err(error)
            }
        }
    }

    fn store_id(&self) -> &str {
        &self.store_id
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

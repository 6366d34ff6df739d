//! Durability: foreign or damaged files, every acknowledgement after its sync, and a disk
//! that stops taking writes.

use super::*;

#[test]
fn foreign_or_damaged_files_are_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(RedbBackend::FILE_NAME);
    std::fs::write(&path, b"not a database at all, just some text").unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).err().unwrap().to_string();
    assert!(err.starts_with(&format!("cannot open the store {}", path.display())), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a database at all, just some text");

    // Another program's redb file.
    std::fs::remove_file(&path).unwrap();
    let db = ::redb::Database::create(&path).unwrap();
    let write = db.begin_write().unwrap();
    write.open_table(::redb::TableDefinition::<u64, u64>::new("theirs")).unwrap().insert(1, 2).unwrap();
    write.commit().unwrap();
    drop(db);
    let err = Store::open(dir.path(), StoreOptions::default()).err().unwrap().to_string();
    assert!(err.contains("without omnirec's layout"), "{err}");

    // A truncated store.
    std::fs::remove_file(&path).unwrap();
    let store = open(dir.path());
    store.ingest(vec![event("a", &[&id(CookieId, "c1")], "web", "view", Some("i1"), 1)], 2).unwrap();
    drop(store);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 3).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).err().unwrap().to_string();
    assert!(err.starts_with("cannot open the store"), "{err}");
}

/// A file backend that logs every write and every completed sync in one sequence, noting the
/// event ids each write carries (ids are `SYNCCHK-` and six digits).
#[derive(Debug)]
struct Watched {
    file: ::redb::backends::FileBackend,
    clock: Arc<AtomicU64>,
    log: SyncLog,
    /// While set, every sync fails (a disk that stopped taking writes).
    failing: Arc<std::sync::atomic::AtomicBool>,
}

const MARK: &[u8] = b"SYNCCHK-";

impl ::redb::StorageBackend for Watched {
    fn len(&self) -> std::result::Result<u64, std::io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), std::io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::result::Result<(), std::io::Error> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::result::Result<(), std::io::Error> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the disk failed"));
        }
        self.file.sync_data()?;
        let at = self.clock.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push((at, None));
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::result::Result<(), std::io::Error> {
        self.file.write(offset, data)?;
        let ids: Vec<String> = data
            .windows(MARK.len() + 6)
            .filter(|w| w.starts_with(MARK))
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let at = self.clock.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push((at, Some(ids)));
        Ok(())
    }
    fn close(&self) -> std::result::Result<(), std::io::Error> {
        self.file.close()
    }
    fn try_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, ::redb::BackendError> {
        self.file.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, ::redb::BackendError> {
        self.file.try_lock_shared_range(start, end)
    }
    fn lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), ::redb::BackendError> {
        self.file.lock_range(start, end)
    }
    fn lock_shared_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), ::redb::BackendError> {
        self.file.lock_shared_range(start, end)
    }
    fn unlock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<(), ::redb::BackendError> {
        self.file.unlock_range(start, end)
    }
    fn query_lock_range(
        &self,
        start: std::ops::Bound<u64>,
        end: std::ops::Bound<u64>,
    ) -> std::result::Result<bool, ::redb::BackendError> {
        self.file.query_lock_range(start, end)
    }
}

type SyncLog = Arc<std::sync::Mutex<Vec<(u64, Option<Vec<String>>)>>>;

fn watched(dir: &Path) -> (RedbBackend, Arc<AtomicU64>, SyncLog) {
    let (backend, clock, log, _) = failing(dir);
    (backend, clock, log)
}

/// [`watched`], with the switch that makes its syncs fail.
fn failing(dir: &Path) -> (RedbBackend, Arc<AtomicU64>, SyncLog, Arc<std::sync::atomic::AtomicBool>) {
    let path = dir.join(RedbBackend::FILE_NAME);
    let file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).unwrap();
    let clock = Arc::new(AtomicU64::new(0));
    let log: SyncLog = Arc::default();
    let backend = Watched {
        file: ::redb::backends::FileBackend::new(file).unwrap(),
        clock: Arc::clone(&clock),
        log: Arc::clone(&log),
        failing: Arc::default(),
    };
    let failing = Arc::clone(&backend.failing);
    (RedbBackend::open_with(backend, path, false).unwrap(), clock, log, failing)
}

#[test]
fn after_a_commit_of_unknown_outcome_the_store_takes_no_more_writes_until_it_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let cookie = id(CookieId, "c1");
    {
        let (backend, _, _, failing) = failing(dir.path());
        let store = Store::with_backend(Box::new(backend), StoreOptions::default()).unwrap();
        store.ingest(vec![event("kept", &[&cookie], "web", "view", Some("i1"), 1)], 2).unwrap();
        assert_eq!(store.broken(), None);
        failing.store(true, Ordering::SeqCst);
        let error = store.ingest(vec![event("unsure", &[&cookie], "web", "purchase", Some("i2"), 3)], 4);
        // Reported by the sync of this commit, or by the next transaction (redb leaves part of
        // a commit's syncing to it).
        let error = error.unwrap_err().to_string();
        assert!(error.contains("takes no more writes until the server restarts"), "{error}");
        let reason = store.broken().expect("broken").to_string();
        // The disk is back, but the store does not pretend to know: refused until reopened.
        failing.store(false, Ordering::SeqCst);
        let error =
            store.ingest(vec![event("later", &[&cookie], "web", "view", Some("i3"), 5)], 6).unwrap_err();
        assert!(error.to_string().contains(&reason) && error.stops_writes(), "{error}");
        assert!(!error.may_have_been_kept(), "refused before anything was written");
    }
    // Opened again: whatever the failed commit left, a retry of it is told apart by its id.
    let store = open(dir.path());
    assert_eq!(store.broken(), None);
    let retried =
        store.ingest(vec![event("unsure", &[&cookie], "web", "purchase", Some("i2"), 3)], 7).unwrap();
    assert!(matches!(retried[0], Ingested::Accepted { .. } | Ingested::Duplicate { .. }), "{retried:?}");
    let person = store.person(std::slice::from_ref(&cookie), ALL).unwrap();
    assert_eq!(consumed(&person), [("i2".to_string(), 1)]);
}

/// Each acknowledged id whose bytes were not written and then synced before its
/// acknowledgement (at the clock reading in `acks`).
fn unsynced(log: &[(u64, Option<Vec<String>>)], acks: &[(String, u64)]) -> Vec<String> {
    acks.iter()
        .filter(|(id, acked)| {
            let written: Vec<u64> = log
                .iter()
                .filter(|(_, ids)| ids.as_ref().is_some_and(|ids| ids.contains(id)))
                .map(|(at, _)| *at)
                .collect();
            !written.iter().any(|&w| log.iter().any(|(at, ids)| ids.is_none() && *at > w && at < acked))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

#[test]
fn every_acknowledged_event_was_synced_before_its_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, clock, log) = watched(dir.path());
    let store = Arc::new(Store::with_backend(Box::new(backend), StoreOptions::default()).unwrap());
    let acks: Vec<(String, u64)> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..8)
            .map(|t| {
                let (store, clock) = (Arc::clone(&store), Arc::clone(&clock));
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for batch in 0..10 {
                        let ids: Vec<String> = (0..5).map(|i| format!("SYNCCHK-{t}{batch}{i:04}")).collect();
                        let cookie = id(CookieId, &format!("c{t}"));
                        let events =
                            ids.iter().map(|e| event(e, &[&cookie], "web", "view", Some("i1"), 1)).collect();
                        let answers = store.ingest(events, 2).unwrap();
                        let at = clock.fetch_add(1, Ordering::SeqCst);
                        for (event_id, answer) in ids.into_iter().zip(answers) {
                            assert!(matches!(answer, Ingested::Accepted { .. }));
                            acked.push((event_id, at));
                        }
                    }
                    acked
                })
            })
            .collect();
        senders.into_iter().flat_map(|s| s.join().unwrap()).collect()
    });
    assert_eq!(acks.len(), 400);
    let log = log.lock().unwrap().clone();
    let syncs = log.iter().filter(|(_, ids)| ids.is_none()).count();
    assert_eq!(unsynced(&log, &acks), Vec::<String>::new());
    // Grouped: far fewer syncs than the 80 requests (redb syncs twice per commit at most).
    assert!(syncs < 160, "{syncs} syncs for 80 requests");

    // The check can fail: a commit without a sync leaves its events unsynced at once.
    let dir = tempfile::tempdir().unwrap();
    let (backend, clock, log) = watched(dir.path());
    backend
        .write(false, &mut |w| {
            let record = EventRecord {
                seq: 1,
                event_id: "SYNCCHK-999999".into(),
                identifiers: vec!["cookie_id:x".into()],
                anchor: "cookie_id:x".into(),
                channel: "web".into(),
                event_type: "view".into(),
                item_id: None,
                timestamp: 1,
                value: None,
                recommendation_id: None,
                store_id: None,
                received_at: 1,
                consent: None,
            };
            w.put_event(&record)
        })
        .unwrap();
    let at = clock.fetch_add(1, Ordering::SeqCst);
    let log = log.lock().unwrap().clone();
    assert_eq!(unsynced(&log, &[("SYNCCHK-999999".into(), at)]), ["SYNCCHK-999999"]);
}

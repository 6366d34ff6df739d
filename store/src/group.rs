//! Group commit: one writer thread turns concurrent appends into one transaction and one
//! disk sync. A sync costs about 4 ms on the machines we run on, so a sync per request
//! would cap ingestion near 250 requests per second; batched, the cost is shared by every
//! request that arrived while the previous commit was syncing.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::EventLog;
use crate::error::{Error, Result};
use crate::record::{Appended, StoredEvent};

/// One caller's batch and where its answer goes.
struct Pending {
    events: Vec<StoredEvent>,
    reply: SyncSender<Result<Vec<Appended>>>,
}

/// The most events one commit takes; more waiting requests go into the next commit.
const MAX_EVENTS_PER_COMMIT: usize = 50_000;

/// A shared front of an [`EventLog`] whose appends are grouped into commits.
pub struct GroupCommit {
    sender: Option<SyncSender<Pending>>,
    writer: Option<JoinHandle<()>>,
    log: Arc<dyn EventLog>,
}

impl GroupCommit {
    /// Starts the writer thread over `log`.
    pub fn start(log: Arc<dyn EventLog>) -> Self {
        let (sender, receiver) = sync_channel::<Pending>(4_096);
        let writer_log = Arc::clone(&log);
        let writer = std::thread::Builder::new()
            .name("omnirec-store-writer".into())
            .spawn(move || write_loop(&*writer_log, &receiver))
            .ok();
        GroupCommit { sender: writer.as_ref().map(|_| sender), writer, log }
    }

    /// Appends `events` and returns once they are durable (or refused as duplicates or
    /// conflicts), with one answer per event in order. Blocks the calling thread: call it
    /// where blocking is allowed.
    pub fn append(&self, events: Vec<StoredEvent>) -> Result<Vec<Appended>> {
        let sender = self.sender.as_ref().ok_or(Error::WriterStopped)?;
        let (reply, answer) = sync_channel(1);
        sender.send(Pending { events, reply }).map_err(|_| Error::WriterStopped)?;
        answer.recv().map_err(|_| Error::WriterStopped)?
    }

    /// The log, for reads.
    pub fn log(&self) -> &dyn EventLog {
        &*self.log
    }
}

impl Drop for GroupCommit {
    /// Stops taking requests, lets the writer finish what it holds, and waits for it.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_loop(log: &dyn EventLog, receiver: &Receiver<Pending>) {
    // Blocks for the first request of a group, then takes whatever else is already waiting:
    // requests that arrived during the previous sync share this one.
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        let mut events = group[0].events.len();
        while events < MAX_EVENTS_PER_COMMIT
            && let Ok(next) = receiver.try_recv()
        {
            events += next.events.len();
            group.push(next);
        }
        let batches: Vec<Vec<StoredEvent>> =
            group.iter_mut().map(|p| std::mem::take(&mut p.events)).collect();
        match log.append(&batches) {
            Ok(answers) => {
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.reply.send(Ok(answer));
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = group.len(), "a group commit failed; nothing of it was stored");
                let message = error.to_string();
                for pending in group {
                    let _ = pending.reply.send(Err(Error::Storage(message.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbLog;
    use crate::redb_log::tests::event;

    #[test]
    fn concurrent_appends_share_commits_and_every_event_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(RedbLog::open_in(dir.path()).unwrap());
        let group = Arc::new(GroupCommit::start(Arc::clone(&log)));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let group = Arc::clone(&group);
                std::thread::spawn(move || {
                    (0..20)
                        .map(|i| {
                            let id = format!("t{t}-{i}");
                            // Every other request re-sends the previous event as well.
                            let mut batch = vec![event(&id, &[&format!("cookie_id:{t}")], "i1")];
                            if i > 0 {
                                batch.push(event(
                                    &format!("t{t}-{}", i - 1),
                                    &[&format!("cookie_id:{t}")],
                                    "i1",
                                ));
                            }
                            group.append(batch).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for thread in threads {
            for (i, answer) in thread.join().unwrap().into_iter().enumerate() {
                assert!(matches!(answer[0], Appended::Accepted(_)), "{answer:?}");
                if i > 0 {
                    assert!(matches!(answer[1], Appended::Duplicate(_)), "{answer:?}");
                }
            }
        }
        assert_eq!(group.log().len().unwrap(), 160);
        assert_eq!(group.log().events_of("cookie_id:3", 100).unwrap().len(), 20);
    }
}

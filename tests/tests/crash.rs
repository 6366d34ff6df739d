//! `kill -9` while channels send events: nothing acknowledged is lost, nothing is counted
//! twice. The server runs in a child process (this test binary run again, entering
//! [`crash_child_entry`], which writes its address into the data directory); the parent sends events from several connections, kills the child
//! with SIGKILL at a random moment, starts it again on the same data directory, and re-sends
//! what had no answer, as a channel would. At the end the store is opened directly and every
//! acknowledged event must be in it exactly once.
//!
//! A killed process leaves the page cache intact, so this cannot show that the sync happened
//! before the answer; the store's `every_acknowledged_event_was_synced_before_its_acknowledgement`
//! test watches the syncs themselves.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use server::client::Connection;

use super::trained;

/// Set (to `model|data_dir`) in the child's environment: it serves instead of testing.
const CHILD: &str = "OMNIREC_CRASH_CHILD";
const KILLS: usize = 20;
const SENDERS: usize = 8;
const BATCH: usize = 25;

/// The child's entry point: a no-op in a normal test run; with [`CHILD`] set, a server on an
/// ephemeral port that writes its address to `DATA_DIR/listening` and serves until it is killed.
#[test]
fn crash_child_entry() {
    let Ok(spec) = std::env::var(CHILD) else { return };
    let (model, data_dir) = spec.split_once('|').expect("model|data_dir");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let config = server::config::ServerConfig {
            model: Some(model.into()),
            data_dir: Some(data_dir.into()),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        let state = server::state::AppState::new(config, |_| None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let announce = std::path::Path::new(data_dir).join("listening");
        std::fs::write(announce.with_extension("tmp"), listener.local_addr().unwrap().to_string()).unwrap();
        std::fs::rename(announce.with_extension("tmp"), announce).unwrap();
        server::serve(listener, state, std::future::pending()).await.unwrap();
    });
}

fn spawn_child(model: &str, data_dir: &str) -> (Child, String) {
    let announce = std::path::Path::new(data_dir).join("listening");
    let _ = std::fs::remove_file(&announce);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash::crash_child_entry", "--exact", "--test-threads=1"])
        .env(CHILD, format!("{model}|{data_dir}"))
        .env("OMNIREC_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..6_000 {
        if let Ok(addr) = std::fs::read_to_string(&announce) {
            return (child, addr);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server process exited with {status} before listening");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    panic!("the server process did not listen within a minute");
}

/// One sender's batch: ids and body.
fn batch(round: usize, sender: usize, n: usize, items: &[String]) -> (Vec<String>, String) {
    let ids: Vec<String> = (0..BATCH).map(|i| format!("k{round}-s{sender}-b{n}-e{i}")).collect();
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "event_id": id, "cookie_id": format!("crash-{sender}-{}", n % 7), "channel": "web",
                "type": if i % 5 == 0 { "purchase" } else { "view" }, "item_id": items[(n + i) % items.len()],
                "timestamp": 1_700_000_000 + i as i64,
            })
        })
        .collect();
    (ids, json!({ "events": events }).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_event_and_counts_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("state");
    let model = trained().model.display().to_string();
    let items: Vec<String> = trained().engine.artifact().body.items.ids().iter().take(50).cloned().collect();
    let mut acknowledged: HashSet<String> = HashSet::new();
    // Batches sent and not answered when their server died: sent again after the restart.
    let mut unanswered: Vec<(Vec<String>, String)> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    for round in 0..KILLS + 1 {
        let (mut child, addr) = spawn_child(&model, data_dir.to_str().unwrap());
        let mut senders = Vec::new();
        let mut retries: Vec<Vec<(Vec<String>, String)>> = vec![Vec::new(); SENDERS];
        for (n, pending) in unanswered.drain(..).enumerate() {
            retries[n % SENDERS].push(pending);
        }
        for (sender, retry) in retries.into_iter().enumerate() {
            let (addr, items) = (addr.clone(), items.clone());
            senders.push(tokio::spawn(async move {
                // Answered ids, and the batches that may have reached the server unanswered.
                let mut acked = Vec::new();
                let Ok(mut connection) = Connection::open(&addr).await else { return (acked, retry) };
                let mut retries_left = retry.len();
                let mut queue: std::collections::VecDeque<(Vec<String>, String)> = retry.into();
                queue.extend((0..1_000).map(|n| batch(round, sender, n, &items)));
                while let Some((ids, body)) = queue.pop_front() {
                    retries_left = retries_left.saturating_sub(1);
                    match connection.send("POST", "/v1/events", None, Some(&body)).await {
                        Ok(reply) if reply.status == 200 => {
                            for result in reply.json()["results"].as_array().unwrap() {
                                let status = result["status"].as_str().unwrap();
                                assert!(status == "accepted" || status == "duplicate", "{result}");
                            }
                            acked.extend(ids);
                        }
                        Ok(reply) => panic!("status {}: {:?}", reply.status, reply.body),
                        Err(_) => {
                            // This one may have been stored; retries not reached yet were
                            // sent before and may have been too. Fresh ones never left.
                            let mut unsure = vec![(ids, body)];
                            unsure.extend(queue.into_iter().take(retries_left));
                            return (acked, unsure);
                        }
                    }
                }
                (acked, Vec::new())
            }));
        }
        if round < KILLS {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            tokio::time::sleep(Duration::from_millis(150 + rng % 350)).await;
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for sender in senders {
            let (acked, unsure) = sender.await.unwrap();
            acknowledged.extend(acked);
            unanswered.extend(unsure);
        }
        if round == KILLS {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
    assert_eq!(kills, KILLS);
    assert!(acknowledged.len() > 5_000, "only {} events acknowledged", acknowledged.len());
    let store = store::Store::open(&data_dir, store::StoreOptions::default()).unwrap();
    let mut stored: HashMap<String, usize> = HashMap::new();
    store
        .scan_events(0, &mut |event| {
            *stored.entry(event.event_id).or_default() += 1;
            Ok(())
        })
        .unwrap();
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains_key(*id)).take(5).collect();
    assert!(missing.is_empty(), "acknowledged and lost: {missing:?}");
    let twice: Vec<(&String, &usize)> = stored.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    eprintln!(
        "kill -9 x{KILLS}: {} events acknowledged, {} stored, none lost, none twice",
        acknowledged.len(),
        stored.len()
    );
}

//! `server loadtest`: drives a running server over keep-alive connections and prints what it
//! did. Three modes:
//! - `read` (default): recommendations for the artifact's persons (one in ten unknown);
//! - `ingest`: batches of events, durable before each answer: durable events per second;
//! - `mixed`: `read` while events arrive at a fixed `--ingest-rate`, to see what ingestion
//!   costs the recommendations.
//!
//! `ingest` and `mixed` also run a freshness probe: a person asks for recommendations, buys
//! the top item, and asks again as soon as the purchase is acknowledged; the probe reports how
//! long that second answer took and whether it left the item out (it must, every time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use server::client::Connection;

/// What the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Recommendations only.
    Read,
    /// Event batches only (and the freshness probe).
    Ingest,
    /// Recommendations while events arrive at `--ingest-rate` (and the freshness probe).
    Mixed,
}

/// `server loadtest` flags.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// The artifact the server serves (read for person and item ids).
    #[arg(long)]
    model: std::path::PathBuf,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Mode::Read)]
    mode: Mode,
    /// Concurrent connections (recommendations in `read` and `mixed`, event senders in
    /// `ingest`).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Items per request.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Placement to ask for (empty: none, for servers without placements).
    #[arg(long, default_value = "home")]
    placement: String,
    /// Events per batch (`ingest`, `mixed`).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Events per second to send in `mixed` mode.
    #[arg(long, default_value_t = 10_000)]
    ingest_rate: u64,
    /// Connections sending events in `mixed` mode (each paced to its share of the rate).
    #[arg(long, default_value_t = 16)]
    ingest_senders: usize,
    /// API key to send (one with the read and ingest roles, or admin).
    #[arg(long, env = "OMNIREC_LOADTEST_KEY")]
    key: Option<String>,
}

/// Latencies, sorted, with percentiles in milliseconds.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Latencies(all)
    }

    fn ms(&self, p: f64) -> f64 {
        let at = ((self.0.len() as f64 * p) as usize).min(self.0.len().saturating_sub(1));
        self.0.get(at).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    fn summary(&self) -> String {
        format!(
            "p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.0.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        )
    }
}

/// Runs the load test.
pub async fn run(args: &LoadArgs) -> Result<()> {
    if args.connections == 0 || args.seconds == 0 || args.batch == 0 {
        bail!("--connections, --seconds and --batch must be at least 1");
    }
    let artifact = models::artifact::load(&args.model)?;
    let persons: Vec<String> = artifact.body.users.ids().iter().take(5_000).cloned().collect();
    let items: Vec<String> = artifact.body.items.ids().iter().take(20_000).cloned().collect();
    drop(artifact);
    if persons.is_empty() || items.is_empty() {
        bail!("the artifact has no persons or no items");
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let items = Arc::new(items);
    let probe = (args.mode != Mode::Read).then(|| {
        let (addr, key, stop) = (args.addr.clone(), args.key.clone(), Arc::clone(&stop));
        tokio::spawn(freshness_probe(addr, key, stop))
    });
    let started = Instant::now();
    match args.mode {
        Mode::Read => {
            let (latencies, errors) = read_load(args, &persons, deadline).await;
            print_reads(args.connections, started.elapsed().as_secs_f64(), &latencies, errors)?;
        }
        Mode::Ingest => {
            let (events, latencies, errors) =
                ingest_load(args, args.connections, None, Arc::clone(&items), deadline).await;
            let elapsed = started.elapsed().as_secs_f64();
            cli::say!(
                "{} senders, batches of {}, {elapsed:.1} s: {events} events acknowledged durable, {errors} errors; \
                 {:.0} events/s; batch latency ms {}",
                args.connections,
                args.batch,
                events as f64 / elapsed,
                latencies.summary()
            )?;
        }
        Mode::Mixed => {
            let ingest = {
                let rate = args.ingest_rate;
                let items = Arc::clone(&items);
                let args_addr = args.addr.clone();
                let (key, batch, senders) = (args.key.clone(), args.batch, args.ingest_senders);
                tokio::spawn(async move {
                    let shape = IngestShape { addr: args_addr, key, batch };
                    ingest_with(shape, senders, Some(rate), items, deadline).await
                })
            };
            let (latencies, errors) = read_load(args, &persons, deadline).await;
            let elapsed = started.elapsed().as_secs_f64();
            let (events, batch_latencies, ingest_errors) = ingest.await?;
            print_reads(args.connections, elapsed, &latencies, errors)?;
            cli::say!(
                "  while ingesting {:.0} events/s (asked {}), {ingest_errors} errors; batch latency ms {}",
                events as f64 / elapsed,
                args.ingest_rate,
                batch_latencies.summary()
            )?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(probe) = probe {
        let (latencies, excluded, asked) = probe.await?;
        cli::say!(
            "  freshness: {asked} purchases, the next answer excluded the item {excluded} times; \
             acknowledgement to that answer ms {}",
            latencies.summary()
        )?;
        if excluded != asked {
            bail!("{} answers offered an item just bought", asked - excluded);
        }
    }
    Ok(())
}

fn print_reads(
    connections: usize,
    elapsed: f64,
    latencies: &Latencies,
    errors: usize,
) -> std::io::Result<()> {
    cli::say!(
        "{connections} connections, {elapsed:.1} s: {} ok, {errors} errors; {:.0} requests/s; latency ms {}",
        latencies.0.len(),
        latencies.0.len() as f64 / elapsed,
        latencies.summary()
    )?;
    Ok(())
}

/// Recommendations on `--connections` connections until `deadline`.
async fn read_load(args: &LoadArgs, persons: &[String], deadline: Instant) -> (Latencies, usize) {
    let placement =
        if args.placement.is_empty() { String::new() } else { format!("&placement={}", args.placement) };
    // Mostly known persons, one in ten unknown (the fallback path).
    let paths: Arc<Vec<String>> = Arc::new(
        persons
            .iter()
            .enumerate()
            .map(|(n, id)| if n % 10 == 9 { format!("unknown-{n}") } else { id.clone() })
            .map(|user| format!("/v1/users/{user}/recommendations?k={}{placement}", args.k))
            .collect(),
    );
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let paths = Arc::clone(&paths);
        let addr = args.addr.clone();
        let key = args.key.clone();
        tasks.push(tokio::task::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let Ok(mut connection) = Connection::open(&addr).await else { return (latencies, 1) };
            let mut n = worker;
            while Instant::now() < deadline {
                let path = &paths[n % paths.len()];
                n += stride(worker);
                let start = Instant::now();
                match connection.send("GET", path, key.as_deref(), None).await {
                    Ok(reply) if reply.status == 200 => latencies.push(start.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match Connection::open(&addr).await {
                            Ok(c) => connection = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((mut l, e)) = task.await {
            all.append(&mut l);
            errors += e;
        }
    }
    (Latencies::new(all), errors)
}

/// Where and how events are sent.
#[derive(Clone)]
struct IngestShape {
    addr: String,
    key: Option<String>,
    batch: usize,
}

async fn ingest_load(
    args: &LoadArgs,
    senders: usize,
    rate: Option<u64>,
    items: Arc<Vec<String>>,
    deadline: Instant,
) -> (u64, Latencies, usize) {
    let shape = IngestShape { addr: args.addr.clone(), key: args.key.clone(), batch: args.batch };
    ingest_with(shape, senders, rate, items, deadline).await
}

/// `senders` connections sending batches until `deadline`, all together at most `rate`
/// events per second when given. Returns events acknowledged, batch latencies and errors.
async fn ingest_with(
    shape: IngestShape,
    senders: usize,
    rate: Option<u64>,
    items: Arc<Vec<String>>,
    deadline: Instant,
) -> (u64, Latencies, usize) {
    let acknowledged = Arc::new(AtomicU64::new(0));
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let (shape, items, acknowledged, run) =
            (shape.clone(), Arc::clone(&items), Arc::clone(&acknowledged), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let Ok(mut connection) = Connection::open(&shape.addr).await else { return (latencies, 1) };
            // Each sender paces itself to its share of the rate.
            let interval =
                rate.map(|r| Duration::from_secs_f64(shape.batch as f64 * senders as f64 / r.max(1) as f64));
            let mut next = Instant::now();
            let mut n = 0usize;
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                }
                let body = batch_body(&run, sender, n, shape.batch, &items);
                n += 1;
                let start = Instant::now();
                match connection.send("POST", "/v1/events", shape.key.as_deref(), Some(&body)).await {
                    Ok(reply) if reply.status == 200 => {
                        latencies.push(start.elapsed());
                        let accepted = reply.json()["accepted"].as_u64().unwrap_or(0);
                        acknowledged.fetch_add(accepted, Ordering::Relaxed);
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match Connection::open(&shape.addr).await {
                            Ok(c) => connection = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((mut l, e)) = task.await {
            all.append(&mut l);
            errors += e;
        }
    }
    (acknowledged.load(Ordering::Relaxed), Latencies::new(all), errors)
}

/// One batch of views and purchases by made-up cookies, with unique event ids.
fn batch_body(run: &str, sender: usize, n: usize, size: usize, items: &[String]) -> String {
    let now = cli::unix_now();
    let events: Vec<String> = (0..size)
        .map(|i| {
            let global = n * size + i;
            format!(
                r#"{{"event_id":"load-{run}-{sender}-{global}","cookie_id":"load-{sender}-{}","channel":"{}","type":"{}","item_id":"{}","timestamp":{now}}}"#,
                global % 2_000,
                ["web", "app", "store"][global % 3],
                if global.is_multiple_of(10) { "purchase" } else { "view" },
                items[(global * 7919 + sender) % items.len()],
            )
        })
        .collect();
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

/// Buys the top item of a fresh person's answer and asks again as soon as the purchase is
/// acknowledged, every 50 ms until `stop`. Returns acknowledgement-to-answer latencies, how
/// many second answers excluded the item, and how many purchases were made.
async fn freshness_probe(
    addr: String,
    key: Option<String>,
    stop: Arc<AtomicBool>,
) -> (Latencies, usize, usize) {
    let mut latencies = Vec::new();
    let (mut excluded, mut asked) = (0, 0);
    let Ok(mut connection) = Connection::open(&addr).await else { return (Latencies::new(latencies), 0, 0) };
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let cookie = format!("probe-{run}-{n}");
        let ask = format!(r#"{{"identifiers":{{"cookie_id":"{cookie}"}},"channel":"web","k":5}}"#);
        let Ok(first) = connection.send("POST", "/v1/recommendations", key.as_deref(), Some(&ask)).await
        else {
            break;
        };
        let Some(top) = first.json()["items"][0]["item_id"].as_str().map(str::to_string) else { break };
        let purchase = format!(
            r#"{{"events":[{{"cookie_id":"{cookie}","channel":"store","type":"purchase","item_id":"{top}","timestamp":{}}}]}}"#,
            cli::unix_now()
        );
        match connection.send("POST", "/v1/events", key.as_deref(), Some(&purchase)).await {
            Ok(reply) if reply.json()["accepted"] == 1 => {}
            _ => break,
        }
        let acknowledged = Instant::now();
        let Ok(second) = connection.send("POST", "/v1/recommendations", key.as_deref(), Some(&ask)).await
        else {
            break;
        };
        latencies.push(acknowledged.elapsed());
        asked += 1;
        let items = second.json()["items"].as_array().cloned().unwrap_or_default();
        if items.iter().all(|i| i["item_id"] != top.as_str()) {
            excluded += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Latencies::new(latencies), excluded, asked)
}

/// Each connection walks the id list with its own stride, so connections ask about
/// different persons.
fn stride(worker: usize) -> usize {
    [7, 11, 13, 17, 19, 23, 29, 31][worker % 8]
}

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
    /// Items per request (default: the placement's own `k`).
    #[arg(long)]
    k: Option<usize>,
    /// Placement to ask for (empty: none, for servers without placements; `all`: every
    /// placement the server lists, one after another, `--seconds` each). A placement of
    /// similar items is asked through `/v1/items/{item}/similar` for the artifact's items, one
    /// of store stock with the stores of the artifact's catalog in turn.
    #[arg(long, default_value = "home")]
    placement: String,
    /// Ask this path (`read` mode) instead of any placement: `/health/live` measures what the
    /// HTTP exchange alone costs on the same machine, the ceiling of every endpoint.
    #[arg(long, conflicts_with = "placement")]
    path: Option<String>,
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
    if args.connections == 0 || args.seconds == 0 || args.batch == 0 || args.k == Some(0) {
        bail!("--connections, --seconds, --batch and --k must be at least 1");
    }
    if let Some(path) = &args.path
        && (args.mode != Mode::Read || !path.starts_with('/'))
    {
        bail!("--path takes a path starting with `/` (not {path:?}) and goes with --mode read");
    }
    let artifact = models::artifact::load(&args.model)?;
    let persons: Vec<String> = artifact.body.users.ids().iter().take(5_000).cloned().collect();
    let items: Vec<String> = artifact.body.items.ids().iter().take(20_000).cloned().collect();
    let stores: Vec<String> = artifact
        .body
        .catalog
        .iter()
        .flat_map(|item| item.store_stock.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
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
    if let Some(path) = &args.path {
        let (latencies, errors) = read_load(args, vec![path.clone()], deadline).await;
        return Ok(print_reads(args.connections, started.elapsed().as_secs_f64(), &latencies, errors)?);
    }
    match args.mode {
        Mode::Read => {
            let targets = targets(args).await?;
            let corpus = Corpus { persons: &persons, items: &items, stores: &stores };
            for (n, target) in targets.iter().enumerate() {
                let paths = match target.paths(&corpus, args.k) {
                    Ok(paths) => paths,
                    // Of every placement, one the artifact cannot ask (a kiosk without stores) is
                    // skipped; one placement asked for by name must be asked.
                    Err(error) if targets.len() > 1 => {
                        cli::say!("{target}\n  skipped: {error}")?;
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                let started = Instant::now();
                let deadline = if n == 0 { deadline } else { started + Duration::from_secs(args.seconds) };
                let (latencies, errors) = read_load(args, paths, deadline).await;
                if targets.len() > 1 {
                    cli::say!("{target}")?;
                }
                print_reads(args.connections, started.elapsed().as_secs_f64(), &latencies, errors)?;
            }
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
            let corpus = Corpus { persons: &persons, items: &items, stores: &stores };
            let paths = match targets(args).await?.as_slice() {
                [target] => target.paths(&corpus, args.k)?,
                _ => bail!("--mode mixed reads one placement, not `all`"),
            };
            let (latencies, errors) = read_load(args, paths, deadline).await;
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
async fn read_load(args: &LoadArgs, paths: Vec<String>, deadline: Instant) -> (Latencies, usize) {
    let paths = Arc::new(paths);
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

/// What a read run asks for, besides its placement: the request each placement needs.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// The placement (empty: none named).
    placement: String,
    /// Similar items of an item instead of a person's recommendations.
    similar: bool,
    /// Whether each request names a store (a placement of store stock).
    store: bool,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let asked = if self.similar { "similar items" } else { "a person's recommendations" };
        let store = if self.store { ", a store's stock" } else { "" };
        write!(f, "== placement {} ({asked}{store})", self.placement)
    }
}

/// The ids read runs draw their requests from: the artifact's persons, items and stores.
struct Corpus<'a> {
    persons: &'a [String],
    items: &'a [String],
    stores: &'a [String],
}

impl Target {
    /// One request path per person (one in ten unknown, the fallback path); for similar items
    /// one per item of the artifact, the person asking beside it.
    fn paths(&self, corpus: &Corpus<'_>, k: Option<usize>) -> Result<Vec<String>> {
        if self.store && corpus.stores.is_empty() {
            bail!(
                "placement {} answers from a store's stock, and the artifact's catalog has no store",
                self.placement
            );
        }
        let mut query = Vec::new();
        if let Some(k) = k {
            query.push(format!("k={k}"));
        }
        if !self.placement.is_empty() {
            query.push(format!("placement={}", self.placement));
        }
        let person = |n: usize| {
            let id = &corpus.persons[n % corpus.persons.len()];
            if n % 10 == 9 { format!("unknown-{n}") } else { id.clone() }
        };
        let count = if self.similar { corpus.items.len().min(5_000) } else { corpus.persons.len() };
        Ok((0..count)
            .map(|n| {
                let mut query = query.clone();
                if self.store {
                    query.push(format!("store_id={}", corpus.stores[n % corpus.stores.len()]));
                }
                if self.similar {
                    query.push(format!("user_id={}", person(n)));
                    format!("/v1/items/{}/similar?{}", corpus.items[n], query.join("&"))
                } else {
                    format!("/v1/users/{}/recommendations?{}", person(n), query.join("&"))
                }
            })
            .collect())
    }
}

/// The read runs `--placement` asks for: every placement `GET /v1/models` lists for `all`,
/// otherwise the one named, shaped by what the server says of it (a personal placement
/// without a store when it says nothing, as a server without placements does).
async fn targets(args: &LoadArgs) -> Result<Vec<Target>> {
    let personal =
        |placement: &str| Target { placement: placement.to_string(), similar: false, store: false };
    let listed = match Connection::open(&args.addr).await {
        Ok(mut connection) => match connection.send("GET", "/v1/models", args.key.as_deref(), None).await {
            Ok(reply) if reply.status == 200 => reply.json()["placements"].as_object().cloned(),
            _ => None,
        },
        Err(_) => None,
    };
    let shaped = |name: &str, placement: &serde_json::Value| Target {
        placement: name.to_string(),
        similar: placement["kind"] == "similar",
        store: placement["in_stock"] == "store",
    };
    match (args.placement.as_str(), listed) {
        ("all", Some(listed)) if !listed.is_empty() => {
            Ok(listed.iter().map(|(name, placement)| shaped(name, placement)).collect())
        }
        ("all", _) => bail!("--placement all: {} lists no placements (GET /v1/models)", args.addr),
        (name, Some(listed)) => {
            Ok(vec![listed.get(name).map_or_else(|| personal(name), |p| shaped(name, p))])
        }
        (name, None) => Ok(vec![personal(name)]),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn each_placement_gets_the_request_it_needs() {
        let (persons, items, stores) = (ids("p", 20), ids("i", 30), ids("s", 2));
        let corpus = Corpus { persons: &persons, items: &items, stores: &stores };
        let personal = Target { placement: "home".into(), similar: false, store: false };
        let paths = personal.paths(&corpus, None).unwrap();
        assert_eq!(paths.len(), 20);
        assert_eq!(paths[0], "/v1/users/p0/recommendations?placement=home");
        // One person in ten is unknown: the fallback path.
        assert_eq!(paths[9], "/v1/users/unknown-9/recommendations?placement=home");

        let kiosk = Target { placement: "store_kiosk".into(), similar: false, store: true };
        let paths = kiosk.paths(&corpus, Some(6)).unwrap();
        assert_eq!(paths[0], "/v1/users/p0/recommendations?k=6&placement=store_kiosk&store_id=s0");
        assert_eq!(paths[1], "/v1/users/p1/recommendations?k=6&placement=store_kiosk&store_id=s1");

        let similar = Target { placement: "product_page".into(), similar: true, store: false };
        let paths = similar.paths(&corpus, None).unwrap();
        assert_eq!(paths.len(), 30);
        assert_eq!(paths[3], "/v1/items/i3/similar?placement=product_page&user_id=p3");

        // No placement named (a server without placements), and no store to ask a kiosk about.
        let bare = Target { placement: String::new(), similar: false, store: false };
        assert_eq!(bare.paths(&corpus, Some(10)).unwrap()[1], "/v1/users/p1/recommendations?k=10");
        let storeless = Corpus { persons: &persons, items: &items, stores: &[] };
        let refused = kiosk.paths(&storeless, None).unwrap_err().to_string();
        assert!(refused.contains("store_kiosk") && refused.contains("no store"), "{refused}");
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn refusal(flags: &[&str]) -> String {
        use clap::Parser;
        let cli = match Cli::try_parse_from(["loadtest", "--model", "/nonexistent.omr"].iter().chain(flags)) {
            Ok(cli) => cli,
            Err(error) => return error.to_string(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(&cli.args)).unwrap_err().to_string()
    }

    #[test]
    fn a_fixed_path_is_an_absolute_path_read_alone() {
        // Refused before anything is read or sent (the model does not exist).
        assert!(refusal(&["--path", "health/live"]).contains("starting with `/`"));
        assert!(refusal(&["--path", "/health/live", "--mode", "ingest"]).contains("--mode read"));
        assert!(refusal(&["--path", "/health/live", "--placement", "home"]).contains("cannot be used with"));
        // A valid one gets as far as the model.
        assert!(!refusal(&["--path", "/health/live"]).contains("--path"));
    }
}

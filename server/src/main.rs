//! `server`: serve a model artifact over HTTP; `server demo` for the whole product on
//! synthetic data; `server loadtest` to measure a running server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use server::client::Connection;
use server::config::ServerConfig;
use server::state::AppState;

#[derive(Debug, Parser)]
#[command(name = "server", version, about = "Serve omnirec recommendations over HTTP")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// More logging (-v debug, -vv trace); OMNIREC_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

/// Start-up flags. Each setting is also read from the environment, in one place:
/// `OMNIREC_CONFIG` here (it names the file to read), every other `OMNIREC_*` variable by
/// `ServerConfig::apply_env`. Flags win over variables, variables over the file.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The model artifact to serve (or OMNIREC_MODEL).
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    /// Settings file (TOML): placements, keys, limits.
    #[arg(long, env = "OMNIREC_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory for the server's state, where the active model is recorded (or
    /// OMNIREC_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address to bind [default: 127.0.0.1:8080, the settings file's `listen`, or
    /// OMNIREC_LISTEN].
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate synthetic omnichannel data (unless already there), train, and serve it on
    /// localhost, printing example requests.
    Demo(DemoArgs),
    /// Drive a running server with concurrent keep-alive connections and print throughput
    /// and latency percentiles.
    Loadtest(LoadArgs),
    /// Write an export of the data directory's store for training, as
    /// `POST /v1/admin/export` does, with the server stopped.
    Export(ExportArgs),
    /// Rewrite the data directory's store without free pages, so the bytes of erased records
    /// are gone from the file; run it with the server stopped.
    Compact,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The directory to write into.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Working directory for the data and the artifact.
    #[arg(long, default_value = "omnirec-demo")]
    dir: PathBuf,
    /// Persons to generate.
    #[arg(long, default_value_t = 10_000)]
    persons: usize,
    /// Items to generate.
    #[arg(long, default_value_t = 2_000)]
    items: usize,
    /// Regenerate and retrain even if the directory holds a model.
    #[arg(long)]
    fresh: bool,
    /// Stop after printing the examples instead of serving (for scripts).
    #[arg(long, hide = true)]
    no_serve: bool,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// The server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// The artifact the server serves (read for person ids to ask about).
    #[arg(long)]
    model: PathBuf,
    /// Concurrent connections.
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
    /// API key to send.
    #[arg(long, env = "OMNIREC_LOADTEST_KEY")]
    key: Option<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    server::telemetry::init_logging(cli.verbose);
    match cli.command {
        None => run_server(serve(&cli.serve)),
        Some(Command::Demo(args)) => run_server(demo(&args, &cli.serve)),
        // One thread drives every connection: the generator should take as little CPU as
        // possible from the server it measures on the same machine.
        Some(Command::Loadtest(args)) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(loadtest(&args))
        }
        Some(Command::Export(args)) => export(&cli.serve, &args),
        Some(Command::Compact) => compact(&cli.serve),
    }
}

/// `server export`: the store of a stopped server, exported with its live catalog.
fn export(serve: &ServeArgs, args: &ExportArgs) -> Result<()> {
    let config = settings(serve)?;
    if config.data_dir.is_none() {
        bail!("give the server's --data-dir (or OMNIREC_DATA_DIR)");
    }
    let state = AppState::new(config, env)?;
    let store = state.store.as_ref().context("the data directory has no store")?;
    let catalog = state.current.load().view.catalog.live_items();
    let manifest = store.export(&args.out, &catalog, cli::unix_now())?;
    println!(
        "exported {} events of {} persons ({} withheld for consent), {} items, to {} (watermark {})",
        manifest.events,
        manifest.persons,
        manifest.withheld_events,
        manifest.items,
        args.out.display(),
        manifest.watermark
    );
    Ok(())
}

/// `server compact`: rewrites the store file without free pages.
fn compact(serve: &ServeArgs) -> Result<()> {
    let config = settings(serve)?;
    let dir = config.data_dir.context("give the server's --data-dir (or OMNIREC_DATA_DIR)")?;
    let path = dir.join(store::RedbBackend::FILE_NAME);
    let before = std::fs::metadata(&path).with_context(|| format!("no store at {}", path.display()))?.len();
    let mut backend = store::RedbBackend::open_in(&dir)?;
    backend.compact()?;
    drop(backend);
    let after = std::fs::metadata(&path)?.len();
    println!("compacted {}: {before} bytes -> {after} bytes", path.display());
    Ok(())
}

/// Runs `job` on a multi-threaded runtime. When it returns, blocking work still running (a
/// reload reading a slow file) gets one second before the process exits without it: a
/// shutdown deadline must hold even for work that cannot be cancelled.
fn run_server(job: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(job);
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Settings: the file and environment, then the command-line flags on top.
fn settings(args: &ServeArgs) -> Result<ServerConfig> {
    let mut config = ServerConfig::load(args.config.as_deref(), env)?;
    if let Some(model) = &args.model {
        config.model = Some(model.clone());
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = Some(dir.clone());
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

async fn start(config: ServerConfig) -> Result<(tokio::net::TcpListener, Arc<AppState>)> {
    let listen = config.listen;
    let state = tokio::task::spawn_blocking(move || AppState::new(config, env)).await??;
    if state.keys.is_empty() {
        tracing::warn!(
            "NO API KEYS CONFIGURED: this server is open to anyone who can reach {listen}; \
             add [[keys]] to the settings file before exposing it"
        );
    }
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let loaded = state.current.load();
    tracing::info!(
        model = loaded.model.version(),
        placements = loaded.view.placements.len(),
        "listening on http://{}",
        listener.local_addr()?
    );
    Ok((listener, state))
}

async fn serve(args: &ServeArgs) -> Result<()> {
    let (listener, state) = start(settings(args)?).await?;
    server::serve(listener, state, server::shutdown_signal()).await?;
    Ok(())
}

async fn demo(args: &DemoArgs, serve_args: &ServeArgs) -> Result<()> {
    let model = args.dir.join("model.omr");
    let reusable = !args.fresh && models::artifact::load(&model).is_ok();
    if reusable {
        tracing::info!("serving the model already in {} (use --fresh to retrain)", args.dir.display());
    } else {
        let dir = args.dir.clone();
        let (persons, items) = (args.persons, args.items);
        tokio::task::spawn_blocking(move || train_demo(&dir, persons, items)).await??;
    }
    let mut config = settings(serve_args)?;
    config.model = Some(model.clone());
    let (listener, state) = start(config).await?;
    let addr = listener.local_addr()?;
    print_examples(&state, addr);
    if args.no_serve {
        return Ok(());
    }
    println!("\nserving on http://{addr} — Ctrl-C to stop");
    server::serve(listener, state, server::shutdown_signal()).await?;
    Ok(())
}

/// Generates synthetic omnichannel data into `dir/data` (the files a user would train on,
/// to look at) and trains `dir/model.omr` from it with the default configuration, as
/// `trainer train --events … --items …` would.
fn train_demo(dir: &Path, persons: usize, items: usize) -> Result<()> {
    use datasets::synthetic::{SyntheticConfig, SyntheticData};
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let started = Instant::now();
    let synthetic = SyntheticData::generate(SyntheticConfig {
        n_persons: persons,
        n_items: items,
        ..Default::default()
    })?;
    let create = |name: &str| -> Result<std::io::BufWriter<std::fs::File>> {
        let path = data.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(std::io::BufWriter::new(file))
    };
    synthetic.write_events(create("events.jsonl")?)?;
    synthetic.write_catalog(create("catalog.csv")?)?;
    synthetic.write_truth(create("truth.tsv")?)?;
    let config = models::train::config::TrainConfig::default();
    let dataset = synthetic.dataset(&config.weights, &config.identity)?;
    let trained = models::train::train(&dataset, &config, &models::progress::Silent)?;
    let artifact = models::artifact::Artifact::assemble(&dataset, trained, &config, cli::unix_now());
    models::artifact::save(&artifact, &dir.join("model.omr"))?;
    println!(
        "trained {} on synthetic omnichannel data in {} ({:.0} s)",
        artifact.metadata.model_version,
        data.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints three requests that work against the demo model.
fn print_examples(state: &AppState, addr: SocketAddr) {
    let loaded = state.current.load();
    let body = &loaded.model.engine.artifact().body;
    // A person with a loyalty card and some history; any of their identifiers would do.
    let mut aliases: Vec<(&String, &u32)> =
        body.aliases.iter().filter(|(k, _)| k.starts_with("loyalty_id:")).collect();
    aliases.sort();
    let person =
        aliases.iter().find(|(_, u)| body.history.outer_view(**u as usize).is_some_and(|row| row.nnz() >= 5));
    let card = person.map_or("loyalty_id:unknown".to_string(), |(k, _)| k.to_string());
    let item = body.items.id(0).unwrap_or("unknown").to_string();
    let cookie = body
        .aliases
        .iter()
        .filter(|(k, _)| k.starts_with("cookie_id:"))
        .map(|(k, _)| k.trim_start_matches("cookie_id:").to_string())
        .min()
        .unwrap_or_default();
    println!("\nmodel {} — try:", loaded.model.version());
    println!("  curl -s 'http://{addr}/v1/users/{card}/recommendations?placement=home&k=5'");
    println!(
        "  curl -s -X POST http://{addr}/v1/recommendations -H 'content-type: application/json' \\\n    \
         -d '{{\"identifiers\": {{\"cookie_id\": \"{cookie}\"}}, \"channel\": \"email\", \"k\": 3, \"cart\": [\"{item}\"]}}'"
    );
    println!("  curl -s 'http://{addr}/v1/items/{item}/similar?k=4'");
    println!("  (also: /v1/models, /health/ready, /metrics, /openapi.json)");
}

async fn loadtest(args: &LoadArgs) -> Result<()> {
    if args.connections == 0 || args.seconds == 0 {
        bail!("--connections and --seconds must be at least 1");
    }
    let artifact = models::artifact::load(&args.model)?;
    // Mostly known persons, one in ten unknown (the fallback path).
    let paths: Vec<String> = artifact
        .body
        .users
        .ids()
        .iter()
        .take(5_000)
        .enumerate()
        .map(|(n, id)| if n % 10 == 9 { format!("unknown-{n}") } else { id.clone() })
        .map(|user| {
            let placement = if args.placement.is_empty() {
                String::new()
            } else {
                format!("&placement={}", args.placement)
            };
            format!("/v1/users/{user}/recommendations?k={}{placement}", args.k)
        })
        .collect();
    if paths.is_empty() {
        bail!("the artifact has no persons");
    }
    drop(artifact);
    let paths = Arc::new(paths);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let paths = Arc::clone(&paths);
        let addr = args.addr.clone();
        let key = args.key.clone();
        tasks.push(tokio::task::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut connection = match Connection::open(&addr).await {
                Ok(c) => c,
                Err(_) => return (latencies, 1),
            };
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
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await?;
        latencies.append(&mut l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{} connections, {:.1} s: {} ok, {} errors; {:.0} requests/s; latency ms p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        args.connections,
        elapsed,
        latencies.len(),
        errors,
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    Ok(())
}

/// Each connection walks the id list with its own stride, so connections ask about
/// different persons.
fn stride(worker: usize) -> usize {
    [7, 11, 13, 17, 19, 23, 29, 31][worker % 8]
}

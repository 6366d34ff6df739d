//! `server`: serve a model artifact over HTTP; `server demo` for the whole product on
//! synthetic data; `server loadtest` to measure a running server; `server export` and
//! `server compact` for a stopped server's data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use server::client::Connection;
use server::config::ServerConfig;
use server::state::AppState;

mod loadtest;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Loadtest(loadtest::LoadArgs),
    /// Write an export of the data directory's store for training, as
    /// `POST /v1/admin/export` does, with the server stopped.
    Export(ExportArgs),
    /// Rewrite the data directory's store without free pages, so the bytes of erased records
    /// are gone from the file; run it with the server stopped.
    Compact,
    /// Print an experiment's report from a running server (`GET /v1/experiments/{name}/report`).
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The experiment.
    experiment: String,
    /// The server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// An API key with the `read` role (default: `OMNIREC_KEY`).
    #[arg(long, env = "OMNIREC_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print the JSON as the server answers it.
    #[arg(long)]
    json: bool,
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    server::telemetry::init_logging(cli.verbose);
    simd_from_env();
    match cli.command {
        None => run_server(serve(&cli.serve)),
        Some(Command::Demo(args)) => run_server(demo(&args, &cli.serve)),
        // One thread drives every connection: the generator should take as little CPU as
        // possible from the server it measures on the same machine.
        Some(Command::Loadtest(args)) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(loadtest::run(&args))
        }
        Some(Command::Export(args)) => export(&cli.serve, &args),
        Some(Command::Compact) => compact(&cli.serve),
        Some(Command::Report(args)) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(report(&args))
        }
    }
}

/// `server report`: the experiment's report, as a table (or JSON).
async fn report(args: &ReportArgs) -> Result<()> {
    let mut connection = server::client::Connection::open(&args.addr)
        .await
        .with_context(|| format!("cannot connect to {}", args.addr))?;
    let path = format!("/v1/experiments/{}/report", args.experiment);
    let reply = connection.send("GET", &path, args.key.as_deref(), None).await?;
    if reply.status != 200 {
        anyhow::bail!("{} answered {}: {}", args.addr, reply.status, String::from_utf8_lossy(&reply.body));
    }
    let report = reply.json();
    if args.json {
        cli::say!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    cli::say_inline!("{}", server::report::render(&report))?;
    Ok(())
}

/// `server export`: the store of a stopped server, exported with its live catalog.
fn export(serve: &ServeArgs, args: &ExportArgs) -> Result<()> {
    let config = settings(serve)?;
    if config.data_dir.is_none() {
        bail!("give the server's --data-dir (or OMNIREC_DATA_DIR)");
    }
    let state = AppState::new(config, env)?;
    let store = state.store.as_ref().context("the data directory has no store")?;
    let catalog = &state.current.load().view.catalog;
    let manifest = store.export(&args.out, &catalog.live_items(), &catalog.deleted_ids(), cli::unix_now())?;
    cli::say!(
        "exported {} events of {} persons ({} withheld for consent), {} items, to {} (watermark {})",
        manifest.events,
        manifest.persons,
        manifest.withheld_events,
        manifest.items,
        args.out.display(),
        manifest.watermark
    )?;
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
    cli::say!("compacted {}: {before} bytes -> {after} bytes", path.display())?;
    Ok(())
}

/// Runs `job` on a multi-threaded runtime. When it returns, blocking work still running (a
/// reload reading a slow file) gets one second before the process exits without it: a
/// shutdown deadline must hold even for work that cannot be cancelled.
///
/// The runtime's workers only read requests, route them and write answers; scoring runs on
/// the rayon pool, one thread per core. So the runtime gets a quarter of the cores (at least
/// one) unless `TOKIO_WORKER_THREADS` says otherwise: as many workers as cores left every
/// scoring request waking a thread that competed with the pool for the same cores (on 2
/// cores at 100,000 items, one worker served `home` about 15 % more requests per second and
/// ALS alone 20 % more).
fn run_server(job: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        builder.worker_threads((cores / 4).max(1));
    }
    let runtime = builder.enable_all().build()?;
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
    warn_if_open(&state, listen);
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

/// `server serve`: binds first, then loads the model while `/health/ready` answers 503
/// `loading`, so a large artifact's load does not look like a dead server.
async fn serve(args: &ServeArgs) -> Result<()> {
    let config = settings(args)?;
    server::pool::start(config.pin_scoring_threads);
    let listen = config.listen;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!("listening on http://{}; loading the model", listener.local_addr()?);
    let started = std::time::Instant::now();
    let load = {
        let config = config.clone();
        async move {
            let state = tokio::task::spawn_blocking(move || AppState::new(config, env))
                .await
                .map_err(|e| server::Error::Io(std::io::Error::other(format!("loading failed: {e}"))))??;
            warn_if_open(&state, listen);
            tracing::info!(
                model = state.current.load().model.version(),
                placements = state.current.load().view.placements.len(),
                "model loaded in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            Ok(state)
        }
    };
    server::serve_while_loading(listener, &config, load, server::shutdown_signal()).await?;
    Ok(())
}

fn warn_if_open(state: &AppState, listen: std::net::SocketAddr) {
    if state.keys.is_empty() {
        tracing::warn!(
            "NO API KEYS CONFIGURED: this server is open to anyone who can reach {listen}; \
             add [[keys]] to the settings file before exposing it"
        );
    }
}

async fn demo(args: &DemoArgs, serve_args: &ServeArgs) -> Result<()> {
    let mut config = settings(serve_args)?;
    server::pool::start(config.pin_scoring_threads);
    let model = args.dir.join("model.omr");
    let reusable = !args.fresh && models::artifact::load(&model).is_ok();
    if reusable {
        tracing::info!("serving the model already in {} (use --fresh to retrain)", args.dir.display());
    } else {
        let dir = args.dir.clone();
        let (persons, items) = (args.persons, args.items);
        tokio::task::spawn_blocking(move || train_demo(&dir, persons, items)).await??;
        // A new model: the live state of the previous one (events, links, consent) is about
        // other data; start it afresh.
        let state = args.dir.join("state");
        if state.exists() {
            std::fs::remove_dir_all(&state).with_context(|| format!("cannot clear {}", state.display()))?;
        }
    }
    config.model = Some(model.clone());
    config.data_dir.get_or_insert_with(|| args.dir.join("state"));
    let (listener, state) = start(config).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            () = server::shutdown_signal() => {}
            _ = stopped => {}
        }
    };
    let serving = tokio::spawn(server::serve(listener, Arc::clone(&state), shutdown));
    let shown = show_the_loop(&state, addr).await;
    if let Err(error) = &shown {
        tracing::warn!(%error, "the real-time walkthrough did not run through");
    }
    print_examples(&state, addr)?;
    if args.no_serve {
        let _ = stop.send(());
        serving.await??;
        return shown;
    }
    cli::say!("\nserving on http://{addr} — Ctrl-C to stop")?;
    serving.await??;
    Ok(())
}

/// The real-time loop, run against the demo server: a person asked for by email, a purchase
/// of the email's top pick in a store under their loyalty card, and the email channel asked
/// again: the item is gone, milliseconds later, on another channel, by another identifier.
async fn show_the_loop(state: &AppState, addr: SocketAddr) -> Result<()> {
    let (card, email) = {
        let loaded = state.current.load();
        let body = &loaded.model.engine.artifact().body;
        let mut cards: Vec<(&String, &u32)> =
            body.aliases.iter().filter(|(k, _)| k.starts_with("loyalty_id:")).collect();
        cards.sort();
        let (card, person) = cards
            .into_iter()
            .find(|(_, p)| body.aliases.iter().any(|(k, q)| q == *p && k.starts_with("email:")))
            .context("the demo model has no person with a card and an email")?;
        let email = body
            .aliases
            .iter()
            .find(|(k, q)| *q == person && k.starts_with("email:"))
            .map(|(k, _)| k.clone());
        let email = email.unwrap_or_default().trim_start_matches("email:").to_string();
        (card.trim_start_matches("loyalty_id:").to_string(), email)
    };
    let addr = addr.to_string();
    let ask = format!(r#"{{"identifiers": {{"email": "{email}"}}, "channel": "email", "k": 3}}"#);
    let mut connection = Connection::open(&addr).await?;
    let before = connection.send("POST", "/v1/recommendations", None, Some(&ask)).await?.json();
    let top =
        before["items"][0]["item_id"].as_str().context("the email placement answered nothing")?.to_string();
    let titles = |answer: &serde_json::Value| -> Vec<String> {
        let items = answer["items"].as_array().into_iter().flatten();
        items
            .map(|i| {
                format!("{} ({})", i["title"].as_str().unwrap_or(""), i["item_id"].as_str().unwrap_or(""))
            })
            .collect()
    };
    cli::say!("\nthe real-time loop, live on this server:")?;
    cli::say!(
        "  1. the email channel asks for the person with email hash {}…: {}",
        &email[..12.min(email.len())],
        titles(&before).join(", ")
    )?;
    let purchase = format!(
        r#"{{"events": [{{"loyalty_id": "{card}", "channel": "store", "type": "purchase", "item_id": "{top}", "timestamp": {}, "store_id": "s1"}}]}}"#,
        cli::unix_now()
    );
    let started = Instant::now();
    let stored = connection.send("POST", "/v1/events", None, Some(&purchase)).await?;
    let stored_after = started.elapsed();
    if stored.json()["accepted"] != 1 {
        bail!("the purchase was not accepted: {:?}", stored.body);
    }
    cli::say!(
        "  2. a till in store s1 sends a purchase of {top} under loyalty card {card}: stored durably in {:.1} ms",
        stored_after.as_secs_f64() * 1e3
    )?;
    let after = connection.send("POST", "/v1/recommendations", None, Some(&ask)).await?.json();
    cli::say!(
        "  3. the email channel asks again, {:.1} ms after the purchase: {}",
        started.elapsed().as_secs_f64() * 1e3,
        titles(&after).join(", ")
    )?;
    let gone = after["items"].as_array().into_iter().flatten().all(|i| i["item_id"] != top.as_str());
    cli::say!(
        "     {top} {}",
        if gone { "is gone: bought in store, never offered by email" } else { "IS STILL THERE (a bug)" }
    )?;
    cli::say!("  (the profile: curl -s http://{addr}/v1/profiles/loyalty_id/{card})")?;
    if !gone {
        bail!("the purchased item was offered again");
    }
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
    let artifact = models::artifact::Artifact::train(
        dataset,
        &config,
        &models::progress::Silent,
        cli::unix_now(),
        |_| {},
    )?;
    models::artifact::save(&artifact, &dir.join("model.omr"))?;
    cli::say!(
        "trained {} on synthetic omnichannel data in {} ({:.0} s)",
        artifact.metadata.model_version,
        data.display(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// Prints three requests that work against the demo model.
fn print_examples(state: &AppState, addr: SocketAddr) -> std::io::Result<()> {
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
    cli::say!("\nmodel {} — try:", loaded.model.version())?;
    cli::say!("  curl -s 'http://{addr}/v1/users/{card}/recommendations?placement=home&k=5'")?;
    cli::say!(
        "  curl -s -X POST http://{addr}/v1/recommendations -H 'content-type: application/json' \\\n    \
         -d '{{\"identifiers\": {{\"cookie_id\": \"{cookie}\"}}, \"channel\": \"email\", \"k\": 3, \"cart\": [\"{item}\"]}}'"
    )?;
    cli::say!("  curl -s 'http://{addr}/v1/items/{item}/similar?k=4'")?;
    cli::say!(
        "  curl -s -X POST http://{addr}/v1/events -H 'content-type: application/json' \\\n    \
         -d '{{\"events\": [{{\"cookie_id\": \"{cookie}\", \"channel\": \"web\", \"type\": \"purchase\", \"item_id\": \"{item}\", \"timestamp\": {now}}}]}}'",
        now = cli::unix_now()
    )?;
    cli::say!(
        "  (also: /v1/profiles/cookie_id/{cookie}, /v1/models, /health/ready, /metrics, /openapi.json)"
    )?;
    Ok(())
}

/// `OMNIREC_SIMD` (`widest`, `avx512`, `avx2`, `scalar`) picks the kernels' instruction set.
fn simd_from_env() {
    let choice = std::env::var("OMNIREC_SIMD").ok();
    if let Some(warning) = models::algorithms::linalg::choose_level(choice.as_deref()) {
        tracing::warn!("OMNIREC_SIMD: {warning}");
    }
}

//! The omnirec trainer: command-line parsing and the commands behind it. `main.rs` only
//! parses flags and calls [`run`]; tests call the commands directly.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

pub mod commands;
pub mod experiments;
pub mod input;
pub mod progress;
pub mod send;
pub mod table;

/// Train, evaluate and run omnichannel recommendation models.
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
pub struct Cli {
    /// Log more (per-iteration timings); repeat for debug output.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The trainer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a synthetic omnichannel data set (events, catalog, ground truth).
    Generate(GenerateArgs),
    /// Train every enabled model in parallel and write one model artifact.
    Train(TrainArgs),
    /// Train on one file, score on another, print metrics per model and for the blend.
    Evaluate(EvaluateArgs),
    /// Batch recommendations for a list of persons, as TSV.
    Recommend(RecommendArgs),
    /// Print an artifact's metadata.
    Inspect(InspectArgs),
    /// Compare two artifacts on the same held-out data: metrics side by side, the difference
    /// and a paired bootstrap interval per metric.
    Compare(CompareArgs),
    /// Copy an artifact into a server's data directory (its watched inbox): the server loads
    /// it beside production.
    Publish(PublishArgs),
    /// The main job on the embedded default: generate, train, evaluate, print the table.
    Demo(DemoArgs),
}

/// `trainer generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of persons.
    #[arg(long, default_value_t = 10_000)]
    pub persons: usize,
    /// Number of catalog items.
    #[arg(long, default_value_t = 2_000)]
    pub items: usize,
    /// Number of stores.
    #[arg(long, default_value_t = 5)]
    pub stores: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Instead of events, write a plain `user_id item_id value` TSV with about this many
    /// interactions (for speed benchmarks).
    #[arg(long)]
    pub plain_interactions: Option<usize>,
}

/// Where training data comes from.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct DataArgs {
    /// A CSV/TSV interactions file with `user_id`, `item_id` and optional `value`, `timestamp`.
    #[arg(long)]
    pub interactions: Option<PathBuf>,
    /// A JSON Lines events file (any identifiers and channels).
    #[arg(long)]
    pub events: Option<PathBuf>,
}

impl DataArgs {
    /// The one path given, if any.
    pub fn path(&self) -> Option<PathBuf> {
        self.interactions.clone().or_else(|| self.events.clone())
    }
}

/// `trainer train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data.
    #[command(flatten)]
    pub data: DataArgs,
    /// A server's export (`POST /v1/admin/export`): its events are trained on (with
    /// `--events`, after that file's), its catalog is the default `--items`, its explicit links
    /// and unlinks stitch persons as the server did, its suppression list (erased and
    /// non-consenting persons) is applied to every input, and the artifact records its
    /// watermark so the server adds only later events.
    #[arg(long, value_name = "DIR")]
    pub from_export: Option<PathBuf>,
    /// The item catalog (CSV/TSV, or JSON Lines by extension).
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// A TOML config; every key has a default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where to write the artifact.
    #[arg(long)]
    pub out: PathBuf,
    /// Skip malformed rows (and report them) instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// `trainer evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Training file (interactions CSV/TSV, or events JSONL).
    #[arg(long)]
    pub train: PathBuf,
    /// Test file of the same kind; if absent, the last `--holdout` of each person's
    /// interactions in `--train` is held out.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Share of each person's latest interactions to hold out when no `--test` is given.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// The item catalog.
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// A TOML config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cut-off of the metrics.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip malformed rows.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Rank only items with a training interaction, as libraries that learn items from
    /// interactions alone do (for side-by-side comparisons with them); by default every
    /// item of the catalog is ranked, new ones included.
    #[arg(long)]
    pub trained_items_only: bool,
}

/// `trainer recommend`.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// The model artifact.
    #[arg(long)]
    pub model: PathBuf,
    /// Persons, one per line: a user id, or `kind:value` (`email:ann@example.com`).
    #[arg(long)]
    pub users: PathBuf,
    /// Items per person.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Output TSV: `user_id item_id rank score` (and `experiment variant recommendation_id`
    /// with `--experiment`).
    #[arg(long)]
    pub out: PathBuf,
    /// Take part in an experiment: its definition as `GET /v1/experiments/{name}` returns it.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// `VERSION=PATH`: the artifact of a variant's model version other than `--model`
    /// (repeat for several).
    #[arg(long)]
    pub variant_model: Vec<String>,
    /// A server's export (`POST /v1/admin/export`), taken just before the send: its
    /// suppression list applies (persons erased there get no answer, listed with reason
    /// `erased`; persons who withhold personalisation get popular items, `no_consent`), and
    /// what its events show each person holding (bought on any channel up to the export,
    /// net of returns) is never recommended.
    #[arg(long)]
    pub suppressed_from: Option<PathBuf>,
}

/// `trainer compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The first artifact (A, the baseline).
    pub a: PathBuf,
    /// The second (B).
    pub b: PathBuf,
    /// Held-out interactions or events of the persons both know.
    #[arg(long)]
    pub test: PathBuf,
    /// The item catalog of the test file.
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// Cut-off of the metrics.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Score every item for this side instead of going through the candidate stage of large
    /// catalogs (`trainer compare M M --exact a` measures what the stage changes).
    #[arg(long, value_enum)]
    pub exact: Option<Side>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip malformed rows.
    #[arg(long)]
    pub skip_invalid: bool,
}

/// One side of `trainer compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// The first artifact.
    A,
    /// The second.
    B,
}

/// `trainer publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The artifact.
    pub model: PathBuf,
    /// The server's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
}

/// `trainer inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model artifact.
    pub model: PathBuf,
    /// Also write the ALS factors to this directory (`users.txt`, `items.txt`, raw
    /// little-endian f32 `user_factors.f32` and `item_factors.f32`, `consumed.tsv`), for
    /// side-by-side comparisons with other tools.
    #[arg(long)]
    pub export_als: Option<PathBuf>,
}

/// `trainer demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working directory for the data and the artifact.
    #[arg(long, default_value = "omnirec-demo")]
    pub dir: PathBuf,
    /// Number of persons to generate.
    #[arg(long, default_value_t = 10_000)]
    pub persons: usize,
    /// Number of items to generate.
    #[arg(long, default_value_t = 2_000)]
    pub items: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Sets up logging to standard error: warnings and info by default, more with `-v`.
pub fn init_logging(verbose: u8) {
    cli::init_logging("trainer", verbose);
    simd_from_env();
}

/// `OMNIREC_SIMD` (`widest`, `avx512`, `avx2`, `scalar`) picks the kernels' instruction set.
fn simd_from_env() {
    let choice = std::env::var("OMNIREC_SIMD").ok();
    if let Some(warning) = models::algorithms::linalg::choose_level(choice.as_deref()) {
        tracing::warn!("OMNIREC_SIMD: {warning}");
    }
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => commands::generate(&args),
        Command::Train(args) => commands::train(&args).map(|_| ()),
        Command::Evaluate(args) => commands::evaluate(&args),
        Command::Recommend(args) => commands::recommend(&args),
        Command::Inspect(args) => commands::inspect(&args),
        Command::Compare(args) => experiments::print_comparison(&args),
        Command::Publish(args) => experiments::publish(&args),
        Command::Demo(args) => commands::demo(&args),
    }
}

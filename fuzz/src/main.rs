//! `fuzz`: runs omnirec's fuzz targets for a while and saves any input that breaks one.
//!
//! `cargo run --release -p fuzz -- all --seconds 600`; `--seed N` for another sequence,
//! `--trace` to write each input to `target/fuzz-current-<target>` before it runs (an abort
//! cannot be caught, so the file is what crashed).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use fuzz::{Target, run_bounded, save_crash};

#[derive(Debug, Parser)]
#[command(name = "fuzz", about = "Fuzz omnirec's artifact decoder, loaders and HTTP requests")]
struct Cli {
    /// A target (artifact, events, interactions, catalog, request) or `all`.
    target: String,
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Most inputs per target.
    #[arg(long, default_value_t = u64::MAX)]
    iterations: u64,
    /// Seed of the mutation sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write each input to target/fuzz-current-<target> before running it.
    #[arg(long)]
    trace: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let targets: Vec<Target> = match cli.target.as_str() {
        "all" => Target::ALL.to_vec(),
        name => vec![Target::parse(name).with_context(|| format!("unknown target `{name}`"))?],
    };
    // Failures are reported below with their input; the default hook would print every
    // caught panic of the run.
    std::panic::set_hook(Box::new(|_| {}));
    let (mut passed, mut failed) = (0, 0);
    for target in targets {
        let trace = fuzz::crate_dir().join("../target").join(format!("fuzz-current-{}", target.name()));
        let before = |input: &[u8]| {
            if cli.trace {
                let _ = std::fs::write(&trace, input);
            }
        };
        match run_bounded(target, Duration::from_secs(cli.seconds), cli.iterations, cli.seed, before) {
            Ok(stats) => {
                passed += 1;
                let per_second = stats.executions as f64 / stats.elapsed.as_secs_f64().max(1e-9);
                println!(
                    "{:<12} {:>10} inputs in {:>6.1} s ({per_second:>8.0}/s), no failure",
                    target.name(),
                    stats.executions,
                    stats.elapsed.as_secs_f64()
                );
            }
            Err(failure) => {
                failed += 1;
                let path = save_crash(target, &failure.input)?;
                println!(
                    "{:<12} FAILED: {} (input saved to {})",
                    target.name(),
                    failure.message,
                    path.display()
                );
            }
        }
    }
    println!("fuzz: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} target(s) failed");
    }
    Ok(())
}

//! Bounded fuzzing in the test suite, and the replay of every input that once broke a target.

use std::time::Duration;

use fuzz::{Target, read_dir_files, run_bounded};

/// Seconds per target: `OMNIREC_FUZZ_SECONDS`, default 8 (CI runs every target this long).
fn budget() -> Duration {
    let seconds = std::env::var("OMNIREC_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    Duration::from_secs(seconds)
}

fn survives(target: Target) {
    match run_bounded(target, budget(), u64::MAX, 7, |_| {}) {
        Ok(stats) => eprintln!("{}: {} inputs in {:?}", target.name(), stats.executions, stats.elapsed),
        Err(failure) => {
            let path = fuzz::save_crash(target, &failure.input).ok();
            panic!("{} failed: {} (input saved to {path:?})", target.name(), failure.message);
        }
    }
}

#[test]
fn the_artifact_decoder_survives_mutated_artifacts() {
    survives(Target::Artifact);
}

#[test]
fn the_events_loader_survives_mutated_files() {
    survives(Target::Events);
}

#[test]
fn the_interactions_loader_survives_mutated_files() {
    survives(Target::Interactions);
}

#[test]
fn the_catalog_loader_survives_mutated_files() {
    survives(Target::Catalog);
}

#[test]
fn the_server_answers_mutated_requests_without_a_server_error() {
    survives(Target::Request);
}

#[test]
fn inputs_that_once_broke_a_target_stay_fixed() {
    for target in Target::ALL {
        let dir = fuzz::crate_dir().join("regressions").join(target.name());
        for input in read_dir_files(&dir) {
            let outcome = std::panic::catch_unwind(|| target.run(&input));
            assert!(matches!(outcome, Ok(Ok(()))), "{}: a regression input fails again", target.name());
        }
    }
}

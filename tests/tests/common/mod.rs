//! Shared set-up: a small synthetic omnichannel data set trained into an artifact.

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};

use datasets::synthetic::SyntheticConfig;
use trainer::commands;
use trainer::{DataArgs, TrainArgs};

/// A quick training configuration.
pub const CONFIG: &str = "[als]\nfactors = 16\niterations = 8\n[blend]\nmax_tuning_users = 300\n";

/// Generates 800 persons × 200 items (seed 11) in `dir` and trains `dir/model.omr`.
pub fn setup(dir: &Path) -> (commands::GeneratedFiles, PathBuf) {
    setup_seeded(dir, 11)
}

/// As [`setup`], with another seed.
pub fn setup_seeded(dir: &Path, seed: u64) -> (commands::GeneratedFiles, PathBuf) {
    let synthetic = SyntheticConfig { n_persons: 800, n_items: 200, seed, ..Default::default() };
    let files = commands::write_synthetic(synthetic, dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let model = dir.join("model.omr");
    let args = TrainArgs {
        data: DataArgs { interactions: None, events: Some(files.events.clone()) },
        from_export: None,
        items: Some(files.catalog.clone()),
        config: Some(config),
        out: model.clone(),
        skip_invalid: false,
    };
    let metadata = commands::train(&args).unwrap();
    assert_eq!(metadata.models.len(), 5, "{:?}", metadata.models);
    assert!(metadata.models.iter().all(|m| m.skipped.is_none()), "{:?}", metadata.models);
    (files, model)
}

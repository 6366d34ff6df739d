//! Training speed on seeded synthetic data.
//!
//! - `fit/als/50k_users`: implicit ALS, 64 factors, 15 iterations, CG solver, on 50,000
//!   persons × 10,000 items × ~2M interactions (value 1), the set the issue compares with
//!   the `implicit` library.
//! - `train/all_models/omnichannel_10k`: the whole pipeline (every model, blend tuning,
//!   profiles) on the default synthetic omnichannel data (10,000 persons, 2,000 items).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use datasets::dataset::{Dataset, WeightConfig};
use datasets::identity::IdentityRules;
use datasets::synthetic::{SyntheticConfig, SyntheticData};
use models::algorithms::als::AlsParams;
use models::recommender::{Fit, TrainSet};
use models::train::config::TrainConfig;

fn als(c: &mut Criterion) {
    let rows = datasets::synthetic::interactions(50_000, 10_000, 2_000_000, 1);
    let dataset =
        Dataset::from_interactions(&rows, None, &WeightConfig::default()).expect("synthetic data is valid");
    let train = TrainSet::from_dataset(&dataset);
    let params = AlsParams { factors: 64, iterations: 15, ..Default::default() };
    let mut group = c.benchmark_group("fit/als");
    group.sample_size(10).measurement_time(Duration::from_secs(60)).warm_up_time(Duration::from_secs(1));
    group.bench_function("50k_users", |b| b.iter(|| params.fit(&train).expect("ALS fits")));
    group.finish();
}

fn whole_train(c: &mut Criterion) {
    let synthetic = SyntheticData::generate(SyntheticConfig::default()).expect("default config is valid");
    let dataset = synthetic
        .dataset(&WeightConfig::default(), &IdentityRules::default())
        .expect("synthetic events are valid");
    let config = TrainConfig::default();
    let mut group = c.benchmark_group("train/all_models");
    group.sample_size(10).measurement_time(Duration::from_secs(60)).warm_up_time(Duration::from_secs(1));
    group.bench_function("omnichannel_10k", |b| {
        b.iter(|| {
            models::train::train(&dataset, &config, &models::progress::Silent).expect("training succeeds")
        })
    });
    group.finish();
}

criterion_group!(benches, als, whole_train);
criterion_main!(benches);

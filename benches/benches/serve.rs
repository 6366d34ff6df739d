//! Serving speed: one recommendation (blend of every model, business rules, explanations) on
//! catalogs of 10,000 and 100,000 items with 64 ALS factors.
//!
//! - `answer/home/<items>`: a known person under a placement with a diversity cap, a boost
//!   and the purchase exclusion (the storefront's home page).
//! - `answer/similar/<items>`: items similar to one item (product page).
//! - `answer/popular/<items>`: a person nobody knows (the popular fill) under a placement
//!   without boosts, with live popularity on every item of the catalog, as after a day of
//!   events.
//!
//! - `content/<scoring>/10000`: content's scores of every item for one known person, through
//!   the common terms' bits and the rare terms' postings (`bits`, what a server scoring
//!   every item runs) or through every term's postings (`postings`, a model not warmed).
//!
//! - `popularity/<level>/10000`: the popularity member's scores of every item for one known
//!   person (global popularity × the person's share of each category): `avx512` picks 16
//!   items' shares per instruction, `avx2` is the scalar loop every other CPU runs.
//!
//! Each answer is measured through the candidate stage (`…/candidates`, the default above 20,000
//! items: the blend on a few hundred candidates per request) and with every item scored
//! (`…/exact`, `[candidates] per_member = 0`).
//!
//! Set-up trains on seeded synthetic omnichannel data (20,000 persons); at 100,000 items EASE
//! is skipped by its `max_items` limit, as in production.

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use datasets::dataset::WeightConfig;
use datasets::identity::IdentityRules;
use datasets::synthetic::{SyntheticConfig, SyntheticData};
use datasets::{ItemIdx, UserIdx};
use models::artifact::Artifact;
use models::recommender::{Query, Recommender};
use models::serve::candidates::CandidateParams;
use models::serve::engine::Engine;
use models::serve::popularity::LivePopularity;
use models::serve::rules::{Boost, Filters, PlacementConfig, PlacementKind, Request};
use models::train::FittedModel;
use models::train::config::TrainConfig;

fn artifact(n_items: usize) -> Artifact {
    let synthetic =
        SyntheticData::generate(SyntheticConfig { n_persons: 20_000, n_items, ..Default::default() })
            .expect("synthetic config is valid");
    let dataset = synthetic
        .dataset(&WeightConfig::default(), &IdentityRules::default())
        .expect("synthetic events are valid");
    let mut config = TrainConfig::default();
    config.als.factors = 64;
    config.blend.tune = false;
    let trained =
        models::train::train(&dataset, &config, &models::progress::Silent).expect("training succeeds");
    Artifact::assemble(&dataset, trained, &config, 0)
}

/// Prints the share of each exact top 10 (every item scored) that the candidate stage's top
/// 10 holds, over 1,000 persons under the home placement without rules beyond the purchase
/// exclusion.
fn recall(artifact: &Artifact, n_items: usize) {
    let exact =
        Engine::with_candidates(artifact.clone(), CandidateParams { per_member: 0, ..Default::default() });
    let staged = Engine::with_candidates(artifact.clone(), CandidateParams::default());
    let configs = BTreeMap::from([("home".to_string(), PlacementConfig::default())]);
    let n_users = artifact.body.users.len() as u32;
    let filters = Filters::default();
    let (mut found, mut total) = (0usize, 0usize);
    let (view_exact, _) = exact.view(exact.catalog().clone(), &configs).expect("placements compile");
    let (view_staged, _) = staged.view(staged.catalog().clone(), &configs).expect("placements compile");
    for u in (0..1_000u32).map(|i| UserIdx(i.wrapping_mul(7_919) % n_users)) {
        let request = Request::new(10, 1_800_000_000, &filters);
        let ask = |engine: &Engine, view: &models::serve::catalog::View| -> Vec<ItemIdx> {
            let answer =
                engine.answer(view, &view.placements["home"], request, &engine.person(Some(u)), None);
            answer.expect("answers").items.iter().map(|a| a.item).collect()
        };
        let (a, b) = (ask(&exact, &view_exact), ask(&staged, &view_staged));
        total += a.len();
        found += a.iter().filter(|i| b.contains(i)).count();
    }
    eprintln!(
        "candidate stage, {n_items} items: recall of the exact top 10 = {:.4} ({found} of {total})",
        found as f64 / total.max(1) as f64
    );
}

fn answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("answer");
    group.sample_size(50).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    for n_items in [10_000, 100_000] {
        let artifact = artifact(n_items);
        recall(&artifact, n_items);
        for (mode, params) in [
            ("candidates", CandidateParams::default()),
            ("exact", CandidateParams { per_member: 0, ..CandidateParams::default() }),
        ] {
            let engine = Engine::with_candidates(artifact.clone(), params);
            let home = PlacementConfig {
                k: 12,
                max_per_category: Some(3),
                boosts: vec![Boost { brand: None, category: None, tag: Some("new".into()), factor: 1.2 }],
                weights: BTreeMap::new(),
                ..Default::default()
            };
            let similar = PlacementConfig { kind: PlacementKind::Similar, k: 8, ..Default::default() };
            let configs = BTreeMap::from([
                ("home".to_string(), home),
                ("product_page".to_string(), similar),
                ("plain".to_string(), PlacementConfig { k: 12, ..Default::default() }),
            ]);
            let (view, _) = engine.view(engine.catalog().clone(), &configs).expect("placements compile");
            let (home, similar) = (&view.placements["home"], &view.placements["product_page"]);
            let n_users = engine.artifact().body.users.len() as u32;
            let filters = Filters::default();
            let request =
                |viewed: Option<ItemIdx>| Request { viewed, ..Request::new(12, 1_800_000_000, &filters) };
            let mut user = 0u32;
            group.bench_function(BenchmarkId::new(format!("home/{mode}"), n_items), |b| {
                b.iter(|| {
                    user = user.wrapping_add(7919);
                    let person = engine.person(Some(UserIdx(user % n_users)));
                    engine.answer(&view, home, request(None), &person, None).expect("answers")
                })
            });
            let mut item = 0u32;
            group.bench_function(BenchmarkId::new(format!("similar/{mode}"), n_items), |b| {
                b.iter(|| {
                    item = (item + 7919) % n_items as u32;
                    let person = engine.person(Some(UserIdx(item % n_users)));
                    engine
                        .answer(
                            &view,
                            similar,
                            Request { k: 8, ..request(Some(ItemIdx(item))) },
                            &person,
                            None,
                        )
                        .expect("answers")
                })
            });
            if mode == "exact" {
                let live = LivePopularity::new(engine.artifact().metadata.reference_time, None);
                for i in 0..n_items as u32 {
                    live.record(&format!("cookie_id:c{i}"), ItemIdx(i), 0);
                }
                let stranger = engine.person(None);
                group.bench_function(BenchmarkId::new("popular", n_items), |b| {
                    let plain = &view.placements["plain"];
                    b.iter(|| {
                        engine.answer(&view, plain, request(None), &stranger, Some(&live)).expect("answers")
                    })
                });
            }
        }
    }
    group.finish();
}

/// One member's scores of every item for a known person (a different one each time).
fn score_every_item(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    engine: &Engine,
    model: &dyn Recommender,
) {
    let n_users = engine.artifact().body.users.len() as u32;
    let mut scores = vec![0f32; engine.artifact().body.items.len()];
    let mut user = 0u32;
    group.bench_function(id, |b| {
        b.iter(|| {
            user = user.wrapping_add(7919);
            let u = UserIdx(user % n_users);
            let person = engine.person(Some(u));
            let query = Query { user: Some(u), history: &person.history, recency: &[] };
            model.score_into(&query, &mut scores).expect("scores");
            scores[0]
        })
    });
}

fn members(c: &mut Criterion) {
    use models::algorithms::linalg::{Level, set_level};
    let n_items = 10_000;
    let artifact = artifact(n_items);
    let engine =
        Engine::with_candidates(artifact.clone(), CandidateParams { per_member: 0, ..Default::default() });
    let (mut content, mut popularity) = (None, None);
    for model in &artifact.body.models {
        match model {
            FittedModel::Content(model) => content = Some(model.clone()),
            FittedModel::Popularity(model) => popularity = Some(model.clone()),
            _ => {}
        }
    }
    let (Some(cold), Some(popularity)) = (content, popularity) else {
        panic!("the synthetic catalog trains a content and a popularity model");
    };
    // The artifact's model was never warmed: it scores through every term's postings.
    let warm = cold.clone();
    warm.warm();
    let mut group = c.benchmark_group("content");
    group.sample_size(50).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    for (scoring, model) in [("bits", &warm), ("postings", &cold)] {
        score_every_item(&mut group, BenchmarkId::new(scoring, n_items), &engine, &**model);
    }
    group.finish();
    let mut group = c.benchmark_group("popularity");
    group.sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (name, level) in [("avx512", Level::Avx512), ("avx2", Level::Avx2)] {
        set_level(level);
        score_every_item(&mut group, BenchmarkId::new(name, n_items), &engine, &popularity);
    }
    set_level(Level::Widest);
    group.finish();
}

criterion_group!(benches, answer, members);
criterion_main!(benches);

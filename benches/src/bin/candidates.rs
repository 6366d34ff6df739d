//! The candidate stage's trade-off on one artifact: for each setting, the share of the exact
//! top 10 (every item scored) that the stage's top 10 holds, and the time of one answer
//! (single thread, the storefront's `home` placement as `benches/loadtest_large.sh` serves
//! it: the default blend, rules and explanations).
//!
//! ```sh
//! cargo run --release -p benches --bin candidates -- [--als-only] MODEL.omr [PERSONS] [SETTING ...]
//! ```
//!
//! A setting is `per_member,scan,probe[,min_items[,recall[,blend_recall]]]` (the
//! `[candidates]` values; default: the built-in ones; `min_items` below the catalog's size
//! runs the stage on a small catalog; the recalls the share of ALS's exact top 10 its index's
//! probed lists must hold where ALS scores alone and where it is one member of a blend).
//! Persons are spread over the artifact's (default 1,000). `--als-only` serves the
//! loadtests' `als_only` placement (ALS alone) instead of `home`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use benches::{mean, p99};
use datasets::ItemIdx;
use models::recommender::ModelKind;
use models::serve::candidates::CandidateParams;
use models::serve::engine::Engine;
use models::serve::rules::{Filters, PlacementConfig, Request};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let als_only = args.first().is_some_and(|a| a == "--als-only");
    if als_only {
        args.remove(0);
    }
    let Some(path) = args.first() else {
        eprintln!(
            "usage: candidates [--als-only] MODEL.omr [PERSONS] \
             [PER_MEMBER,SCAN,PROBE[,MIN_ITEMS[,RECALL[,BLEND_RECALL]]] ...]"
        );
        return ExitCode::from(2);
    };
    let persons: u32 = match args.get(1).map(|p| p.parse()) {
        None => 1_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("PERSONS must be a positive number, not {:?}", args[1]);
            return ExitCode::from(2);
        }
    };
    let mut settings = Vec::new();
    for text in args.iter().skip(2) {
        match setting(text) {
            Some(params) => settings.push(params),
            None => {
                eprintln!(
                    "a setting is PER_MEMBER,SCAN,PROBE[,MIN_ITEMS[,RECALL[,BLEND_RECALL]]] (the recalls \
                     shares, the others counts), not {text:?}"
                );
                return ExitCode::from(2);
            }
        }
    }
    if settings.is_empty() {
        settings.push(CandidateParams::default());
    }
    let (artifact, users) = match benches::artifact_and_persons(path, persons) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let mut placement = PlacementConfig::default();
    if als_only {
        placement.weights.insert(ModelKind::Als, 1.0);
    }
    let configs = BTreeMap::from([("home".to_string(), placement)]);
    let filters = Filters::default();
    let run = |params: CandidateParams| -> Result<(Vec<Vec<ItemIdx>>, Vec<f64>), String> {
        let engine = Engine::with_candidates(artifact.clone(), params);
        let (view, _) = engine.view(engine.catalog().clone(), &configs).map_err(|e| e.to_string())?;
        let placement = &view.placements["home"];
        let (mut lists, mut times) = (Vec::new(), Vec::new());
        for &user in &users {
            let person = engine.person(Some(user));
            let started = Instant::now();
            let answer = engine
                .answer(&view, placement, Request::new(10, 1_800_000_000, &filters), &person, None)
                .map_err(|e| e.to_string())?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
            lists.push(answer.items.iter().map(|a| a.item).collect());
        }
        Ok((lists, times))
    };
    let (exact, exact_times) = match run(CandidateParams { per_member: 0, ..CandidateParams::default() }) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{} items, {} persons", artifact.body.items.len(), users.len());
    println!("{:<28} {:>9} {:>12} {:>12}", "setting", "recall@10", "mean µs", "p99 µs");
    println!(
        "{:<28} {:>9} {:>12.0} {:>12.0}",
        "every item scored",
        "1.0000",
        mean(&exact_times),
        p99(&exact_times)
    );
    for params in settings {
        let (lists, times) = match run(params) {
            Ok(result) => result,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        };
        let (mut found, mut total) = (0usize, 0usize);
        for (a, b) in exact.iter().zip(&lists) {
            total += a.len();
            found += a.iter().filter(|i| b.contains(i)).count();
        }
        let name = format!("per_member {} scan {} probe {}", params.per_member, params.scan, params.probe);
        let defaults = CandidateParams::default();
        let name = if params.min_items == defaults.min_items {
            name
        } else {
            format!("{name} min_items {}", params.min_items)
        };
        let name =
            if params.recall == defaults.recall { name } else { format!("{name} recall {}", params.recall) };
        let recall = found as f64 / total.max(1) as f64;
        println!("{name:<28} {recall:>9.4} {:>12.0} {:>12.0}", mean(&times), p99(&times));
    }
    ExitCode::SUCCESS
}

/// `per_member,scan,probe[,min_items[,recall[,blend_recall]]]` over the built-in `[candidates]`.
fn setting(text: &str) -> Option<CandidateParams> {
    let parts: Vec<&str> = text.split(',').collect();
    let count = |at: usize| parts.get(at).map(|p| p.parse::<usize>().ok());
    let defaults = CandidateParams::default();
    let params = CandidateParams {
        per_member: count(0)??,
        scan: count(1)??,
        probe: count(2)??,
        min_items: count(3).unwrap_or(Some(defaults.min_items))?,
        recall: parts.get(4).map_or(Some(defaults.recall), |p| p.parse::<f64>().ok())?,
        blend_recall: parts.get(5).map_or(Some(defaults.blend_recall), |p| p.parse::<f64>().ok())?,
        ..defaults
    };
    (parts.len() <= 6).then_some(params)
}

//! Where one `home` answer's time goes on one artifact: each blend member's whole-catalog
//! score (`Recommender::score_into`) and its explanation of twelve items
//! (`Recommender::explain_many`), then the whole answer (the default blend, rules and
//! explanations), each as mean and p99 microseconds on one thread over the same persons.
//!
//! ```sh
//! cargo run --release -p benches --bin members -- [--answer-only] MODEL.omr [PERSONS]
//! ```
//!
//! `--answer-only` times only the whole answers (for a profiler).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use benches::{mean, p99};
use datasets::ItemIdx;
use models::recommender::Query;
use models::serve::engine::Engine;
use models::serve::rules::{Filters, PlacementConfig, Request};
use models::train::members;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let answer_only = args.first().is_some_and(|a| a == "--answer-only");
    if answer_only {
        args.remove(0);
    }
    let Some(path) = args.first() else {
        eprintln!("usage: members [--answer-only] MODEL.omr [PERSONS]");
        return ExitCode::from(2);
    };
    let persons: u32 = match args.get(1).map(|p| p.parse()) {
        None => 2_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("PERSONS must be a positive number, not {:?}", args[1]);
            return ExitCode::from(2);
        }
    };
    let (artifact, users) = match benches::artifact_and_persons(path, persons) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let engine = Engine::new(artifact);
    let configs = BTreeMap::from([("home".to_string(), PlacementConfig::default())]);
    let (view, _) = match engine.view(engine.catalog().clone(), &configs) {
        Ok(view) => view,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let placement = &view.placements["home"];
    let filters = Filters::default();
    let n_items = engine.artifact().body.items.len();
    println!("{n_items} items, {} persons; µs per call on one thread", users.len());
    println!("{:<24} {:>10} {:>10}", "step", "mean", "p99");
    let history_len: Vec<f64> = users.iter().map(|&u| engine.person(Some(u)).history.len() as f64).collect();
    println!("{:<24} {:>10.1} {:>10.0}", "history length", mean(&history_len), p99(&history_len));
    let targets: Vec<ItemIdx> = (0..12u32).map(|i| ItemIdx(i * 797 % n_items as u32)).collect();
    let mut scores = vec![0f32; n_items];
    for (kind, model) in members(&engine.artifact().body.models).into_iter().filter(|_| !answer_only) {
        let (mut scoring, mut explaining) = (Vec::new(), Vec::new());
        for &user in &users {
            let person = engine.person(Some(user));
            let query = Query { user: Some(user), history: &person.history, recency: &[] };
            let started = Instant::now();
            if let Err(error) = model.score_into(&query, &mut scores) {
                eprintln!("{}: {error}", kind.as_str());
                return ExitCode::FAILURE;
            }
            scoring.push(started.elapsed().as_secs_f64() * 1e6);
            let started = Instant::now();
            std::hint::black_box(model.explain_many(&query, &targets));
            explaining.push(started.elapsed().as_secs_f64() * 1e6);
        }
        for (step, times) in [("score", scoring), ("explain 12", explaining)] {
            let name = format!("{} {step}", kind.as_str());
            println!("{name:<24} {:>10.1} {:>10.0}", mean(&times), p99(&times));
        }
    }
    let mut answering = Vec::new();
    for &user in &users {
        let person = engine.person(Some(user));
        let started = Instant::now();
        let answer =
            engine.answer(&view, placement, Request::new(12, 1_800_000_000, &filters), &person, None);
        if let Err(error) = std::hint::black_box(answer) {
            eprintln!("answer: {error}");
            return ExitCode::FAILURE;
        }
        answering.push(started.elapsed().as_secs_f64() * 1e6);
    }
    println!("{:<24} {:>10.1} {:>10.0}", "home answer", mean(&answering), p99(&answering));
    ExitCode::SUCCESS
}

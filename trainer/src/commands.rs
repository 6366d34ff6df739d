//! The trainer's commands.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datasets::split::{SplitStrategy, split};
use datasets::synthetic::{SyntheticConfig, SyntheticData};
use models::artifact::{self, Artifact};
use models::metrics::{Candidates, Metrics, evaluate as evaluate_model};
use models::serve::engine::{Engine, Person};
use models::train::{Trained, relevance_of};
use rayon::prelude::*;
use serde::Serialize;

use crate::input;
use crate::progress::Bars;
use crate::send::{ExportState, Suppressed};
use crate::{DemoArgs, EvaluateArgs, GenerateArgs, InspectArgs, RecommendArgs, TrainArgs};

/// Refuses to write any of `outputs` over one of `inputs` (the same file by any path or
/// link): the input would be gone before anyone noticed.
pub(crate) fn refuse_overwrite(outputs: &[&Path], inputs: &[&Path]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let file = |path: &Path| fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    for out in outputs {
        let Some(target) = file(out) else { continue };
        if inputs.iter().any(|input| file(input) == Some(target)) {
            bail!("{} is an input too: write the output elsewhere", out.display());
        }
    }
    Ok(())
}

pub(crate) fn create_writer(path: &Path) -> Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// The files `generate` writes into its output directory.
pub struct GeneratedFiles {
    /// `events.jsonl`.
    pub events: PathBuf,
    /// `catalog.csv`.
    pub catalog: PathBuf,
    /// `truth.tsv`.
    pub truth: PathBuf,
}

/// The largest generated data sets: beyond them memory runs out before anything is written.
const MAX_GENERATED: [(&str, usize); 4] = [
    ("persons", 50_000_000),
    ("items", 10_000_000),
    ("stores", 100_000),
    ("plain-interactions", 2_000_000_000),
];

/// `trainer generate`.
pub fn generate(args: &GenerateArgs) -> Result<()> {
    let asked = [args.persons, args.items, args.stores, args.plain_interactions.unwrap_or(1)];
    for ((name, most), n) in MAX_GENERATED.into_iter().zip(asked) {
        if n == 0 || n > most {
            bail!("--{name} must be between 1 and {most}, not {n}");
        }
    }
    fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    if let Some(n) = args.plain_interactions {
        let started = Instant::now();
        let rows = datasets::synthetic::interactions(args.persons, args.items, n, args.seed);
        let path = args.out.join("interactions.tsv");
        let mut out = create_writer(&path)?;
        writeln!(out, "user_id\titem_id\tvalue")?;
        for row in &rows {
            writeln!(out, "{}\t{}\t1", row.user_id, row.item_id)?;
        }
        out.flush()?;
        eprintln!(
            "wrote {} interactions to {} in {:.1}s",
            rows.len(),
            path.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let config = SyntheticConfig {
        n_persons: args.persons,
        n_items: args.items,
        n_stores: args.stores,
        seed: args.seed,
        ..Default::default()
    };
    let files = write_synthetic(config, &args.out)?;
    eprintln!("wrote {}, {} and {}", files.events.display(), files.catalog.display(), files.truth.display());
    Ok(())
}

/// Generates a synthetic data set into `dir`.
pub fn write_synthetic(config: SyntheticConfig, dir: &Path) -> Result<GeneratedFiles> {
    let started = Instant::now();
    let data = SyntheticData::generate(config)?;
    let files = GeneratedFiles {
        events: dir.join("events.jsonl"),
        catalog: dir.join("catalog.csv"),
        truth: dir.join("truth.tsv"),
    };
    data.write_events(create_writer(&files.events)?)?;
    data.write_catalog(create_writer(&files.catalog)?)?;
    data.write_truth(create_writer(&files.truth)?)?;
    eprintln!(
        "generated {} events for {} persons over {} items in {:.1}s",
        data.n_events(),
        config.n_persons,
        config.n_items,
        started.elapsed().as_secs_f64()
    );
    Ok(files)
}

fn log_reports(trained: &Trained) {
    for report in &trained.reports {
        match &report.skipped {
            None => tracing::info!("{:<10} trained in {:.2}s", report.name, report.seconds),
            Some(reason) => tracing::warn!("{:<10} skipped: {reason}", report.name),
        }
    }
    if let Some(reason) = &trained.profiles_skipped {
        tracing::warn!("profiles skipped: {reason}");
    }
    let weights: Vec<String> = trained
        .blend_weights
        .iter()
        .map(|(k, v)| match trained.blend_debias.get(k) {
            Some(g) => format!("{}={v} (de-bias {g})", k.as_str()),
            None => format!("{}={v}", k.as_str()),
        })
        .collect();
    let recency = match trained.recency {
        r if r.is_off() => "person recency off".to_owned(),
        r => format!("person recency beta={} days={}", r.beta, r.days),
    };
    match (trained.tuned_ndcg, trained.tuned_folds) {
        (Some(ndcg), Some([a, b])) => tracing::info!(
            "blend tuned on validation (ndcg {ndcg:.4}; halves {a:.4} / {b:.4}): {}; {recency}",
            weights.join(" ")
        ),
        _ => tracing::info!("blend weights: {}; {recency}", weights.join(" ")),
    }
}

/// Writes `text` and a newline to standard output, quietly stopping when the reader went
/// away (`| head`).
pub(crate) fn say(text: impl std::fmt::Display) -> Result<()> {
    Ok(cli::say!("{text}")?)
}

/// `trainer train`: returns the artifact's metadata.
pub fn train(args: &TrainArgs) -> Result<artifact::Metadata> {
    let config = input::config(args.config.as_deref())?;
    let options = input::load_options(args.skip_invalid);
    let started = Instant::now();
    let export = args.from_export.as_deref().map(input::Export::read).transpose()?;
    let mut paths: Vec<PathBuf> = args.data.path().into_iter().collect();
    let mut items = args.items.clone();
    if let Some(export) = &export {
        paths.push(export.events());
        items.get_or_insert_with(|| export.items());
    }
    let mut inputs: Vec<PathBuf> = paths.iter().chain(&items).chain(&args.config).cloned().collect();
    inputs.extend(export.iter().flat_map(input::Export::files));
    refuse_overwrite(&[&args.out], &inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    // Found out now, not after the training.
    let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() || args.out.is_dir() {
        bail!("--out {}: name a file in an existing directory", args.out.display());
    }
    if paths.is_empty() {
        bail!("no training data: give --events, --interactions or --from-export");
    }
    // The flag says what the files hold, whatever they are called (`/dev/stdin`, `.log`).
    let kind = if args.data.interactions.is_some() { input::Kind::Interactions } else { input::Kind::Events };
    let (dataset, _, withheld) =
        input::dataset_with(&paths, Some(kind), items.as_deref(), &config, &options, export.as_ref())?;
    if !withheld.held.is_empty() || !withheld.groups.is_empty() || !withheld.refused.is_empty() {
        tracing::info!(
            "kept what {} identifiers of persons who withheld consent hold (not trained on, never offered back), \
             {} such persons' identifiers to join, and what {} identifiers refused for merging hold",
            withheld.held.len(),
            withheld.groups.len(),
            withheld.refused.len()
        );
    }
    tracing::info!(
        "loaded {} persons, {} items, {} interactions in {:.1}s",
        dataset.n_users(),
        dataset.n_items(),
        dataset.interactions.len(),
        started.elapsed().as_secs_f64()
    );
    let bars = Bars::new();
    let fit_started = Instant::now();
    // The data set's rows are released before the models are fitted (the peak of memory).
    let mut artifact = Artifact::train(dataset, &config, &bars, cli::unix_now(), |trained| {
        bars.clear();
        tracing::info!("training took {:.2}s", fit_started.elapsed().as_secs_f64());
        log_reports(trained);
    })?;
    artifact.body.withheld = withheld.held;
    for (key, list) in withheld.refused {
        let held = artifact.body.withheld.entry(key).or_default();
        held.extend(list);
        // One entry per item: the most units either counted, at the later purchase.
        held.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then(b.1.cmp(&a.1)));
        held.dedup_by_key(|entry| entry.0);
    }
    artifact.body.withheld_groups = withheld.groups;
    // An item deleted on the server that the events name stays deleted wherever the model
    // is served, unless the catalog the training was given holds it (listed again).
    let deleted_items: Vec<String> = match &export {
        Some(export) => {
            let listed = match &args.items {
                Some(path) => input::catalog(Some(path), &options)?
                    .into_iter()
                    .flat_map(|c| c.items)
                    .map(|item| item.item_id)
                    .collect(),
                None => std::collections::HashSet::new(),
            };
            let known = &artifact.body.items;
            let deleted = export.manifest.deleted_items.iter();
            deleted.filter(|id| known.get(id).is_some() && !listed.contains(id.as_str())).cloned().collect()
        }
        None => Vec::new(),
    };
    if !deleted_items.is_empty() {
        tracing::info!(
            "{} items the events name were deleted on the server: never served",
            deleted_items.len()
        );
    }
    artifact.metadata.store = export.map(|e| artifact::StoreWatermark {
        store_id: e.manifest.store_id.clone(),
        watermark: e.manifest.watermark,
        exported_at: e.manifest.exported_at,
        erasures: Some(
            e.manifest
                .suppressed
                .iter()
                .filter(|s| s.reason == "erased")
                .filter_map(|s| Some((s.hash.clone(), s.until?)))
                .collect(),
        ),
        deleted_items,
    });
    let metadata = artifact.metadata.clone();
    artifact::save(&artifact, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    tracing::info!("wrote {} ({})", args.out.display(), metadata.model_version);
    Ok(metadata)
}

/// One model's evaluation.
#[derive(Debug, Serialize)]
pub struct EvaluationRow {
    /// Model name, or `blend`.
    pub model: String,
    /// Its metrics on the test part.
    pub metrics: Metrics,
    /// Its metrics on the validation split the blend was tuned on (carved out of the
    /// training part), when tuning ran: a large gap between the two is overfitting.
    pub validation: Option<Metrics>,
    /// Fit wall time on the training file, seconds.
    pub fit_seconds: Option<f64>,
}

/// Trains on the training part and scores every model and the blend on the test part.
pub fn evaluate_rows(args: &EvaluateArgs) -> Result<Vec<EvaluationRow>> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    if args.test.is_none() && !(args.holdout > 0.0 && args.holdout < 1.0) {
        bail!("--holdout must be between 0 and 1 (exclusive), got {}", args.holdout);
    }
    let config = input::config(args.config.as_deref())?;
    let options = input::load_options(args.skip_invalid);
    let mut paths = vec![args.train.clone()];
    paths.extend(args.test.clone());
    let (dataset, sizes) = input::dataset(&paths, args.items.as_deref(), &config, &options)?;
    let (train_part, test_part) = match args.test {
        Some(_) => dataset.partition_by_origin(sizes[0]),
        None => split(&dataset.interactions, SplitStrategy::Temporal { fraction: args.holdout })?,
    };
    if test_part.is_empty() {
        bail!("the test part is empty: nothing to evaluate");
    }
    let train_data = dataset.with_interactions(train_part);
    let bars = Bars::new();
    let trained = models::train::train(&train_data, &config, &bars)?;
    bars.clear();
    log_reports(&trained);
    let relevant = relevance_of(&trained.train_set, &test_part);
    let candidates = if args.trained_items_only { Candidates::Trained } else { Candidates::All };
    let seconds: BTreeMap<&str, f64> = trained.reports.iter().map(|r| (r.name.as_str(), r.seconds)).collect();
    let validation = |name: &str| trained.validation_metrics.get(name).copied();
    let recency = trained.recency;
    let mut rows = Vec::new();
    for (kind, model) in trained.members() {
        rows.push(EvaluationRow {
            model: kind.as_str().to_owned(),
            metrics: evaluate_model(model, &trained.train_set, &relevant, args.k, &recency, candidates),
            validation: validation(kind.as_str()),
            fit_seconds: seconds.get(kind.as_str()).copied(),
        });
    }
    let debias = trained.debias();
    let blend = trained.blend(&debias);
    rows.push(EvaluationRow {
        model: "blend".to_owned(),
        metrics: evaluate_model(&blend, &trained.train_set, &relevant, args.k, &recency, candidates),
        validation: validation("blend"),
        fit_seconds: None,
    });
    Ok(rows)
}

/// `trainer evaluate`.
pub fn evaluate(args: &EvaluateArgs) -> Result<()> {
    let rows = evaluate_rows(args)?;
    if args.json {
        say(serde_json::to_string_pretty(&rows)?)?;
    } else {
        let table: Vec<(String, Metrics, Option<Metrics>, Option<f64>)> =
            rows.into_iter().map(|r| (r.model, r.metrics, r.validation, r.fit_seconds)).collect();
        say(crate::table::metrics(&table, args.k).trim_end())?;
    }
    Ok(())
}

/// Adds to `person` (as `answering` knows them) what `production` knows `id` consumed, by
/// item id: a variant's model may be older and never have seen a purchase.
fn with_purchases_of(person: &mut Person<'_>, answering: &Engine, production: &Engine, id: &str) {
    let Some(user) = production.lookup(id) else { return };
    let ids = &production.artifact().body.items;
    let there = |item: u32| Some(answering.catalog().get(ids.id(item)?)?.0);
    crate::send::add_consumed(
        person,
        production.consumed(user).iter().filter_map(|&(item, at)| Some((there(item)?, at))),
    );
}

/// `trainer recommend`. Unknown persons get the popularity fallback; they are counted on
/// standard error and listed in `<out>.fallback.tsv` with the reason.
///
/// With `--experiment FILE` every person gets the variant the server would give them (the
/// same hash of the same stitched person key), answered by that variant's model
/// (`--variant-model VERSION=PATH` for versions other than `--model`) and placement
/// overrides; the output gains `experiment`, `variant` and `recommendation_id` columns, and
/// `<out>.exposures.jsonl` holds one exposure per person in the shape `POST /v1/exposures`
/// takes, to post for the persons really sent to.
pub fn recommend(args: &RecommendArgs) -> Result<()> {
    use models::serve::rules::{Filters, PlacementConfig, Request, StockRule};
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let mut inputs: Vec<PathBuf> = vec![args.model.clone(), args.users.clone()];
    inputs.extend(args.experiment.clone());
    inputs.extend(
        args.variant_model.iter().filter_map(|pair| pair.split_once('=')).map(|(_, path)| path.into()),
    );
    let export = args.suppressed_from.as_deref().map(input::Export::read).transpose()?;
    inputs.extend(export.iter().flat_map(input::Export::files));
    let side = |suffix: &str| PathBuf::from(format!("{}.{suffix}", args.out.display()));
    let outputs = [args.out.clone(), side("fallback.tsv"), side("exposures.jsonl")];
    refuse_overwrite(
        &outputs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
        &inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    )?;
    let engine = Engine::new(
        artifact::load(&args.model).with_context(|| format!("cannot load {}", args.model.display()))?,
    );
    let mut users = Vec::new();
    for (line_no, line) in input::open(&args.users)?.lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: unreadable line", args.users.display(), line_no + 1))?;
        // A file saved by a spreadsheet starts with a byte-order mark.
        let id = if line_no == 0 { line.trim_start_matches('\u{feff}') } else { &line }.trim();
        let is_header = line_no == 0 && id == "user_id";
        datasets::schema::check_id(id)
            .map_err(|reason| anyhow::anyhow!("{}:{}: {reason}", args.users.display(), line_no + 1))?;
        if let Some(delimiter) = id.chars().find(|c| matches!(c, ',' | ';')) {
            bail!(
                "{}:{}: {id:?} holds a {delimiter:?}: the file lists one identifier per line, no other columns",
                args.users.display(),
                line_no + 1
            );
        }
        if !id.is_empty() && !is_header {
            users.push(id.to_owned());
        }
    }
    let exported = match &export {
        Some(export) => ExportState::read(&engine, export)?,
        None => ExportState::default(),
    };
    // The items the server's catalog holds at the export: one the model knows and the
    // export does not was deleted since, and is never recommended.
    let live_items =
        export.as_ref().map(|e| e.item_ids(&datasets::load::LoadOptions::default())).transpose()?;
    // `engine`'s catalog with those deletions, for answers in it.
    let live_catalog = |engine: &Engine| -> Result<models::serve::catalog::LiveCatalog> {
        let catalog = engine.catalog();
        let Some(live) = &live_items else { return Ok(catalog.clone()) };
        let deleted: Vec<models::serve::catalog::CatalogChange> = engine
            .artifact()
            .body
            .items
            .ids()
            .iter()
            .filter(|id| !live.contains(id.as_str()))
            .map(|id| models::serve::catalog::CatalogChange { item_id: id.clone(), item: None })
            .collect();
        Ok(catalog.with_changes(&deleted, engine.content())?.0)
    };
    let batch_view =
        models::serve::catalog::View { catalog: live_catalog(&engine)?, placements: BTreeMap::new() };
    let batch_placement = models::serve::rules::Placement::purchases_only(batch_view.catalog.len());
    let (users, erased): (Vec<String>, Vec<String>) =
        users.into_iter().partition(|id| exported.suppressed(&engine, id) != Some(Suppressed::Erased));
    let experiment = args.experiment.as_deref().map(crate::experiments::read_experiment).transpose()?;
    let others = crate::experiments::variant_engines(&args.variant_model)?;
    let version = engine.artifact().metadata.model_version.clone();
    // Per variant: the engine that answers it and the view its placement is compiled in.
    let base = PlacementConfig {
        k: args.k,
        max_k: args.k.clamp(100, models::serve::rules::MAX_K),
        in_stock: StockRule::Any,
        respect_availability: false,
        ..PlacementConfig::default()
    };
    let mut variants = Vec::new();
    if let Some(experiment) = &experiment {
        for (i, variant) in experiment.variants.iter().enumerate() {
            let answering = match &variant.model {
                Some(v) if *v != version => others.get(v).with_context(|| {
                    format!(
                        "variant `{}` is answered by model {v}: give --variant-model {v}=PATH",
                        variant.name
                    )
                })?,
                _ => &engine,
            };
            let placement = experiment.placement(i, "batch", &base)?;
            let (view, _) =
                answering.view(live_catalog(answering)?, &[("batch".to_string(), placement)].into())?;
            variants.push((answering, view));
        }
    }
    let now = cli::unix_now();
    let filters = Filters::default();
    let answer_for =
        |id: &String| -> models::Result<(Option<usize>, models::serve::engine::Recommendations, &Engine)> {
            let withheld = exported.suppressed(&engine, id) == Some(Suppressed::NoConsent);
            let Some(experiment) = &experiment else {
                let mut person = Person { personalization: !withheld, ..engine.person(engine.lookup(id)) };
                exported.add_held(&mut person, &engine, &engine, id);
                crate::send::add_withheld(&mut person, &engine, &engine, id);
                let request = Request::new(args.k, 0, &filters);
                let answer = engine.answer(&batch_view, &batch_placement, request, &person, None)?;
                let items = answer
                    .items
                    .into_iter()
                    .map(|a| models::rank::ScoredItem { item: a.item, score: a.score })
                    .collect();
                let recommendations =
                    models::serve::engine::Recommendations { items, fallback: answer.fallback };
                return Ok((None, recommendations, &engine));
            };
            let key = match engine.lookup(id) {
                Some(user) => engine.artifact().body.users.id(user.0).unwrap_or(id).to_string(),
                None => datasets::schema::Identifier::parse_key(id)
                    .map_or_else(|| id.clone(), |i| datasets::identity::canonical_key(&i)),
            };
            let v = models::experiment::assign::assign(experiment, &key);
            let (answering, view) = &variants[v];
            let placement = &view.placements["batch"];
            let mut person = answering.person(answering.lookup(id));
            person.personalization = !withheld;
            if !std::ptr::eq(*answering, &engine) {
                with_purchases_of(&mut person, answering, &engine, id);
            }
            exported.add_held(&mut person, answering, &engine, id);
            crate::send::add_withheld(&mut person, answering, &engine, id);
            let answer =
                answering.answer(view, placement, Request::new(args.k, now, &filters), &person, None)?;
            let items = answer
                .items
                .into_iter()
                .map(|a| models::rank::ScoredItem { item: a.item, score: a.score })
                .collect();
            Ok((
                Some(v),
                models::serve::engine::Recommendations { items, fallback: answer.fallback },
                *answering,
            ))
        };
    let answers: Vec<_> = users.par_iter().map(answer_for).collect();
    let mut out = create_writer(&args.out)?;
    if experiment.is_some() {
        writeln!(out, "user_id\titem_id\trank\tscore\texperiment\tvariant\trecommendation_id")?;
    } else {
        writeln!(out, "user_id\titem_id\trank\tscore")?;
    }
    let fallback_path = PathBuf::from(format!("{}.fallback.tsv", args.out.display()));
    let mut fallback = create_writer(&fallback_path)?;
    writeln!(fallback, "user_id\treason")?;
    let exposures_path = PathBuf::from(format!("{}.exposures.jsonl", args.out.display()));
    let mut exposures = match &experiment {
        Some(_) => Some(create_writer(&exposures_path)?),
        None => None,
    };
    for id in &erased {
        writeln!(fallback, "{id}\terased")?;
    }
    let mut n_fallback = erased.len();
    let mut per_variant: BTreeMap<String, usize> = BTreeMap::new();
    for (id, answer) in users.iter().zip(answers) {
        let (variant, answer, answering) = answer.with_context(|| format!("recommending for {id}"))?;
        if let Some(reason) = answer.fallback {
            n_fallback += 1;
            writeln!(fallback, "{id}\t{}", reason.as_str())?;
        }
        let items = &answering.artifact().body.items;
        let names: Vec<&str> = answer.items.iter().map(|s| items.id(s.item.0).unwrap_or("?")).collect();
        let tag = match (&experiment, variant) {
            (Some(e), Some(v)) => {
                let recommendation_id = format!("batch-{}", uuid::Uuid::now_v7());
                let variant = e.variants[v].name.as_str();
                *per_variant.entry(variant.to_string()).or_default() += 1;
                if let Some(exposures) = exposures.as_mut() {
                    crate::experiments::write_exposure(
                        exposures,
                        &recommendation_id,
                        &e.name,
                        variant,
                        id,
                        &names,
                    )?;
                }
                format!("\t{}\t{variant}\t{recommendation_id}", e.name)
            }
            _ => String::new(),
        };
        for (rank, (scored, item)) in answer.items.iter().zip(&names).enumerate() {
            writeln!(out, "{id}\t{item}\t{}\t{:.6}{tag}", rank + 1, scored.score)?;
        }
    }
    out.flush()?;
    fallback.flush()?;
    if let Some(mut exposures) = exposures {
        exposures.flush()?;
        eprintln!("variants: {per_variant:?}; exposures to post once sent: {}", exposures_path.display());
    }
    eprintln!(
        "wrote {} persons to {} ({n_fallback} served the popularity fallback, listed in {})",
        users.len(),
        args.out.display(),
        fallback_path.display()
    );
    Ok(())
}

/// `trainer inspect`.
pub fn inspect(args: &InspectArgs) -> Result<()> {
    let metadata = artifact::load_metadata(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    say(serde_json::to_string_pretty(&metadata)?)?;
    if let Some(dir) = &args.export_als {
        export_als(&args.model, dir)?;
    }
    Ok(())
}

/// Writes the ALS factors, id lists and consumed items of an artifact to `dir`.
fn export_als(model: &Path, dir: &Path) -> Result<()> {
    let artifact = artifact::load(model).with_context(|| format!("cannot read {}", model.display()))?;
    let body = &artifact.body;
    let als = body
        .models
        .iter()
        .find_map(|m| match m {
            models::train::FittedModel::Als(als) => Some(als),
            _ => None,
        })
        .context("the artifact has no ALS model")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let floats = |values: &[f32]| values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    fs::write(dir.join("user_factors.f32"), floats(als.user_factors()))?;
    fs::write(dir.join("item_factors.f32"), floats(als.item_factors()))?;
    fs::write(dir.join("users.txt"), body.users.ids().join("\n") + "\n")?;
    fs::write(dir.join("items.txt"), body.items.ids().join("\n") + "\n")?;
    let mut consumed = String::new();
    for (user, items) in body.consumed.iter().enumerate() {
        for (item, _) in items {
            consumed.push_str(&format!("{user}\t{item}\n"));
        }
    }
    fs::write(dir.join("consumed.tsv"), consumed)?;
    say(format!(
        "ALS factors ({} persons, {} items, {} factors) written to {}",
        als.n_users(),
        body.items.len(),
        als.factors(),
        dir.display()
    ))?;
    Ok(())
}

/// `trainer demo`: the main job on synthetic data.
pub fn demo(args: &DemoArgs) -> Result<()> {
    let data_dir = args.dir.join("data");
    fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let config = SyntheticConfig {
        n_persons: args.persons,
        n_items: args.items,
        seed: args.seed,
        ..Default::default()
    };
    let files = write_synthetic(config, &data_dir)?;
    let model = args.dir.join("model.omr");
    let train_args = TrainArgs {
        data: crate::DataArgs { interactions: None, events: Some(files.events.clone()) },
        from_export: None,
        items: Some(files.catalog.clone()),
        config: None,
        out: model.clone(),
        skip_invalid: false,
    };
    let metadata = train(&train_args)?;
    say(format!("\nmodel {} written to {}", metadata.model_version, model.display()))?;
    identity_report(&files)?;
    say("\nheld-out evaluation (last 20% of each person's interactions):")?;
    let eval_args = EvaluateArgs {
        train: files.events,
        test: None,
        holdout: 0.2,
        items: Some(files.catalog),
        config: None,
        k: 10,
        json: false,
        skip_invalid: false,
        trained_items_only: false,
    };
    evaluate(&eval_args)
}

/// Scores identity resolution of a generated data set against its ground truth.
fn identity_report(files: &GeneratedFiles) -> Result<()> {
    let options = input::load_options(false);
    let (events, _) =
        datasets::load::read_events(BufReader::new(File::open(&files.events)?), "events", &options)?;
    let resolution = datasets::identity::resolve(&events, &datasets::identity::IdentityRules::default());
    let truth_text = fs::read_to_string(&files.truth)?;
    let entries: Vec<(String, String)> = truth_text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut parts = line.split('\t');
            Some((format!("{}:{}", parts.next()?, parts.next()?), parts.next()?.to_owned()))
        })
        .collect();
    let truth = datasets::synthetic::normalise_truth(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let score = datasets::identity::score_pairwise(&resolution, &truth);
    let shared_refused = resolution
        .report
        .refused
        .iter()
        .filter(|r| r.identifier.value.starts_with("kiosk-") || r.identifier.value.starts_with("tablet-"))
        .count();
    say(format!(
        "identity resolution vs ground truth: pairwise precision {:.4}, recall {:.4} over {} identifiers; \
         {} persons found; {} shared devices refused for merging",
        score.precision,
        score.recall,
        score.n_identifiers,
        resolution.persons.len(),
        shared_refused
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generating_more_than_memory_holds_is_refused_before_anything_is_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let args = |persons, items, stores, plain| GenerateArgs {
            out: dir.path().to_path_buf(),
            persons,
            items,
            stores,
            seed: 1,
            plain_interactions: plain,
        };
        for (asked, name) in [
            (args(usize::MAX, 10, 1, None), "--persons"),
            (args(10, usize::MAX, 1, None), "--items"),
            (args(10, 10, usize::MAX, None), "--stores"),
            (args(10, 0, 1, Some(10)), "--items"),
            (args(10, 10, 1, Some(0)), "--plain-interactions"),
        ] {
            let message = generate(&asked).unwrap_err().to_string();
            assert!(message.starts_with(&format!("{name} must be between 1 and")), "{message}");
        }
    }

    #[test]
    fn a_device_as_input_and_an_output_in_no_directory_are_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let train = |events: &str, out: PathBuf| {
            let args = TrainArgs {
                data: crate::DataArgs { interactions: None, events: Some(events.into()) },
                from_export: None,
                items: None,
                config: None,
                out,
                skip_invalid: false,
            };
            format!("{:#}", super::train(&args).unwrap_err())
        };
        let message = train("/dev/zero", dir.path().join("m.omr"));
        assert!(message.contains("/dev/zero is not a regular file"), "{message}");
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, "").unwrap();
        let message = train(events.to_str().unwrap(), dir.path().join("missing").join("m.omr"));
        assert!(message.contains("name a file in an existing directory"), "{message}");
        // An output that is an input under another name (a hard link) is refused.
        let linked = dir.path().join("linked.omr");
        std::fs::hard_link(&events, &linked).unwrap();
        let message = train(events.to_str().unwrap(), linked);
        assert!(message.contains("is an input too"), "{message}");
    }
}

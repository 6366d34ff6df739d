//! The trainer's side of experiments and the model registry: `publish` (an artifact into a
//! server's watched inbox), `compare` (two artifacts on the same held-out data, paired
//! bootstrap intervals) and the variant columns of `recommend --experiment`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use datasets::schema::Identifier;
use datasets::{ItemIdx, UserIdx};
use models::artifact;
use models::experiment::Experiment;
use models::experiment::stats::paired_bootstrap;
use models::metrics::{Relevant, score_list};
use models::serve::candidates::CandidateParams;
use models::serve::engine::Engine;
use rayon::prelude::*;
use serde::Serialize;

use crate::commands::say;
use crate::{CompareArgs, PublishArgs, Side, input};

/// `trainer publish`: checks the artifact, then copies it into `DATA_DIR/inbox/` under a
/// temporary name, syncs it and renames it, so the server (which watches the inbox) only
/// ever sees a complete file; it loads it beside production within two seconds.
pub fn publish(args: &PublishArgs) -> Result<()> {
    let metadata = artifact::load_metadata(&args.model)
        .with_context(|| format!("{} is not a readable artifact", args.model.display()))?;
    // A mistyped directory would take the artifact and report success; no server would
    // ever read it.
    if !args.data_dir.join(store::RedbBackend::FILE_NAME).is_file() {
        bail!(
            "{} is not a server's data directory (no store.redb): name the --data-dir of a server that has run",
            args.data_dir.display()
        );
    }
    let inbox = args.data_dir.join("inbox");
    fs::create_dir_all(&inbox).with_context(|| format!("cannot create {}", inbox.display()))?;
    let name = format!("{}.omr", metadata.model_version);
    let temporary = inbox.join(format!(".{name}.partial"));
    fs::copy(&args.model, &temporary).with_context(|| format!("cannot write {}", temporary.display()))?;
    File::open(&temporary).and_then(|f| f.sync_all()).context("cannot sync the copy")?;
    let target = inbox.join(&name);
    fs::rename(&temporary, &target).with_context(|| format!("cannot rename to {}", target.display()))?;
    File::open(&inbox).and_then(|d| d.sync_all()).context("cannot sync the inbox")?;
    say(format!(
        "published {} to {} (a server on this data directory loads it beside production; promote it with \
         POST /v1/admin/models/{}/promote or name it in an experiment's variant)",
        metadata.model_version,
        target.display(),
        metadata.model_version
    ))
}

/// One metric of `compare`.
#[derive(Debug, Serialize)]
pub struct ComparedMetric {
    /// Its name.
    pub metric: &'static str,
    /// Mean over the persons for the first artifact.
    pub a: f64,
    /// For the second.
    pub b: f64,
    /// `b − a`.
    pub difference: f64,
    /// Paired bootstrap interval of the difference.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
    /// Two-sided bootstrap p-value of no difference.
    pub p_value: f64,
}

/// What `compare` prints.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// The two versions.
    pub a: String,
    /// Second.
    pub b: String,
    /// Persons evaluated (known to both, with held-out items).
    pub persons: usize,
    /// Cut-off.
    pub k: usize,
    /// The share of A's top `k` that B's top `k` holds, averaged over the persons.
    pub overlap: f64,
    /// Per metric.
    pub metrics: Vec<ComparedMetric>,
}

const METRICS: [&str; 6] = ["precision", "recall", "ndcg", "map", "hit_rate", "mrr"];

/// The `k` best items for `user` outside their training history, as the blend serves them,
/// and the person's relevant held-out items under `engine`.
fn ranked(engine: &Engine, user: UserIdx, history: &[ItemIdx], k: usize) -> Result<Vec<ItemIdx>> {
    let answer = engine.recommend(Some(user), k + history.len())?;
    Ok(answer.items.into_iter().map(|s| s.item).filter(|i| !history.contains(i)).take(k).collect())
}

/// `trainer compare`: both artifacts recommend for every person of the test file both know;
/// per person, each metric of the list; the difference of the means with a paired bootstrap
/// interval (persons resampled, 2,000 times, seeded).
pub fn compare(args: &CompareArgs) -> Result<Comparison> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let load = |path: &Path, side: Side| -> Result<Engine> {
        let artifact = artifact::load(path).with_context(|| format!("cannot load {}", path.display()))?;
        let candidates = match args.exact {
            Some(exact) if exact == side => CandidateParams { per_member: 0, ..CandidateParams::default() },
            _ => CandidateParams::default(),
        };
        Ok(Engine::with_candidates(artifact, candidates))
    };
    let (a, b) = (load(&args.a, Side::A)?, load(&args.b, Side::B)?);
    let config = a.artifact().metadata.config.clone();
    let options = input::load_options(args.skip_invalid);
    let (test, _) =
        input::dataset(std::slice::from_ref(&args.test), args.items.as_deref(), &config, &options)?;
    // Each test person's keys (their canonical key, then every alias).
    let mut keys: Vec<Vec<&str>> =
        (0..test.users.len() as u32).map(|u| test.users.id(u).into_iter().collect()).collect();
    for (key, user) in &test.aliases {
        keys[user.get()].push(key);
    }
    let mut held_out: Vec<Vec<ItemIdx>> = vec![Vec::new(); test.users.len()];
    for interaction in test.interactions.iter().filter(|i| i.weight > 0.0) {
        held_out[interaction.user.get()].push(interaction.item);
    }
    let history = |engine: &Engine, user: UserIdx| -> Vec<ItemIdx> {
        engine.history(user).into_iter().map(|(i, _)| i).collect()
    };
    let relevant = |engine: &Engine, history: &[ItemIdx], items: &[ItemIdx]| -> Relevant {
        let body = &engine.artifact().body;
        let mut known = Vec::new();
        let mut n_unknown = 0;
        for &item in items {
            match test.items.id(item.0).and_then(|id| body.items.get(id)) {
                Some(idx) if !history.contains(&ItemIdx(idx)) => known.push(ItemIdx(idx)),
                Some(_) => {}
                None => n_unknown += 1,
            }
        }
        known.sort_unstable();
        known.dedup();
        Relevant { items: known, n_unknown }
    };
    let find = |engine: &Engine, u: usize| keys[u].iter().find_map(|key| engine.lookup(key));
    let persons: Vec<(UserIdx, UserIdx, usize)> = (0..test.users.len())
        .filter_map(|u| Some((find(&a, u)?, find(&b, u)?, u)))
        .filter(|&(ua, ub, u)| {
            let (ra, rb) =
                (relevant(&a, &history(&a, ua), &held_out[u]), relevant(&b, &history(&b, ub), &held_out[u]));
            !ra.items.is_empty() || !rb.items.is_empty()
        })
        .collect();
    if persons.is_empty() {
        bail!("no person of {} is known to both artifacts with held-out items", args.test.display());
    }
    let scores: Vec<([f64; 6], [f64; 6], f64)> = persons
        .par_iter()
        .map(|&(ua, ub, u)| -> Result<([f64; 6], [f64; 6], f64)> {
            let (ha, hb) = (history(&a, ua), history(&b, ub));
            let (la, lb) = (ranked(&a, ua, &ha, args.k)?, ranked(&b, ub, &hb, args.k)?);
            let sa = score_list(&la, &relevant(&a, &ha, &held_out[u]), args.k);
            let sb = score_list(&lb, &relevant(&b, &hb, &held_out[u]), args.k);
            // Items are compared by identifier: the two artifacts may number them apart.
            let id = |engine: &Engine, i: ItemIdx| engine.artifact().body.items.id(i.0).map(str::to_owned);
            let ids_b: Vec<Option<String>> = lb.iter().map(|&i| id(&b, i)).collect();
            let shared = la.iter().filter(|&&i| id(&a, i).is_some_and(|x| ids_b.contains(&Some(x)))).count();
            Ok((sa, sb, if la.is_empty() { 1.0 } else { shared as f64 / la.len() as f64 }))
        })
        .collect::<Result<_>>()?;
    let mut metrics = Vec::new();
    for (m, name) in METRICS.iter().enumerate() {
        let xa: Vec<f64> = scores.iter().map(|s| s.0[m]).collect();
        let xb: Vec<f64> = scores.iter().map(|s| s.1[m]).collect();
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        let estimate = paired_bootstrap(&xa, &xb, 2_000, 20_261_203, 0.05)
            .context("the bootstrap needs at least two persons")?;
        metrics.push(ComparedMetric {
            metric: name,
            a: mean(&xa),
            b: mean(&xb),
            difference: estimate.effect,
            lower: estimate.lower,
            upper: estimate.upper,
            p_value: estimate.p_value,
        });
    }
    Ok(Comparison {
        a: a.artifact().metadata.model_version.clone(),
        b: b.artifact().metadata.model_version.clone(),
        persons: persons.len(),
        k: args.k,
        overlap: scores.iter().map(|s| s.2).sum::<f64>() / scores.len() as f64,
        metrics,
    })
}

/// `trainer compare`, printed.
pub fn print_comparison(args: &CompareArgs) -> Result<()> {
    let c = compare(args)?;
    if args.json {
        return say(serde_json::to_string_pretty(&c)?);
    }
    let mut text = format!(
        "A = {}{}\nB = {}{}\n{} persons, k = {}; B's lists hold {:.2} % of A's items\n\n",
        c.a,
        if args.exact == Some(Side::A) { " (every item scored)" } else { "" },
        c.b,
        if args.exact == Some(Side::B) { " (every item scored)" } else { "" },
        c.persons,
        c.k,
        100.0 * c.overlap
    );
    text.push_str(&format!(
        "{:<10} {:>9} {:>9} {:>10} {:>23} {:>8}\n",
        "metric", "A", "B", "B - A", "95% CI (paired bootstrap)", "p"
    ));
    for m in &c.metrics {
        text.push_str(&format!(
            "{:<10} {:>9.4} {:>9.4} {:>+10.4} {:>11.4} … {:<9.4} {:>8.4}\n",
            m.metric, m.a, m.b, m.difference, m.lower, m.upper, m.p_value
        ));
    }
    say(text.trim_end())
}

/// The experiment of `recommend --experiment FILE`: its definition as the server's
/// `GET /v1/experiments/{name}` returns it (`{"definition": …}`) or the definition alone.
pub fn read_experiment(path: &Path) -> Result<Experiment> {
    let text = crate::input::read_text(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let mut definition = value.get("definition").cloned().unwrap_or(value);
    // The server's form (`PUT /v1/experiments`) dates them in RFC 3339.
    for field in ["start", "end"] {
        if let Some(slot) = definition.get_mut(field)
            && let Some(text) = slot.as_str()
        {
            let at = datasets::schema::parse_timestamp(text)
                .map_err(|reason| anyhow::anyhow!("{}: field `{field}`: {reason}", path.display()))?;
            *slot = serde_json::Value::from(at);
        }
    }
    let experiment: Experiment = serde_json::from_value(definition)
        .with_context(|| format!("{} is not an experiment's definition", path.display()))?;
    // Checked as the server checks a definition; its placements' own settings are the
    // server's, so each is taken with the defaults here, at the largest `max_k` a server
    // allows (an override or a pin deeper than the default 100 may be valid there).
    let placement = models::serve::rules::PlacementConfig {
        max_k: models::serve::rules::MAX_K,
        ..models::serve::rules::PlacementConfig::default()
    };
    let placements: std::collections::BTreeMap<String, models::serve::rules::PlacementConfig> =
        experiment.placements.iter().map(|p| (p.clone(), placement.clone())).collect();
    experiment.validate(&placements).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(experiment)
}

/// Identifiers by kind for an exposure, from a person id of the `--users` file.
pub fn identifiers_of(id: &str) -> serde_json::Value {
    match Identifier::parse_key(id) {
        Some(identifier) => serde_json::json!({ identifier.kind.as_str(): identifier.value }),
        None => serde_json::json!({ "user_id": id }),
    }
}

/// Engines of the variants that name another model version, from `--variant-model
/// VERSION=PATH`.
pub fn variant_engines(pairs: &[String]) -> Result<HashMap<String, Engine>> {
    let mut engines = HashMap::new();
    for pair in pairs {
        let Some((version, path)) = pair.split_once('=') else {
            bail!("--variant-model takes VERSION=PATH, got `{pair}`");
        };
        let engine =
            Engine::new(artifact::load(Path::new(path)).with_context(|| format!("cannot load {path}"))?);
        if engine.artifact().metadata.model_version != version {
            bail!("{path} holds version {}, not {version}", engine.artifact().metadata.model_version);
        }
        engines.insert(version.to_string(), engine);
    }
    Ok(engines)
}

/// Writes one exposure line (the shape `POST /v1/exposures` takes) for a batch answer.
pub fn write_exposure(
    out: &mut impl Write,
    recommendation_id: &str,
    experiment: &str,
    variant: &str,
    id: &str,
    items: &[&str],
) -> Result<()> {
    let line = serde_json::json!({
        "recommendation_id": recommendation_id,
        "experiment": experiment,
        "variant": variant,
        "identifiers": identifiers_of(id),
        "channel": "email",
        "items": items,
    });
    writeln!(out, "{line}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_experiment_file_is_checked_as_the_server_checks_a_definition() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.json");
        let read = |definition: serde_json::Value| {
            std::fs::write(&path, definition.to_string()).unwrap();
            read_experiment(&path).map_err(|e| format!("{e:#}"))
        };
        let variant = |name: &str, share: f64| serde_json::json!({"name": name, "share": share});
        let with = |variants: Vec<serde_json::Value>| serde_json::json!({"name": "x", "placements": ["home"], "variants": variants, "start": 0});
        let message = read(with(vec![])).unwrap_err();
        assert!(message.contains("variants") && message.contains("2 to"), "{message}");
        let message = read(with(vec![variant("a", 0.0), variant("b", 0.0)])).unwrap_err();
        assert!(message.contains("share > 0"), "{message}");
        let message = read(with(vec![variant("a\tb", 1.0), variant("c", 1.0)])).unwrap_err();
        assert!(message.contains("variants[0].name"), "{message}");
        let read = read(serde_json::json!({"definition": with(vec![variant("a", 1.0), variant("b", 1.0)])}));
        assert_eq!(read.unwrap().variants.len(), 2);
        let message = format!("{:#}", read_experiment(Path::new("/dev/zero")).unwrap_err());
        assert!(message.contains("not a regular file"), "{message}");
    }
}

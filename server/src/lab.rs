//! Experiments at serving time: the definitions in force (kept in the store), each variant's
//! placement compiled into the view of the model version that answers it, the variant of a
//! request's person, and the report's rows gathered from the store.
//!
//! **Assignment.** A request for a covered placement while the experiment runs, with
//! identifiers, from a person who allows `analytics`, is answered by the person's variant:
//! the one recorded for any of the person's identifiers (the earliest exposure wins), else
//! [`models::experiment::assign::assign`] of the stitched person's key. The answer is an
//! exposure, recorded under the person's most trustworthy identifier, which records the
//! assignment too: an anonymous cookie assigned before login keeps its variant after, since
//! the cookie becomes one of the person's identifiers. Two persons already in different
//! variants who merge keep the variant of the earlier first exposure; the report counts them
//! as mixed and leaves them out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datasets::schema::{EventType, Identifier};
use models::experiment::report::{ExposureRow, OutcomeKind, OutcomeRow};
use models::experiment::{Experiment, assign};
use models::serve::rules::PlacementConfig;
use store::{ExposureTag, Store};

use crate::config::ServerConfig;
use crate::error::Result;
use crate::state::Serving;

/// Separates placement, experiment and variant in the name of a variant's compiled
/// placement; no configured placement name contains it.
const SEPARATOR: char = '/';

/// The name a variant's placement is compiled under.
pub fn variant_placement(placement: &str, experiment: &str, variant: &str) -> String {
    format!("{placement}{SEPARATOR}{experiment}{SEPARATOR}{variant}")
}

/// Whether `name` is a variant's compiled placement (never a configured one).
pub fn is_variant_placement(name: &str) -> bool {
    name.contains(SEPARATOR)
}

/// The placements the view of model `version` compiles: the configured ones, and the
/// placements of the variants of experiments not stopped that this version answers (those
/// naming it, and, when it is production, those naming no model).
pub fn placements_for(
    config: &ServerConfig,
    experiments: &[Arc<Experiment>],
    version: &str,
    is_production: bool,
) -> BTreeMap<String, PlacementConfig> {
    let mut placements = config.placements();
    let configured = placements.clone();
    for experiment in experiments.iter().filter(|e| e.stopped_at.is_none()) {
        for (i, variant) in experiment.variants.iter().enumerate() {
            let answers = match &variant.model {
                Some(model) => model == version,
                None => is_production,
            };
            if !answers {
                continue;
            }
            for name in &experiment.placements {
                let Some(base) = configured.get(name) else { continue };
                match experiment.placement(i, name, base) {
                    Ok(config) => {
                        placements.insert(variant_placement(name, &experiment.name, &variant.name), config);
                    }
                    Err(error) => {
                        tracing::error!(experiment = experiment.name, %error, "a variant's placement is invalid")
                    }
                }
            }
        }
    }
    placements
}

/// The experiments kept in the store; one whose definition cannot be read is logged and
/// skipped.
pub fn stored_experiments(store: &Store) -> Result<Vec<Arc<Experiment>>> {
    let mut experiments = Vec::new();
    for record in store.experiments()? {
        match serde_json::from_str::<Experiment>(&record.definition) {
            Ok(experiment) => experiments.push(Arc::new(experiment)),
            Err(error) => {
                tracing::error!(name = record.name, %error, "a stored experiment is unreadable; skipped")
            }
        }
    }
    Ok(experiments)
}

/// A request's place in an experiment.
pub struct Enrolled {
    /// The experiment.
    pub experiment: Arc<Experiment>,
    /// The variant (index).
    pub variant: usize,
    /// The model version that answers it.
    pub serving: Arc<Serving>,
    /// The variant's compiled placement.
    pub placement: String,
}

impl Enrolled {
    /// What the exposure records.
    pub fn tag(&self) -> ExposureTag {
        ExposureTag {
            experiment: self.experiment.name.clone(),
            variant: self.experiment.variants[self.variant].name.clone(),
        }
    }
}

/// The stitched person of `identifiers` now: their key and every identifier key of theirs;
/// `None` for placeholder values only, which identify nobody (such a request is answered
/// outside experiments: its exposure could not be recorded, and every such visitor would
/// share one variant).
pub fn person_keys(store: &Store, identifiers: &[Identifier]) -> Option<(String, Vec<String>)> {
    let ids = store.person_ids(identifiers)?;
    Some((ids.key.clone(), ids.identifiers.iter().map(Identifier::key).collect()))
}

/// The experiment running at `now` that covers `placement`, and the variant of the person
/// behind `identifiers` in it (see the module docs); `None` outside experiments. Only the
/// first running experiment (by name) that covers a placement assigns it.
pub fn enrol(
    experiments: &[Arc<Experiment>],
    production: &Arc<Serving>,
    versions: &BTreeMap<String, Arc<Serving>>,
    store: &Store,
    placement: &str,
    identifiers: &[Identifier],
    now: i64,
) -> Result<Option<Enrolled>, store::Error> {
    let Some(experiment) =
        experiments.iter().find(|e| e.is_running(now) && e.placements.iter().any(|p| p == placement))
    else {
        return Ok(None);
    };
    let Some((key, keys)) = person_keys(store, identifiers) else { return Ok(None) };
    let recorded = store.assignment(&experiment.name, &keys)?;
    let variant = recorded
        .and_then(|(a, _)| experiment.variants.iter().position(|v| v.name == a.variant))
        .unwrap_or_else(|| assign::assign(experiment, &key));
    let chosen = &experiment.variants[variant];
    let serving = match &chosen.model {
        Some(version) if version != production.model.version() => match versions.get(version) {
            Some(serving) => Arc::clone(serving),
            None => {
                tracing::error!(
                    experiment = experiment.name,
                    version,
                    "a variant's model is not loaded; not enrolled"
                );
                return Ok(None);
            }
        },
        _ => Arc::clone(production),
    };
    let name = variant_placement(placement, &experiment.name, &chosen.name);
    if !serving.view.placements.contains_key(&name) {
        return Ok(None);
    }
    Ok(Some(Enrolled { experiment: Arc::clone(experiment), variant, serving, placement: name }))
}

/// What a report is made of: exposures, outcomes, and each person's activity before the start.
pub type ReportRows = (Vec<ExposureRow>, Vec<OutcomeRow>, HashMap<String, f64>);

/// The rows of `experiment`'s report from the store: its exposures and the outcome events
/// from its start on, each with the stitched person they belong to now, and each person's
/// number of events before the start (CUPED's covariate). A person who refuses `analytics`
/// now (withdrawn since they were exposed) is left out altogether: they are not measured.
pub fn report_rows(store: &Store, experiment: &Experiment) -> Result<ReportRows, store::Error> {
    let mut rows = report_rows_of(store, &[experiment])?;
    Ok(rows.pop().unwrap_or_default())
}

/// [`report_rows`] of several experiments (one per entry, in order) from one scan of the
/// store's event log: what the dashboard shows.
pub fn report_rows_of(store: &Store, experiments: &[&Experiment]) -> Result<Vec<ReportRows>, store::Error> {
    // Per identifier key: the stitched person's key, `None` for one who refuses analytics.
    let mut persons: HashMap<String, Option<String>> = HashMap::new();
    // Per person key: whether they allow analytics (read once per person).
    let mut allowing: HashMap<String, bool> = HashMap::new();
    let mut person_of = |key: &str| -> Result<Option<String>, store::Error> {
        if let Some(person) = persons.get(key) {
            return Ok(person.clone());
        }
        let ids = Identifier::parse_key(key)
            .and_then(|identifier| store.person_ids(std::slice::from_ref(&identifier)));
        let person = match ids {
            Some(ids) => {
                let measured = match allowing.get(&ids.key) {
                    Some(&allows) => allows,
                    None => {
                        let allows = store.consent(&ids)?.get(store::ANALYTICS).copied().unwrap_or(true);
                        allowing.insert(ids.key.clone(), allows);
                        allows
                    }
                };
                measured.then_some(ids.key)
            }
            None => Some(key.to_string()),
        };
        persons.insert(key.to_string(), person.clone());
        Ok(person)
    };
    let mut rows: Vec<ReportRows> = Vec::with_capacity(experiments.len());
    // Per experiment: its start, and the last outcome time its attribution window reaches.
    let mut spans = Vec::with_capacity(experiments.len());
    for experiment in experiments {
        let mut exposures = Vec::new();
        for exposure in store.exposures(&experiment.name)? {
            let Some(variant) = experiment.variants.iter().position(|v| v.name == exposure.tag.variant)
            else {
                continue;
            };
            let Some(person) = person_of(&exposure.person)? else { continue };
            exposures.push(ExposureRow {
                person,
                id: exposure.id,
                variant,
                channel: exposure.channel,
                items: exposure.items,
                at: exposure.at,
            });
        }
        rows.push((exposures, Vec::new(), HashMap::new()));
        let window = (experiment.analysis.window_days * 86_400.0) as i64;
        let last =
            experiment.stopped_at.or(experiment.end).map_or(i64::MAX, |end| end.saturating_add(window));
        spans.push((experiment.start, last));
    }
    store.scan_events(0, &mut |event| {
        let kind = match EventType::parse(&event.event_type) {
            EventType::Click | EventType::EmailClick => Some(OutcomeKind::Click),
            EventType::AddToCart => Some(OutcomeKind::AddToCart),
            EventType::Purchase => Some(OutcomeKind::Purchase),
            EventType::Return => Some(OutcomeKind::Return),
            _ => None,
        };
        let mut person: Option<Option<String>> = None;
        for ((_, outcomes, pre), &(start, last)) in rows.iter_mut().zip(&spans) {
            let measured = (kind.is_some() && event.timestamp <= last) || event.timestamp < start;
            if !measured {
                continue;
            }
            let key = match &person {
                Some(key) => key.clone(),
                None => person.insert(person_of(&event.anchor)?).clone(),
            };
            let Some(key) = key else { continue };
            if event.timestamp < start {
                *pre.entry(key).or_default() += 1.0;
                continue;
            }
            let Some(kind) = kind else { continue };
            outcomes.push(OutcomeRow {
                person: key,
                kind,
                item: event.item_id.clone(),
                value: event.value.map_or(0.0, f64::from),
                channel: event.channel.clone(),
                at: event.timestamp,
                recommendation_id: event.recommendation_id.clone(),
            });
        }
        Ok(())
    })?;
    Ok(rows)
}

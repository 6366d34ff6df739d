//! The store's side of experiments and the model registry: experiments, exposures,
//! assignments and model records, each written through the writer like every change.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::record::{Assignment, ExperimentRecord, Exposure, ModelRecord};
use crate::writer::{LabChange, Op};
use crate::{Pending, Store};

/// What the experiment and registry API reads: experiments, exposures, assignments, models.
impl Store {
    /// Creates or replaces an experiment, durably.
    pub fn put_experiment(&self, experiment: ExperimentRecord) -> Result<()> {
        self.submit(|reply| Op::Lab { change: LabChange::Experiment(experiment), reply }).map(drop)
    }

    /// Every experiment, by name.
    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let mut experiments = Vec::new();
        self.shared.backend.read(&mut |r| {
            experiments.clear();
            r.scan_experiments(&mut |e| {
                experiments.push(e);
                Ok(())
            })
        })?;
        Ok(experiments)
    }

    /// Records exposures a channel reports (a batch sent by email, say), durably; per
    /// exposure, whether it was new (`false`: the same id at the same time was recorded
    /// already). Each records its person's assignment if none is recorded under its key.
    pub fn record_exposures(&self, exposures: Vec<Exposure>) -> Result<Vec<bool>> {
        self.submit(|reply| Op::Lab { change: LabChange::Exposures(exposures), reply })
    }

    /// Every exposure of `experiment`, stored or waiting for the next commit, oldest first.
    pub fn exposures(&self, experiment: &str) -> Result<Vec<Exposure>> {
        let copy = |pending: &[Pending]| -> Vec<Exposure> {
            let ours = pending.iter().filter(|p| p.tag.as_ref().is_some_and(|t| t.experiment == experiment));
            ours.filter_map(Pending::exposure).collect()
        };
        self.shared.read_with_pending(copy, |waiting| {
            let mut exposures = Vec::new();
            self.shared.backend.read(&mut |r| {
                exposures.clear();
                r.scan_exposures(experiment, &mut |e| {
                    exposures.push(e);
                    Ok(())
                })
            })?;
            let known: BTreeSet<String> = exposures.iter().map(|e| e.id.clone()).collect();
            exposures.extend(waiting.into_iter().filter(|e| !known.contains(&e.id)));
            exposures.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
            Ok(exposures)
        })
    }

    /// The person's assignment in `experiment`: of those recorded under any of `keys` (the
    /// person's identifier keys), stored or waiting, the earliest; and whether they disagree
    /// (a merge of two persons already in different variants).
    pub fn assignment(&self, experiment: &str, keys: &[String]) -> Result<Option<(Assignment, bool)>> {
        let copy = |pending: &[Pending]| -> Vec<Assignment> {
            let ours = pending.iter().filter(|p| keys.contains(&p.shown.person));
            ours.filter_map(|p| {
                let tag = p.tag.as_ref().filter(|t| t.experiment == experiment)?;
                Some(Assignment {
                    variant: tag.variant.clone(),
                    at: p.shown.at,
                    exposure_id: p.shown.id.clone(),
                })
            })
            .collect()
        };
        self.shared.read_with_pending(copy, |waiting| {
            let mut found: Vec<Assignment> = Vec::new();
            self.shared.backend.read(&mut |r| {
                found.clear();
                for key in keys {
                    found.extend(r.assignment(key, experiment)?);
                }
                Ok(())
            })?;
            found.extend(waiting);
            let disagree = found.windows(2).any(|w| w[0].variant != w[1].variant);
            Ok(found
                .into_iter()
                .min_by(|a, b| (a.at, &a.exposure_id).cmp(&(b.at, &b.exposure_id)))
                .map(|a| (a, disagree)))
        })
    }

    /// Creates or replaces a model version's registry entry, durably.
    pub fn put_model(&self, model: ModelRecord) -> Result<()> {
        self.submit(|reply| Op::Lab { change: LabChange::Model(model), reply }).map(drop)
    }

    /// The model registry, by version.
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        let mut models = Vec::new();
        self.shared.backend.read(&mut |r| {
            models.clear();
            r.scan_models(&mut |m| {
                models.push(m);
                Ok(())
            })
        })?;
        Ok(models)
    }
}

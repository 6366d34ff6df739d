//! Blending: a weighted sum of the members' per-query standardised scores.
//!
//! Each member's scores for one person are turned into z-scores over the catalog (mean 0,
//! standard deviation 1), so models on different scales mix evenly, then summed with the
//! configured weights: `s_j = Σ_m w_m · z_m,j`. We chose score fusion over reciprocal-rank
//! fusion because it is linear in the scores, costs `O(n_items)` per member instead of a
//! sort, and keeps the margin information that ranks throw away.
//!
//! [`tune_weights`] picks weights on held-out data by coordinate ascent on NDCG@k.

use std::collections::BTreeMap;

use datasets::{ItemIdx, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{Relevant, score_list};
use crate::rank::{add_weighted_z, standardise, top_k};
use crate::recommender::{Query, Recommender, TrainSet};

/// Blend settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlendParams {
    /// Weight per model name; models not listed get weight 0.
    pub weights: BTreeMap<String, f32>,
    /// Tune the weights on a validation split carved out of the training data.
    pub tune: bool,
    /// Share of each person's latest interactions held out for tuning.
    pub validation_fraction: f64,
    /// Most persons used for tuning (a deterministic sample), to bound its cost.
    pub max_tuning_users: usize,
    /// Cut-off of the NDCG that tuning maximises.
    pub k: usize,
}

impl Default for BlendParams {
    fn default() -> Self {
        let weights = [("als", 1.0), ("ease", 1.0), ("item_knn", 0.5), ("content", 0.2), ("popularity", 0.1)];
        BlendParams {
            weights: weights.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            tune: true,
            validation_fraction: 0.1,
            max_tuning_users: 3_000,
            k: 10,
        }
    }
}

impl BlendParams {
    /// Checks weights and tuning settings.
    pub fn validate(&self) -> Result<()> {
        if self.weights.values().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::InvalidParam {
                name: "blend.weights",
                reason: "must be finite numbers >= 0".into(),
            });
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(Error::InvalidParam {
                name: "blend.validation_fraction",
                reason: "must be between 0 and 1".into(),
            });
        }
        if self.k == 0 {
            return Err(Error::InvalidParam { name: "blend.k", reason: "must be at least 1".into() });
        }
        Ok(())
    }
}

/// A blend of fitted models; itself a [`Recommender`].
pub struct Blend<'a> {
    members: Vec<(&'a dyn Recommender, f32)>,
    n_items: usize,
}

impl<'a> Blend<'a> {
    /// Blends `models` with `weights` (by model name); members with weight 0 are left out.
    pub fn new(models: &[&'a dyn Recommender], weights: &BTreeMap<String, f32>) -> Result<Self> {
        let n_items = models.first().map_or(0, |m| m.n_items());
        if let Some(m) = models.iter().find(|m| m.n_items() != n_items) {
            return Err(Error::OutOfRange { what: "item", index: m.n_items(), len: n_items });
        }
        let members: Vec<(&dyn Recommender, f32)> = models
            .iter()
            .filter_map(|&m| weights.get(m.name()).copied().filter(|&w| w > 0.0).map(|w| (m, w)))
            .collect();
        Ok(Blend { members, n_items })
    }

    /// The members and their weights.
    pub fn members(&self) -> &[(&'a dyn Recommender, f32)] {
        &self.members
    }

    /// Each member's standardised score for `item`, times its weight: where a blended score
    /// comes from.
    pub fn contributions(&self, query: &Query<'_>, item: ItemIdx) -> Result<Vec<(&'static str, f32)>> {
        let mut buffer = vec![0f32; self.n_items];
        let mut out = Vec::with_capacity(self.members.len());
        for (model, weight) in &self.members {
            model.score_into(query, &mut buffer)?;
            standardise(&mut buffer);
            out.push((model.name(), weight * buffer.get(item.get()).copied().unwrap_or(0.0)));
        }
        Ok(out)
    }
}

impl Recommender for Blend<'_> {
    fn name(&self) -> &'static str {
        "blend"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// `Σ_m w_m · z_m` through [`crate::rank::add_weighted_z`], the fusion step the serving
    /// engine uses too, so offline metrics measure what serves.
    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()> {
        scores.iter_mut().for_each(|s| *s = 0.0);
        let mut buffer = vec![0f32; self.n_items];
        for (model, weight) in &self.members {
            model.score_into(query, &mut buffer)?;
            add_weighted_z(scores, &buffer, *weight);
        }
        Ok(())
    }

    fn explain(&self, query: &Query<'_>, item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        self.members.iter().flat_map(|(model, _)| model.explain(query, item)).take(3).collect()
    }
}

/// One tuning person's candidates: the union of each model's top items, with each model's
/// standardised score for them.
struct Candidates {
    items: Vec<ItemIdx>,
    /// `z[m][c]`: model `m`'s z-score of candidate `c`.
    z: Vec<Vec<f32>>,
    relevant: Relevant,
}

/// Chooses blend weights for `models` (fitted on `train`) that maximise mean NDCG@k on
/// `relevant`, by coordinate ascent over a grid, starting from the better of `start` and
/// each model alone. Returns the weights and the NDCG they reach.
pub fn tune_weights(
    models: &[&dyn Recommender],
    train: &TrainSet,
    relevant: &[Relevant],
    start: &BTreeMap<String, f32>,
    k: usize,
    max_users: usize,
) -> Result<(BTreeMap<String, f32>, f64)> {
    const POOL: usize = 100;
    let n_items = models.first().map_or(0, |m| m.n_items());
    let mut users: Vec<usize> = (0..relevant.len().min(train.n_users()))
        .filter(|&u| {
            !relevant[u].items.is_empty() && train.user_items.outer_view(u).is_some_and(|r| r.nnz() > 0)
        })
        .collect();
    if users.len() > max_users {
        // A deterministic, evenly spread sample.
        let step = users.len() as f64 / max_users as f64;
        users = (0..max_users).map(|i| users[(i as f64 * step) as usize]).collect();
    }
    let candidates: Vec<Candidates> = users
        .par_iter()
        .map_init(
            || vec![vec![0f32; n_items]; models.len()],
            |buffers, &u| -> Result<Candidates> {
                let history = train.history(UserIdx(u as u32));
                let query = Query { user: Some(UserIdx(u as u32)), history: &history };
                let seen: Vec<usize> = history.iter().map(|(i, _)| i.get()).collect();
                let mut pool: Vec<ItemIdx> = Vec::new();
                for (model, buffer) in models.iter().zip(buffers.iter_mut()) {
                    model.score_into(&query, buffer)?;
                    standardise(buffer);
                    pool.extend(
                        top_k(buffer, POOL, |i| seen.binary_search(&i).is_err()).into_iter().map(|s| s.item),
                    );
                }
                pool.sort_unstable();
                pool.dedup();
                let z = buffers.iter().map(|b| pool.iter().map(|i| b[i.get()]).collect()).collect();
                Ok(Candidates { items: pool, z, relevant: relevant[u].clone() })
            },
        )
        .collect::<Result<_>>()?;
    if candidates.is_empty() {
        return Ok((start.clone(), 0.0));
    }
    let names: Vec<&'static str> = models.iter().map(|m| m.name()).collect();
    let ndcg = |weights: &[f32]| -> f64 {
        let total: f64 = candidates
            .par_iter()
            .map(|c| {
                let blended: Vec<f32> = (0..c.items.len())
                    .map(|j| weights.iter().zip(&c.z).map(|(w, z)| w * z[j]).sum())
                    .collect();
                let ranked: Vec<ItemIdx> =
                    top_k(&blended, k, |_| true).into_iter().map(|s| c.items[s.item.get()]).collect();
                score_list(&ranked, &c.relevant, k)[2]
            })
            .sum();
        total / candidates.len() as f64
    };
    let mut best: Vec<f32> = names.iter().map(|n| start.get(*n).copied().unwrap_or(0.0)).collect();
    let mut best_score = ndcg(&best);
    for m in 0..names.len() {
        let mut alone = vec![0.0; names.len()];
        alone[m] = 1.0;
        let score = ndcg(&alone);
        if score > best_score {
            (best, best_score) = (alone, score);
        }
    }
    const GRID: [f32; 8] = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0];
    for _pass in 0..3 {
        let mut improved = false;
        for m in 0..names.len() {
            for &value in &GRID {
                if value == best[m] {
                    continue;
                }
                let mut trial = best.clone();
                trial[m] = value;
                if trial.iter().all(|&w| w == 0.0) {
                    continue;
                }
                let score = ndcg(&trial);
                if score > best_score + 1e-9 {
                    (best, best_score) = (trial, score);
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
    Ok((names.iter().map(|n| n.to_string()).zip(best).collect(), best_score))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::Fit;
    use crate::testing::{block_train, contract};

    /// Scores items by a fixed vector, whatever the person.
    struct Fixed(&'static str, Vec<f32>);
    impl Recommender for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn n_items(&self) -> usize {
            self.1.len()
        }
        fn score_into(&self, _: &Query<'_>, scores: &mut [f32]) -> Result<()> {
            scores.copy_from_slice(&self.1);
            Ok(())
        }
    }

    #[test]
    fn blends_standardised_scores() {
        // a: z = [-1.22, 0, 1.22]; b (scaled ×100, reversed): z = [1.22, 0, -1.22].
        let a = Fixed("a", vec![1.0, 2.0, 3.0]);
        let b = Fixed("b", vec![300.0, 200.0, 100.0]);
        let weights: BTreeMap<String, f32> = [("a".to_owned(), 2.0), ("b".to_owned(), 1.0)].into();
        let blend = Blend::new(&[&a, &b], &weights).unwrap();
        let mut scores = vec![0.0; 3];
        blend.score_into(&Query { user: None, history: &[] }, &mut scores).unwrap();
        // 2·z_a + z_b = z_a: the scale of b does not let it dominate.
        assert!(scores[2] > scores[1] && scores[1] > scores[0]);
        assert!((scores[2] - 1.5f32.sqrt()).abs() < 1e-5);
        let only_b: BTreeMap<String, f32> = [("b".to_owned(), 1.0)].into();
        assert_eq!(Blend::new(&[&a, &b], &only_b).unwrap().members().len(), 1);
    }

    #[test]
    fn tuning_prefers_the_model_that_ranks_held_out_items() {
        let train = block_train();
        let good = crate::ease::EaseParams { regularization: 1.0, ..Default::default() }.fit(&train).unwrap();
        let bad = Fixed("noise", (0..8).map(|i| ((i * 7) % 5) as f32).collect());
        let relevant: Vec<Relevant> = (0..8)
            .map(|u| Relevant { items: vec![ItemIdx((u / 4 * 4 + u % 4) as u32)], n_unknown: 0 })
            .collect();
        let start: BTreeMap<String, f32> = [("ease".to_owned(), 1.0), ("noise".to_owned(), 1.0)].into();
        let (weights, ndcg) = tune_weights(&[&good, &bad], &train, &relevant, &start, 1, 100).unwrap();
        assert_eq!(ndcg, 1.0);
        assert!(weights["ease"] > weights["noise"], "{weights:?}");
        contract(&crate::ease::EaseParams { regularization: 1.0, ..Default::default() }, &train);
    }
}

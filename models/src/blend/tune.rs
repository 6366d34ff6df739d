//! Choosing blend weights on a validation split: coordinate ascent on NDCG@k over a grid,
//! re-ranking each person's candidates through the serving fusion step.

use datasets::{ItemIdx, UserIdx};
use rayon::prelude::*;

use super::Weights;
use crate::error::Result;
use crate::metrics::{Relevant, score_list};
use crate::rank::{add_scaled_z, moments, top_k};
use crate::recommender::{ModelKind, Query, Recommender, TrainSet};

/// One tuning person's candidates: the union of each model's top items, with each model's
/// raw score for them and its moments over the whole catalog.
struct Candidates {
    items: Vec<ItemIdx>,
    /// `raw[m][c]`: model `m`'s score of candidate `c`.
    raw: Vec<Vec<f32>>,
    /// Model `m`'s (mean, 1 / standard deviation) over the catalog; `None` without a finite
    /// score.
    moments: Vec<Option<(f32, f32)>>,
    relevant: Relevant,
}

impl Candidates {
    /// The blended ranking of the candidates under `weights`: the serving fusion, restricted
    /// to the candidates (z-scores still relative to the whole catalog).
    fn rank(&self, weights: &[f32], k: usize) -> Vec<ItemIdx> {
        let mut blended = vec![0f32; self.items.len()];
        for ((raw, moments), &weight) in self.raw.iter().zip(&self.moments).zip(weights) {
            if let Some(moments) = moments.filter(|_| weight > 0.0) {
                add_scaled_z(&mut blended, raw, weight, moments);
            }
        }
        top_k(&blended, k, |_| true).into_iter().map(|s| self.items[s.item.get()]).collect()
    }
}

/// Chooses blend weights for `models` (fitted on `train`) that maximise mean NDCG@k on
/// `relevant`, by coordinate ascent over a grid, starting from the better of `start` and
/// each model alone. Each person is scored once; the search re-ranks the union of every
/// model's top items through the same fusion step as serving, which gives the same top k
/// as scoring the whole catalog whenever the blend's top k lies in that union. Returns the
/// weights and the NDCG they reach.
pub fn tune_weights(
    models: &[(ModelKind, &dyn Recommender)],
    train: &TrainSet,
    relevant: &[Relevant],
    start: &Weights,
    k: usize,
    max_users: usize,
) -> Result<(Weights, f64)> {
    const POOL: usize = 100;
    let n_items = models.first().map_or(0, |(_, m)| m.n_items());
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
                let mut all_moments = Vec::with_capacity(models.len());
                for ((_, model), buffer) in models.iter().zip(buffers.iter_mut()) {
                    model.score_into(&query, buffer)?;
                    all_moments.push(moments(buffer));
                    pool.extend(
                        top_k(buffer, POOL, |i| seen.binary_search(&i).is_err()).into_iter().map(|s| s.item),
                    );
                }
                pool.sort_unstable();
                pool.dedup();
                let raw = buffers.iter().map(|b| pool.iter().map(|i| b[i.get()]).collect()).collect();
                Ok(Candidates { items: pool, raw, moments: all_moments, relevant: relevant[u].clone() })
            },
        )
        .collect::<Result<_>>()?;
    if candidates.is_empty() {
        return Ok((start.clone(), 0.0));
    }
    let ndcg = |weights: &[f32]| -> f64 {
        let total: f64 =
            candidates.par_iter().map(|c| score_list(&c.rank(weights, k), &c.relevant, k)[2]).sum();
        total / candidates.len() as f64
    };
    let mut best: Vec<f32> = models.iter().map(|(kind, _)| start.get(kind).copied().unwrap_or(0.0)).collect();
    let mut best_score = ndcg(&best);
    for m in 0..models.len() {
        let mut alone = vec![0.0; models.len()];
        alone[m] = 1.0;
        let score = ndcg(&alone);
        if score > best_score {
            (best, best_score) = (alone, score);
        }
    }
    const GRID: [f32; 8] = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0];
    for _pass in 0..3 {
        let mut improved = false;
        for m in 0..models.len() {
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
    Ok((models.iter().map(|(kind, _)| *kind).zip(best).collect(), best_score))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::Fit;
    use crate::testing::{block_train, contract};

    /// Scores items by a fixed vector, whatever the person.
    struct Fixed(Vec<f32>);
    impl Recommender for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn n_items(&self) -> usize {
            self.0.len()
        }
        fn score_into(&self, _: &Query<'_>, scores: &mut [f32]) -> Result<()> {
            scores.copy_from_slice(&self.0);
            Ok(())
        }
    }

    #[test]
    fn tuning_prefers_the_model_that_ranks_held_out_items() {
        let train = block_train();
        let good = crate::algorithms::ease::EaseParams { regularization: 1.0, ..Default::default() }
            .fit(&train)
            .unwrap();
        let bad = Fixed((0..8).map(|i| ((i * 7) % 5) as f32).collect());
        let relevant: Vec<Relevant> = (0..8)
            .map(|u| Relevant { items: vec![ItemIdx((u / 4 * 4 + u % 4) as u32)], n_unknown: 0 })
            .collect();
        let start: Weights = [(ModelKind::Ease, 1.0), (ModelKind::Popularity, 1.0)].into();
        let models: [(ModelKind, &dyn Recommender); 2] =
            [(ModelKind::Ease, &good), (ModelKind::Popularity, &bad)];
        let (weights, ndcg) = tune_weights(&models, &train, &relevant, &start, 1, 100).unwrap();
        assert_eq!(ndcg, 1.0);
        assert!(weights[&ModelKind::Ease] > weights[&ModelKind::Popularity], "{weights:?}");
        contract(&crate::algorithms::ease::EaseParams { regularization: 1.0, ..Default::default() }, &train);
    }
}

//! Blending: a weighted sum of the members' per-query standardised scores.
//!
//! Each member's scores for one person are turned into z-scores over the catalog (mean 0,
//! standard deviation 1), so models on different scales mix evenly, then summed with the
//! configured weights: `s_j = Σ_m w_m · z_m,j`. We chose score fusion over reciprocal-rank
//! fusion because it is linear in the scores, costs `O(n_items)` per member instead of a
//! sort, and keeps the margin information that ranks throw away.
//!
//! **Popularity de-bias**, per member: before standardising, member `m`'s scores are divided
//! by `(1 + n_j)^γ_m`, with `n_j` the number of training persons who hold item `j`
//! (multiplied, for a score ≤ 0, so a popular item is pushed down whatever the sign). Models
//! that learn from co-occurrence (EASE, item-kNN) rank the most popular items high for
//! everyone; a small `γ` (0.1–0.3) trades a little of that for items the person is more
//! specifically drawn to, which often raises NDCG and catalog coverage together. It costs on
//! ALS, whose factors already shrink popular items, so `γ` is per model (0 = off).
//!
//! [`tune::tune`] picks weights, de-bias and recency on a validation split.

pub mod tune;

use std::collections::BTreeMap;

use datasets::ItemIdx;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, require};
use crate::rank::{add_scaled_z, moments};
use crate::recommender::ModelKind;
use crate::recommender::{Query, Recommender};

/// Blend weights by model; a model not listed weighs 0.
pub type Weights = BTreeMap<ModelKind, f32>;

/// Blend settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlendParams {
    /// Weight per model; models not listed get weight 0.
    pub weights: Weights,
    /// Popularity de-bias `γ` per model (0 to 2; models not listed get 0, off).
    pub debias: Weights,
    /// Tune the weights and de-bias on a validation split carved out of the training data
    /// (when more than one model is enabled).
    pub tune: bool,
    /// Tune the person recency (`weights.recency`) too, when tuning.
    pub tune_recency: bool,
    /// Share of each person's latest interactions held out for tuning.
    pub validation_fraction: f64,
    /// Most persons used for tuning (a deterministic sample), to bound its cost.
    pub max_tuning_users: usize,
    /// Cut-off of the NDCG that tuning maximises.
    pub k: usize,
}

impl Default for BlendParams {
    fn default() -> Self {
        let weights = [
            (ModelKind::Als, 1.0),
            (ModelKind::Ease, 1.0),
            (ModelKind::ItemKnn, 0.5),
            (ModelKind::Content, 0.2),
            (ModelKind::Popularity, 0.1),
        ];
        BlendParams {
            weights: weights.into_iter().collect(),
            debias: Weights::new(),
            tune: true,
            tune_recency: true,
            validation_fraction: 0.1,
            max_tuning_users: 3_000,
            k: 10,
        }
    }
}

impl BlendParams {
    /// Checks weights and tuning settings.
    pub fn validate(&self) -> Result<()> {
        check_weights(&self.weights)
            .map_err(|reason| Error::InvalidParam { name: "blend.weights", reason })?;
        check_debias(&self.debias).map_err(|reason| Error::InvalidParam { name: "blend.debias", reason })?;
        require(
            self.validation_fraction > 0.0 && self.validation_fraction < 1.0,
            "blend.validation_fraction",
            "must be between 0 and 1",
        )?;
        require(self.k > 0, "blend.k", "must be at least 1")?;
        Ok(())
    }
}

/// Every weight is a finite number ≥ 0; the error names the first model that breaks it.
pub fn check_weights(weights: &Weights) -> std::result::Result<(), String> {
    match weights.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        Some((kind, w)) => Err(format!("weight of `{}` is {w}: must be a finite number >= 0", kind.as_str())),
        None => Ok(()),
    }
}

/// Every de-bias `γ` is a finite number between 0 and 2; the error names the first model
/// that breaks it.
pub fn check_debias(debias: &Weights) -> std::result::Result<(), String> {
    match debias.iter().find(|(_, g)| !(g.is_finite() && (0.0..=2.0).contains(*g))) {
        Some((kind, g)) => {
            Err(format!("de-bias of `{}` is {g}: must be a number between 0 and 2", kind.as_str()))
        }
        None => Ok(()),
    }
}

/// The de-bias divisors `(1 + n_j)^γ = exp(γ · log_popularity_j)` of every item.
pub(crate) fn divisors(gamma: f32, log_popularity: &[f32]) -> Vec<f32> {
    log_popularity.iter().map(|&lp| (gamma * lp).exp()).collect()
}

/// Per member kind, the de-bias divisors `(1 + n_j)^γ` of every item, computed once (per
/// artifact when serving) so a query only multiplies or divides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Debias {
    factors: BTreeMap<ModelKind, Vec<f32>>,
}

impl Debias {
    /// The divisors of `gammas` (models with `γ` > 0) over `log_popularity`
    /// ([`crate::recommender::TrainSet::log_popularity`]).
    pub fn new(gammas: &Weights, log_popularity: &[f32]) -> Self {
        let factors = gammas
            .iter()
            .filter(|(_, g)| **g > 0.0)
            .map(|(&kind, &g)| (kind, divisors(g, log_popularity)))
            .collect();
        Debias { factors }
    }

    /// The divisors of `kind`, if it is de-biased.
    pub fn factors(&self, kind: ModelKind) -> Option<&[f32]> {
        self.factors.get(&kind).map(Vec::as_slice)
    }
}

/// Divides each score by its item's divisor (multiplies a score ≤ 0, so a popular item goes
/// down whatever the sign): the module's popularity de-bias.
pub(crate) fn apply_debias(scores: &mut [f32], divisors: &[f32]) {
    for (s, &f) in scores.iter_mut().zip(divisors) {
        *s = if *s > 0.0 { *s / f } else { *s * f };
    }
}

/// One member of a blend: which model, the model, its weight and de-bias.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    /// Which model.
    pub kind: ModelKind,
    /// The fitted model.
    pub model: &'a dyn Recommender,
    /// Its weight (> 0).
    pub weight: f32,
    /// Its popularity de-bias divisors per item, if it is de-biased.
    pub debias: Option<&'a [f32]>,
}

/// What one member did for one query in [`Blend::fuse`].
#[derive(Debug)]
pub enum Fused {
    /// It scored: the (mean, 1 / standard deviation) of its raw scores, which turn them
    /// into its z-scores.
    Scored(f32, f32),
    /// It failed to score this query; its buffer holds NaN and it added nothing.
    Failed(Error),
    /// It gave no finite score; it added nothing.
    NoFiniteScore,
}

/// A blend of fitted models with their weights: the one scoring path of every
/// personalised answer. Serving ([`crate::serve::engine::Engine::answer`]), offline evaluation
/// (this type as a [`Recommender`]) and the tuner ([`tune::tune`]) all add members up
/// through [`crate::rank::add_scaled_z`].
pub struct Blend<'a> {
    members: Vec<Member<'a>>,
    n_items: usize,
}

impl<'a> Blend<'a> {
    /// Blends `models` with `weights`; members with weight 0 (or not listed) are left out.
    /// The blend scores the catalog of the first model; a member fitted on another catalog
    /// fails every query (the buffer length check of [`crate::recommender::check_query`]).
    pub fn new(models: &[(ModelKind, &'a dyn Recommender)], weights: &Weights) -> Self {
        let n_items = models.first().map_or(0, |(_, m)| m.n_items());
        let members = models
            .iter()
            .filter_map(|&(kind, model)| {
                weights.get(&kind).copied().filter(|&w| w > 0.0).map(|weight| Member {
                    kind,
                    model,
                    weight,
                    debias: None,
                })
            })
            .collect();
        Blend { members, n_items }
    }

    /// The blend with popularity de-bias ([`Debias`]) on its members; divisors that do not
    /// cover the blend's catalog leave a member as it is.
    pub fn debiased(mut self, debias: &'a Debias) -> Self {
        for member in &mut self.members {
            member.debias = debias.factors(member.kind).filter(|f| f.len() == self.n_items);
        }
        self
    }

    /// The members and their weights.
    pub fn members(&self) -> &[Member<'a>] {
        &self.members
    }

    /// Scores `query` with every member into its buffer of `buffers` (resized to one per
    /// member, each `n_items` long) and sets `total` to `Σ_m w_m · z_m`. A member that fails
    /// is left out of the sum (its buffer filled with NaN) and reported as such, so the
    /// caller decides whether the others may answer. One outcome per member, in order.
    pub fn fuse(&self, query: &Query<'_>, buffers: &mut Vec<Vec<f32>>, total: &mut [f32]) -> Vec<Fused> {
        total.fill(0.0);
        buffers.resize_with(self.members.len(), Vec::new);
        self.members
            .iter()
            .zip(buffers.iter_mut())
            .map(|(member, buffer)| {
                buffer.resize(self.n_items, 0.0);
                if let Err(error) = member.model.score_into(query, buffer) {
                    buffer.fill(f32::NAN);
                    return Fused::Failed(error);
                }
                if let Some(factors) = member.debias {
                    apply_debias(buffer, factors);
                }
                match moments(buffer) {
                    Some(moments) => {
                        add_scaled_z(total, buffer, member.weight, moments);
                        Fused::Scored(moments.0, moments.1)
                    }
                    None => Fused::NoFiniteScore,
                }
            })
            .collect()
    }

    /// Each member's weighted z-score for `item`: where a blended score comes from.
    pub fn contributions(&self, query: &Query<'_>, item: ItemIdx) -> Result<Vec<(ModelKind, f32)>> {
        let mut buffers = Vec::new();
        let mut total = vec![0f32; self.n_items];
        let fused = self.fuse(query, &mut buffers, &mut total);
        self.members
            .iter()
            .zip(&buffers)
            .zip(fused)
            .map(|((member, raw), fused)| match fused {
                Fused::Failed(error) => Err(error),
                Fused::NoFiniteScore => Ok((member.kind, 0.0)),
                Fused::Scored(mean, scale) => {
                    let s = raw.get(item.get()).copied().filter(|s| s.is_finite());
                    Ok((member.kind, s.map_or(0.0, |s| member.weight * (s - mean) * scale)))
                }
            })
            .collect()
    }
}

impl Recommender for Blend<'_> {
    fn name(&self) -> &'static str {
        "blend"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// `Σ_m w_m · z_m` through [`Blend::fuse`], as the serving engine scores; a failing
    /// member fails the query (offline, a silent gap would bias the metrics).
    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()> {
        crate::recommender::check_query(self.n_items, query, scores)?;
        let mut buffers = Vec::new();
        for fused in self.fuse(query, &mut buffers, scores) {
            if let Fused::Failed(error) = fused {
                return Err(error);
            }
        }
        Ok(())
    }

    /// The explanation of the first member, by weight, that can explain `item`.
    fn explain(&self, query: &Query<'_>, item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        let mut members: Vec<&Member<'_>> = self.members.iter().collect();
        members.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        members.iter().map(|m| m.model.explain(query, item)).find(|why| !why.is_empty()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let models: [(ModelKind, &dyn Recommender); 2] = [(ModelKind::Als, &a), (ModelKind::Ease, &b)];
        let weights: Weights = [(ModelKind::Als, 2.0), (ModelKind::Ease, 1.0)].into();
        let blend = Blend::new(&models, &weights);
        let mut scores = vec![0.0; 3];
        blend.score_into(&Query { user: None, history: &[], recency: &[] }, &mut scores).unwrap();
        // 2·z_a + z_b = z_a: the scale of b does not let it dominate.
        assert!(scores[2] > scores[1] && scores[1] > scores[0]);
        assert!((scores[2] - 1.5f32.sqrt()).abs() < 1e-5);
        let only_b: Weights = [(ModelKind::Ease, 1.0)].into();
        assert_eq!(Blend::new(&models, &only_b).members().len(), 1);
    }

    #[test]
    fn debias_divides_by_popularity_to_the_gamma() {
        // Items held by 0, 3 and 7 persons: ln(1 + n) = 0, ln 4, ln 8.
        let log_popularity = [0f32, 4f32.ln(), 8f32.ln()];
        let mut scores = [2.0f32, 2.0, -2.0];
        apply_debias(&mut scores, &divisors(0.5, &log_popularity));
        // 2 / 1^0.5, 2 / 4^0.5 = 1, −2 · 8^0.5: a popular item goes down whatever the sign.
        assert_eq!(scores[0], 2.0);
        assert!((scores[1] - 1.0).abs() < 1e-6);
        assert!((scores[2] + 2.0 * 8f32.sqrt()).abs() < 1e-5);
        let mut same = [2.0f32, 2.0, -2.0];
        apply_debias(&mut same, &divisors(0.0, &log_popularity));
        assert_eq!(same, [2.0, 2.0, -2.0]);
        // In a blend: two items tied on raw score, the less popular one wins under de-bias.
        let a = Fixed("a", vec![1.0, 3.0, 3.0]);
        let models: [(ModelKind, &dyn Recommender); 1] = [(ModelKind::Ease, &a)];
        let weights: Weights = [(ModelKind::Ease, 1.0)].into();
        let gamma: Weights = [(ModelKind::Ease, 0.3)].into();
        let pops = [0f32, 8f32.ln(), 2f32.ln()];
        let divisors = Debias::new(&gamma, &pops);
        assert!((divisors.factors(ModelKind::Ease).unwrap()[1] - 8f32.powf(0.3)).abs() < 1e-5);
        let blend = Blend::new(&models, &weights).debiased(&divisors);
        let mut scores = vec![0.0; 3];
        blend.score_into(&Query { user: None, history: &[], recency: &[] }, &mut scores).unwrap();
        assert!(scores[2] > scores[1], "{scores:?}");
        assert!(check_debias(&[(ModelKind::Als, 3.0)].into()).unwrap_err().contains("`als`"));
    }
}

//! Choosing the blend on a validation split: member weights, each member's popularity
//! de-bias `γ` and the person recency (`β`, `τ`), by NDCG@k, so that the choice transfers
//! to data the tuner never saw.
//!
//! A validation split of a few thousand persons is noisy: a search free to take any change
//! that raises its NDCG by a hair fits the noise, and on held-out data such a choice costs
//! both NDCG and catalog coverage (an earlier tuner kept raising item-kNN's weight to 2–4 on
//! validation, which lost on the test split). So:
//!
//! - **A change must be significant.** Each candidate change is compared with the current
//!   choice person by person (the same persons, so the comparison is paired): it is taken only
//!   if the mean per-person NDCG gain exceeds [`Z`] standard errors of that gain. A change that
//!   helps some persons by chance and hurts others is noise, and is refused; so are gains too
//!   small to tell apart from it.
//! - **Start from the defaults, not from a corner.** The search starts from the configured
//!   blend (or from one member alone, if that is significantly better) and moves one
//!   coordinate at a time over grids; without evidence it stays there.
//! - **Recency first, coarse to fine**: `τ` is chosen first at `β = 1` from an hour to a
//!   month, then `β` at that `τ`, at the start's weights; each setting re-scores the
//!   persons, so the grids are small. Then weights and de-bias by steepest ascent: each round
//!   takes the best significant single change.
//! - **Then coverage, within noise.** From the NDCG-best choice, de-bias changes that widen
//!   the share of the catalog recommended to anyone are taken as long as the NDCG-best
//!   choice does not beat them significantly and they give up at most 0.5 % of its NDCG:
//!   between choices the data cannot tell apart on NDCG, the one that serves more of the
//!   catalog wins. A user who wants
//!   NDCG alone sets the weights and `blend.tune = false`.
//!
//! Each person is scored once per recency setting; the search re-ranks the union of every
//! member's top items (with and without the strongest de-bias) through the serving fusion
//! step, which gives the same top k as scoring the whole catalog whenever the blend's top k
//! lies in that union.

use datasets::recency::Recency;
use datasets::{ItemIdx, UserIdx};
use rayon::prelude::*;

use super::{Weights, apply_debias, divisors};
use crate::error::Result;
use crate::metrics::{Relevant, evaluable_users, score_list, spread};
use crate::rank::{add_scaled_z, moments, top_k};
use crate::recommender::{ModelKind, Query, Recommender, TrainSet};

/// Candidates per member and person.
const POOL: usize = 100;
/// Member weights the search tries.
const WEIGHTS: [f32; 8] = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0];
/// De-bias exponents the search tries.
const GAMMAS: [f32; 5] = [0.0, 0.1, 0.2, 0.3, 0.5];
/// Recency time scales tried (days): an hour, a day, a week, a month.
const TAUS: [f32; 4] = [1.0 / 24.0, 1.0, 7.0, 30.0];
/// Recency strengths tried at the chosen time scale (after `β = 1`).
const BETAS: [f32; 3] = [0.5, 2.0, 4.0];
/// How many standard errors of the paired per-person gain a change must clear (one-sided:
/// a chance gain clears it about one time in six).
pub const Z: f64 = 1.0;
/// How many item scores one model may cost per scoring pass over the tuning persons (and the
/// validation metrics over the validation persons): each scores the whole catalog, so on
/// large catalogs fewer persons are used, `SCORE_BUDGET / items` (3,000 at 100,000 items,
/// 300 at a million), never fewer than [`MIN_TUNING_USERS`]. The tuner takes only significant
/// changes, so with fewer persons it stays nearer the configured blend.
pub const SCORE_BUDGET: usize = 300_000_000;
/// The fewest tuning persons [`SCORE_BUDGET`] leaves (when there are that many).
pub const MIN_TUNING_USERS: usize = 100;
/// The least coverage gain (share of the catalog) worth a step of [`widen`].
const MIN_COVERAGE_GAIN: f64 = 0.005;
/// The most NDCG (relative to the NDCG-best choice) [`widen`] gives up for coverage.
const MAX_NDCG_GIVEN: f64 = 0.005;

/// What the blend is: member weights, their de-bias and the person recency.
#[derive(Debug, Clone, PartialEq)]
pub struct BlendChoice {
    /// Weight per model.
    pub weights: Weights,
    /// Popularity de-bias `γ` per model.
    pub debias: Weights,
    /// Each person's own recency, applied to their history when scoring.
    pub recency: Recency,
}

/// What [`tune`] chose and how it scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuned {
    /// The chosen blend.
    pub choice: BlendChoice,
    /// Mean NDCG@k of the choice over the tuning persons.
    pub ndcg: f64,
    /// The same over each half of them (even and odd positions): how stable the figure is.
    pub folds: [f64; 2],
    /// Tuning persons.
    pub n_users: usize,
}

/// One tuning person's candidates under one recency setting.
struct Candidates {
    items: Vec<ItemIdx>,
    /// `factors[g][c]`: the de-bias divisor `(1 + n_c)^GAMMAS[g]` of candidate `c`.
    factors: Vec<Vec<f32>>,
    /// `raw[m][c]`: member `m`'s score of candidate `c`, before de-bias.
    raw: Vec<Vec<f32>>,
    /// `moments[m][g]`: member `m`'s (mean, 1 / std) over the catalog under de-bias `g`.
    moments: Vec<Vec<Option<(f32, f32)>>>,
    relevant: Relevant,
}

/// A point of the search: one weight and one de-bias index per member.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    weights: Vec<f32>,
    gammas: Vec<usize>,
}

impl Candidates {
    /// The blended ranking of the candidates at `point`: the serving fusion (de-bias, then
    /// z-scores relative to the whole catalog), restricted to the candidates.
    fn rank(&self, point: &Point, k: usize, (blended, debiased): &mut (Vec<f32>, Vec<f32>)) -> Vec<ItemIdx> {
        blended.clear();
        blended.resize(self.items.len(), 0.0);
        for (m, raw) in self.raw.iter().enumerate() {
            let (weight, g) = (point.weights[m], point.gammas[m]);
            let Some(moments) = self.moments[m][g].filter(|_| weight > 0.0) else { continue };
            if g == 0 {
                add_scaled_z(blended, raw, weight, moments);
            } else {
                debiased.clear();
                debiased.extend_from_slice(raw);
                apply_debias(debiased, &self.factors[g]);
                add_scaled_z(blended, debiased, weight, moments);
            }
        }
        top_k(blended, k, |_| true).into_iter().map(|s| self.items[s.item.get()]).collect()
    }
}

/// The tuning persons: those with relevant items and a training history, at most
/// `max_users` of them, evenly spread.
fn tuning_users(train: &TrainSet, relevant: &[Relevant], max_users: usize) -> Vec<usize> {
    spread(evaluable_users(train, relevant), max_users)
}

/// How many persons [`SCORE_BUDGET`] affords on a catalog of `n_items`.
pub fn affordable_users(n_items: usize) -> usize {
    (SCORE_BUDGET / n_items.max(1)).max(MIN_TUNING_USERS)
}

/// Scores every tuning person with every member under `recency`.
fn candidates(
    models: &[(ModelKind, &dyn Recommender)],
    train: &TrainSet,
    by_gamma: &[Vec<f32>],
    relevant: &[Relevant],
    users: &[usize],
    recency: &Recency,
) -> Result<Vec<Candidates>> {
    let n_items = models.first().map_or(0, |(_, m)| m.n_items());
    let strongest = GAMMAS.len() - 1;
    users
        .par_iter()
        .map_init(
            || (vec![vec![0f32; n_items]; models.len()], vec![0f32; n_items]),
            |(buffers, scratch), &u| -> Result<Candidates> {
                let user = UserIdx(u as u32);
                let history = train.history(user);
                let factors = train.recency(user, recency);
                let query = Query { user: Some(user), history: &history, recency: &factors };
                let seen: Vec<usize> = history.iter().map(|(i, _)| i.get()).collect();
                let unseen = |i: usize| seen.binary_search(&i).is_err();
                let mut pool: Vec<ItemIdx> = Vec::new();
                let mut all_moments = Vec::with_capacity(models.len());
                for ((_, model), buffer) in models.iter().zip(buffers.iter_mut()) {
                    model.score_into(&query, buffer)?;
                    pool.extend(top_k(buffer, POOL, unseen).into_iter().map(|s| s.item));
                    let mut per_gamma = vec![moments(buffer)];
                    for (g, divisors) in by_gamma.iter().enumerate().skip(1) {
                        scratch.copy_from_slice(buffer);
                        apply_debias(scratch, divisors);
                        per_gamma.push(moments(scratch));
                        if g == strongest {
                            pool.extend(top_k(scratch, POOL, unseen).into_iter().map(|s| s.item));
                        }
                    }
                    all_moments.push(per_gamma);
                }
                pool.sort_unstable();
                pool.dedup();
                let raw = buffers.iter().map(|b| pool.iter().map(|i| b[i.get()]).collect()).collect();
                let factors = by_gamma
                    .iter()
                    .map(|divisors| pool.iter().map(|i| divisors[i.get()]).collect())
                    .collect();
                Ok(Candidates {
                    items: pool,
                    factors,
                    raw,
                    moments: all_moments,
                    relevant: relevant[u].clone(),
                })
            },
        )
        .collect()
}

/// NDCG@k of `point` for each person.
fn per_person(persons: &[Candidates], point: &Point, k: usize) -> Vec<f64> {
    persons
        .par_iter()
        .map_init(Default::default, |buffers, c| score_list(&c.rank(point, k, buffers), &c.relevant, k)[2])
        .collect()
}

/// Mean NDCG over each half of the persons (even and odd positions), for the report.
fn halves(scores: &[f64]) -> [f64; 2] {
    let half = |parity: usize| {
        let values: Vec<f64> = scores.iter().skip(parity).step_by(2).copied().collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    [half(0), half(1)]
}

/// Whether `trial` beats `best` significantly: the mean per-person gain is positive and
/// above [`Z`] standard errors of the gain.
fn significant(trial: &[f64], best: &[f64]) -> bool {
    let n = trial.len().min(best.len());
    if n < 2 {
        return false;
    }
    let gains: Vec<f64> = trial.iter().zip(best).map(|(t, b)| t - b).collect();
    let mean = gains.iter().sum::<f64>() / n as f64;
    let variance = gains.iter().map(|g| (g - mean) * (g - mean)).sum::<f64>() / (n - 1) as f64;
    mean > 1e-12 && mean > Z * (variance / n as f64).sqrt()
}

/// Every point one change away from `point`: one member's weight to another grid value
/// (not all weights 0), or one weighted member's de-bias to another.
fn neighbours(point: &Point, weights_too: bool) -> Vec<Point> {
    let mut trials = Vec::new();
    for m in 0..point.weights.len() {
        for &value in WEIGHTS.iter().filter(|&&v| weights_too && v != point.weights[m]) {
            let mut trial = point.clone();
            trial.weights[m] = value;
            if trial.weights.iter().any(|&w| w > 0.0) {
                trials.push(trial);
            }
        }
        if point.weights[m] > 0.0 {
            for g in (0..GAMMAS.len()).filter(|&g| g != point.gammas[m]) {
                let mut trial = point.clone();
                trial.gammas[m] = g;
                trials.push(trial);
            }
        }
    }
    trials
}

/// Steepest ascent from `point` over member weights and de-bias, one coordinate at a time:
/// each round tries every single change and takes the best of those that are
/// [`significant`]; it stops when none is. Returns the point and its per-person scores.
fn ascend(persons: &[Candidates], mut point: Point, k: usize) -> (Point, Vec<f64>) {
    let mut best = per_person(persons, &point, k);
    for _round in 0..20 {
        let winner = neighbours(&point, true)
            .into_iter()
            .map(|trial| {
                let scores = per_person(persons, &trial, k);
                (trial, scores)
            })
            .filter(|(_, scores)| significant(scores, &best))
            .max_by(|a, b| mean(&a.1).total_cmp(&mean(&b.1)));
        match winner {
            Some((trial, scores)) => (point, best) = (trial, scores),
            None => break,
        }
    }
    (point, best)
}

/// Share of the catalog in anyone's top k at `point`.
fn coverage(persons: &[Candidates], point: &Point, k: usize, n_items: usize) -> f64 {
    let lists: Vec<Vec<ItemIdx>> =
        persons.par_iter().map_init(Default::default, |buffers, c| c.rank(point, k, buffers)).collect();
    let mut seen = vec![false; n_items];
    for item in lists.iter().flatten() {
        if let Some(slot) = seen.get_mut(item.get()) {
            *slot = true;
        }
    }
    seen.iter().filter(|&&s| s).count() as f64 / n_items.max(1) as f64
}

/// From the NDCG-best `point` (per-person scores `anchor`), widens catalog coverage by
/// de-bias while NDCG stays within noise of the anchor: each round takes, among the single
/// de-bias changes that raise coverage by at least [`MIN_COVERAGE_GAIN`], that the anchor
/// does not beat [`significant`]ly and that keep NDCG within [`MAX_NDCG_GIVEN`] of it, the
/// one of highest NDCG. Comparing with the anchor, not the last step, bounds what is given
/// up in all.
fn widen(
    persons: &[Candidates],
    mut point: Point,
    anchor: &[f64],
    k: usize,
    n_items: usize,
) -> (Point, Vec<f64>) {
    let mut scores = anchor.to_vec();
    let mut covered = coverage(persons, &point, k, n_items);
    for _round in 0..20 {
        let winner = neighbours(&point, false)
            .into_iter()
            .filter_map(|trial| {
                let trial_coverage = coverage(persons, &trial, k, n_items);
                if trial_coverage < covered + MIN_COVERAGE_GAIN {
                    return None;
                }
                let trial_scores = per_person(persons, &trial, k);
                let close = mean(&trial_scores) >= (1.0 - MAX_NDCG_GIVEN) * mean(anchor);
                (close && !significant(anchor, &trial_scores)).then_some((
                    trial,
                    trial_scores,
                    trial_coverage,
                ))
            })
            .max_by(|a, b| mean(&a.1).total_cmp(&mean(&b.1)));
        match winner {
            Some((trial, trial_scores, trial_coverage)) => {
                (point, scores, covered) = (trial, trial_scores, trial_coverage)
            }
            None => break,
        }
    }
    (point, scores)
}

/// The index of the grid value of [`GAMMAS`] nearest to `gamma`.
fn nearest_gamma(gamma: f32) -> usize {
    (0..GAMMAS.len())
        .min_by(|&a, &b| (GAMMAS[a] - gamma).abs().total_cmp(&(GAMMAS[b] - gamma).abs()))
        .unwrap_or(0)
}

fn mean(scores: &[f64]) -> f64 {
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

/// Chooses the blend for `models` (fitted on `train`) on `relevant`, starting from `start`;
/// see the module docs. At most `max_users` persons, fewer on large catalogs
/// ([`SCORE_BUDGET`]). With `tune_recency` false, the recency of `start` is kept. The start's
/// de-bias values are snapped to the search grid (0, 0.1, 0.2, 0.3, 0.5).
pub fn tune(
    models: &[(ModelKind, &dyn Recommender)],
    train: &TrainSet,
    relevant: &[Relevant],
    start: &BlendChoice,
    tune_recency: bool,
    k: usize,
    max_users: usize,
) -> Result<Tuned> {
    let n_items = models.first().map_or(0, |(_, m)| m.n_items());
    let users = tuning_users(train, relevant, max_users.min(affordable_users(n_items)));
    // The de-bias divisors of every item at each γ of the grid, once.
    let log_popularity = train.log_popularity();
    let by_gamma: Vec<Vec<f32>> = GAMMAS.iter().map(|&g| divisors(g, &log_popularity)).collect();
    let kinds: Vec<ModelKind> = models.iter().map(|(kind, _)| *kind).collect();
    let choice = |point: &Point, recency: Recency| BlendChoice {
        weights: kinds.iter().copied().zip(point.weights.iter().copied()).collect(),
        debias: kinds
            .iter()
            .copied()
            .zip(point.gammas.iter().map(|&g| GAMMAS[g]))
            .filter(|(_, g)| *g > 0.0)
            .collect(),
        recency,
    };
    let mut point = Point {
        weights: kinds.iter().map(|kind| start.weights.get(kind).copied().unwrap_or(0.0)).collect(),
        gammas: kinds
            .iter()
            .map(|kind| nearest_gamma(start.debias.get(kind).copied().unwrap_or(0.0)))
            .collect(),
    };
    if point.weights.iter().all(|&w| w == 0.0) {
        point.weights.iter_mut().for_each(|w| *w = 1.0);
    }
    if users.is_empty() {
        return Ok(Tuned { choice: choice(&point, start.recency), ndcg: 0.0, folds: [0.0; 2], n_users: 0 });
    }
    let score = |recency: &Recency| candidates(models, train, &by_gamma, relevant, &users, recency);
    let mut recency = start.recency;
    let mut persons = score(&recency)?;
    let mut best = per_person(&persons, &point, k);
    if tune_recency {
        // Recency first, at the start's weights: it moves every model's scores, so the
        // weights are chosen for the recency that will serve.
        let mut try_setting = |trial: Recency, best: &mut Vec<f64>, recency: &mut Recency| -> Result<()> {
            if trial == *recency {
                return Ok(());
            }
            let trial_persons = score(&trial)?;
            let trial_score = per_person(&trial_persons, &point, k);
            if significant(&trial_score, best) && mean(&trial_score) > mean(best) {
                (*best, *recency, persons) = (trial_score, trial, trial_persons);
            }
            Ok(())
        };
        for &days in &TAUS {
            try_setting(Recency { beta: 1.0, days }, &mut best, &mut recency)?;
        }
        if !recency.is_off() {
            let days = recency.days;
            for &beta in &BETAS {
                try_setting(Recency { beta, days }, &mut best, &mut recency)?;
            }
        }
    }
    // A member alone may beat the configured blend outright (item-kNN on data of pure
    // co-occurrence): start from the best member alone when it is significantly better.
    let alone = (0..point.weights.len())
        .map(|m| {
            let mut trial = point.clone();
            trial.weights.iter_mut().enumerate().for_each(|(i, w)| *w = if i == m { 1.0 } else { 0.0 });
            let scores = per_person(&persons, &trial, k);
            (trial, scores)
        })
        .filter(|(_, scores)| significant(scores, &best))
        .max_by(|a, b| mean(&a.1).total_cmp(&mean(&b.1)));
    if let Some((trial, _)) = alone {
        point = trial;
    }
    (point, best) = ascend(&persons, point, k);
    (point, best) = widen(&persons, point, &best, k, n_items);
    Ok(Tuned {
        choice: choice(&point, recency),
        ndcg: mean(&best),
        folds: halves(&best),
        n_users: users.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::Fit;
    use crate::testing::block_train;

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

    /// 40 persons in two taste blocks of four items; person `u` is in block `u % 2` and holds
    /// its items but item `(u / 2) % 4` of it, which is what they go on to take.
    #[test]
    fn large_catalogs_are_tuned_on_fewer_persons() {
        assert_eq!(affordable_users(10_000), 30_000);
        assert_eq!(affordable_users(100_000), 3_000);
        assert_eq!(affordable_users(1_000_000), 300);
        assert_eq!(affordable_users(100_000_000), MIN_TUNING_USERS);
        assert_eq!(crate::metrics::spread((0..10).collect(), 4), vec![0, 2, 5, 7]);
        assert_eq!(crate::metrics::spread((0..3).collect(), 4), vec![0, 1, 2]);
    }

    fn forty_persons() -> (TrainSet, Vec<Relevant>) {
        let mut triplets = sprs::TriMatI::<f32, u32>::new((40, 8));
        let mut relevant = Vec::new();
        for user in 0..40 {
            let block = user % 2;
            let missing = block * 4 + (user / 2) % 4;
            for item in block * 4..block * 4 + 4 {
                if item != missing {
                    triplets.add_triplet(user, item, 1.0f32);
                }
            }
            relevant.push(Relevant { items: vec![ItemIdx(missing as u32)], n_unknown: 0 });
        }
        let mut train = block_train();
        train.user_items = triplets.to_csr::<usize>();
        train.item_users = train.user_items.transpose_view().to_csr();
        train.last_seen = vec![0; train.user_items.nnz()];
        (train, relevant)
    }

    #[test]
    fn tuning_prefers_the_model_that_ranks_held_out_items() {
        let (train, relevant) = forty_persons();
        let good = crate::algorithms::ease::EaseParams { regularization: 1.0, ..Default::default() }
            .fit(&train)
            .unwrap();
        let bad = Fixed((0..8).map(|i| ((i * 7) % 5) as f32).collect());
        let start = BlendChoice {
            // The bad model dominates the start: most persons are served wrong.
            weights: [(ModelKind::Ease, 0.05), (ModelKind::Popularity, 1.0)].into(),
            debias: Weights::new(),
            recency: Recency::OFF,
        };
        let models: [(ModelKind, &dyn Recommender); 2] =
            [(ModelKind::Ease, &good), (ModelKind::Popularity, &bad)];
        let tuned = tune(&models, &train, &relevant, &start, true, 1, 100).unwrap();
        assert_eq!(tuned.ndcg, 1.0);
        assert_eq!(tuned.folds, [1.0, 1.0]);
        assert_eq!(tuned.n_users, 40);
        let weights = &tuned.choice.weights;
        assert!(weights[&ModelKind::Ease] > weights[&ModelKind::Popularity], "{weights:?}");
        // Recency cannot improve a perfect score: it stays off.
        assert!(tuned.choice.recency.is_off());
    }

    #[test]
    fn a_change_that_may_be_chance_is_not_taken() {
        // Persons 4 (fold 0, holds 5–7) and 5 (fold 1, holds 4, 6, 7) go on to take items 4
        // and 5. Model A alone serves person 4 right and person 5 wrong; adding model B
        // fixes person 5 at weight 1 without changing person 4, and breaks person 4 at
        // weight 2 or more. One person's gain among two is no evidence (a mean gain of 0.5
        // with a standard error of 0.5), so B stays out.
        let train = block_train();
        let a = Fixed(vec![0.5, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        let b = Fixed(vec![0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]);
        let mut relevant = vec![Relevant::default(); 8];
        relevant[4] = Relevant { items: vec![ItemIdx(4)], n_unknown: 0 };
        relevant[5] = Relevant { items: vec![ItemIdx(5)], n_unknown: 0 };
        let start = BlendChoice {
            weights: [(ModelKind::Ease, 1.0)].into(),
            debias: Weights::new(),
            recency: Recency::OFF,
        };
        let models: [(ModelKind, &dyn Recommender); 2] = [(ModelKind::Ease, &a), (ModelKind::ItemKnn, &b)];
        let tuned = tune(&models, &train, &relevant, &start, false, 1, 100).unwrap();
        assert_eq!(tuned.n_users, 2);
        assert_eq!(tuned.choice.weights[&ModelKind::ItemKnn], 0.0, "{:?}", tuned.choice);
        assert_eq!(tuned.folds, [1.0, 0.0]);
    }

    #[test]
    fn debias_is_chosen_when_the_gain_is_clear() {
        // Items 0–3; item 2 is held by persons 6 and 7, item 3 by nobody. Item 2 scores a
        // little above item 3, and item 3 is what each person goes on to take: de-bias
        // (γ = 0.1 divides item 2's score by 3^0.1 = 1.116) puts it first for persons 0–5,
        // and changes nothing for 6 and 7, who already hold item 2.
        let mut triplets = sprs::TriMatI::<f32, u32>::new((8, 4));
        for (user, item) in [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 2), (7, 2)] {
            triplets.add_triplet(user, item, 1.0f32);
        }
        let mut train = block_train();
        train.user_items = triplets.to_csr::<usize>();
        train.item_users = train.user_items.transpose_view().to_csr();
        train.catalog.truncate(4);
        train.last_seen = vec![0; 8];
        let tilted = Fixed(vec![0.0, 0.0, 1.1, 1.0]);
        let relevant = vec![Relevant { items: vec![ItemIdx(3)], n_unknown: 0 }; 8];
        let start = BlendChoice {
            weights: [(ModelKind::Ease, 1.0)].into(),
            debias: Weights::new(),
            recency: Recency::OFF,
        };
        let models: [(ModelKind, &dyn Recommender); 1] = [(ModelKind::Ease, &tilted)];
        let tuned = tune(&models, &train, &relevant, &start, false, 1, 100).unwrap();
        assert!(tuned.choice.debias.get(&ModelKind::Ease).is_some_and(|&g| g > 0.0), "{:?}", tuned.choice);
        assert_eq!(tuned.ndcg, 1.0);
    }
}

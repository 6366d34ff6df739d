//! Offline ranking metrics at a cut-off `k`, computed over held-out interactions.
//!
//! For a person with relevant set `T` (held-out items not already in their training
//! history) and recommendations `R` (top `k`, never training items):
//! precision = |R∩T| / k; recall = |R∩T| / |T|; NDCG = DCG / IDCG with binary gains,
//! `DCG = Σ_{hits at rank r} 1 / log2(r + 1)` and IDCG over `min(k, |T|)` hits; MAP =
//! `Σ_{hits at rank r} precision@r / min(k, |T|)`; hit rate = 1 if any hit; MRR = 1 / rank of
//! the first hit. Each is averaged over persons with a non-empty `T` who are in the
//! training data. Coverage is the share of the catalog recommended to anyone.
//!
//! Beyond accuracy, so a gain's cost is visible: **novelty** is the mean, over every
//! recommended slot, of the item's popularity percentile (popularity = distinct training
//! persons; percentile `(mid-rank − 1) / (n − 1)` over the catalog by ascending popularity,
//! ties sharing their mean rank: 0 = the least popular item, 1 = the single most popular), so
//! *lower* is more novel; **diversity** is the mean number of distinct catalog categories in a
//! person's top k (0 without categories).

use datasets::{ItemIdx, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use datasets::recency::Recency;

use crate::rank::top_k;
use crate::recommender::{Query, Recommender, TrainSet};

/// What one person should have been recommended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relevant {
    /// Held-out items known to the model, sorted, not in the person's training history.
    pub items: Vec<ItemIdx>,
    /// Held-out items the model cannot know (absent from training); they count in `|T|`.
    pub n_unknown: usize,
}

impl Relevant {
    fn len(&self) -> usize {
        self.items.len() + self.n_unknown
    }
}

/// Averages over the evaluated persons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Cut-off.
    pub k: usize,
    /// Mean precision@k.
    pub precision: f64,
    /// Mean recall@k.
    pub recall: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Mean average precision@k.
    pub map: f64,
    /// Share of persons with at least one hit.
    pub hit_rate: f64,
    /// Mean reciprocal rank of the first hit (0 without one).
    pub mrr: f64,
    /// Share of catalog items recommended to at least one person.
    pub coverage: f64,
    /// Mean popularity percentile of the recommended items (lower: more novel).
    #[serde(default)]
    pub novelty: f64,
    /// Mean number of distinct categories among a person's top k.
    #[serde(default)]
    pub diversity: f64,
    /// Persons evaluated.
    pub n_users: usize,
}

/// Per-person metrics for one ranked list; `ranked` holds the top-k items.
pub fn score_list(ranked: &[ItemIdx], relevant: &Relevant, k: usize) -> [f64; 6] {
    let n_relevant = relevant.len();
    if n_relevant == 0 || k == 0 {
        return [0.0; 6];
    }
    let (mut hits, mut dcg, mut ap, mut rr) = (0usize, 0f64, 0f64, 0f64);
    for (rank, item) in ranked.iter().take(k).enumerate() {
        if relevant.items.binary_search(item).is_ok() {
            hits += 1;
            dcg += 1.0 / ((rank + 2) as f64).log2();
            ap += hits as f64 / (rank + 1) as f64;
            if rr == 0.0 {
                rr = 1.0 / (rank + 1) as f64;
            }
        }
    }
    let ideal_hits = k.min(n_relevant);
    let idcg: f64 = (0..ideal_hits).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    [
        hits as f64 / k as f64,
        hits as f64 / n_relevant as f64,
        dcg / idcg,
        ap / ideal_hits as f64,
        if hits > 0 { 1.0 } else { 0.0 },
        rr,
    ]
}

/// Per item, its popularity percentile (see the module docs) from the number of distinct
/// persons who hold it.
pub fn popularity_percentiles(train: &TrainSet) -> Vec<f64> {
    let counts: Vec<usize> = train.item_users.outer_iterator().map(|row| row.nnz()).collect();
    let n = counts.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| counts[i]);
    let mut percentile = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start;
        while end < n && counts[order[end]] == counts[order[start]] {
            end += 1;
        }
        // Ranks start..end (0-based) tie: their mean, as a share of n − 1.
        let mid = (start + end - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            percentile[i] = mid / (n.max(2) - 1) as f64;
        }
        start = end;
    }
    percentile
}

/// The persons an evaluation can score: those with relevant items and a training history.
pub fn evaluable_users(train: &TrainSet, relevant: &[Relevant]) -> Vec<usize> {
    (0..relevant.len().min(train.n_users()))
        .filter(|&u| relevant[u].len() > 0 && train.user_items.outer_view(u).is_some_and(|row| row.nnz() > 0))
        .collect()
}

/// At most `max` of `users`, evenly spread over them (all of them when there are no more).
pub fn spread(users: Vec<usize>, max: usize) -> Vec<usize> {
    if users.len() <= max {
        return users;
    }
    let step = users.len() as f64 / max as f64;
    (0..max).map(|i| users[(i as f64 * step) as usize]).collect()
}

/// Which items an evaluation ranks (never the person's own training history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Candidates {
    /// Every item the model knows, catalog items nobody interacted with in training
    /// included (content can recommend a new item).
    #[default]
    All,
    /// Only items with a training interaction, as libraries that learn items from
    /// interactions alone rank: for side-by-side comparisons with them.
    Trained,
}

/// Evaluates `model`: for every person with relevant items, recommends the top `k` of the
/// `candidates` outside their training history, their history weighted by `recency`, and
/// scores the list.
pub fn evaluate(
    model: &dyn Recommender,
    train: &TrainSet,
    relevant: &[Relevant],
    k: usize,
    recency: &Recency,
    candidates: Candidates,
) -> Metrics {
    evaluate_users(model, train, relevant, &evaluable_users(train, relevant), k, recency, candidates)
}

/// [`evaluate`] on `users` only (indices from [`evaluable_users`]).
pub fn evaluate_users(
    model: &dyn Recommender,
    train: &TrainSet,
    relevant: &[Relevant],
    users: &[usize],
    k: usize,
    recency: &Recency,
    candidates: Candidates,
) -> Metrics {
    let n_items = model.n_items();
    // Items with a training interaction (rows of the item × person matrix; beyond it, none),
    // only when the candidates are limited to them.
    let trained: Option<Vec<bool>> = (candidates == Candidates::Trained).then(|| {
        (0..n_items).map(|i| train.item_users.outer_view(i).is_some_and(|row| row.nnz() > 0)).collect()
    });
    let eligible = |i: usize| trained.as_ref().is_none_or(|t| t.get(i).copied().unwrap_or(false));
    let per_user: Vec<([f64; 6], Vec<ItemIdx>)> = users
        .par_iter()
        .map_init(
            || vec![0f32; n_items],
            |scores, &u| {
                let history = train.history(UserIdx(u as u32));
                let factors = train.recency(UserIdx(u as u32), recency);
                let query = Query { user: Some(UserIdx(u as u32)), history: &history, recency: &factors };
                if model.score_into(&query, scores).is_err() {
                    return ([0.0; 6], Vec::new());
                }
                let seen: Vec<usize> = history.iter().map(|(i, _)| i.get()).collect();
                let ranked: Vec<ItemIdx> =
                    top_k(scores, k, |i| seen.binary_search(&i).is_err() && eligible(i))
                        .into_iter()
                        .map(|s| s.item)
                        .collect();
                (score_list(&ranked, &relevant[u], k), ranked)
            },
        )
        .collect();
    let n = per_user.len().max(1) as f64;
    let percentile = popularity_percentiles(train);
    let mut sums = [0f64; 6];
    let mut recommended = vec![false; n_items];
    let (mut slots, mut percentiles, mut categories) = (0usize, 0f64, 0usize);
    let mut distinct: Vec<&str> = Vec::new();
    for (values, ranked) in &per_user {
        for (sum, v) in sums.iter_mut().zip(values) {
            *sum += v;
        }
        distinct.clear();
        for item in ranked {
            recommended[item.get()] = true;
            slots += 1;
            percentiles += percentile.get(item.get()).copied().unwrap_or(0.0);
            if let Some(entry) = train.catalog.get(item.get()) {
                distinct.extend(entry.categories.iter().map(String::as_str));
            }
        }
        distinct.sort_unstable();
        distinct.dedup();
        categories += distinct.len();
    }
    Metrics {
        k,
        precision: sums[0] / n,
        recall: sums[1] / n,
        ndcg: sums[2] / n,
        map: sums[3] / n,
        hit_rate: sums[4] / n,
        mrr: sums[5] / n,
        coverage: recommended.iter().filter(|&&r| r).count() as f64 / n_items.max(1) as f64,
        novelty: percentiles / slots.max(1) as f64,
        diversity: categories as f64 / n,
        n_users: per_user.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(ids: &[u32]) -> Vec<ItemIdx> {
        ids.iter().map(|&i| ItemIdx(i)).collect()
    }

    #[test]
    fn hand_computed_list() {
        // Ranked [7, 1, 9, 2], relevant {1, 2, 5} plus one unknown item: |T| = 4, k = 4.
        let relevant = Relevant { items: items(&[1, 2, 5]), n_unknown: 1 };
        let [precision, recall, ndcg, map, hit, mrr] = score_list(&items(&[7, 1, 9, 2]), &relevant, 4);
        assert_eq!(precision, 0.5);
        assert_eq!(recall, 0.5);
        // DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3) + 1/2 + 1/log2(5).
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5 + 1.0 / 5f64.log2();
        assert!((ndcg - dcg / idcg).abs() < 1e-12);
        // AP = (1/2 + 2/4) / min(4, 4) = 0.25.
        assert_eq!(map, 0.25);
        assert_eq!((hit, mrr), (1.0, 0.5));
        assert_eq!(score_list(&items(&[3]), &relevant, 4), [0.0; 6]);
    }

    #[test]
    fn evaluate_excludes_training_items_and_averages() {
        let train = crate::testing::block_train();
        // A model that ranks items by index: person 0 holds 1, 2, 3, so gets [0, 4, 5].
        struct ByIndex;
        impl Recommender for ByIndex {
            fn name(&self) -> &'static str {
                "by_index"
            }
            fn n_items(&self) -> usize {
                8
            }
            fn score_into(&self, _: &Query<'_>, scores: &mut [f32]) -> crate::Result<()> {
                scores.iter_mut().enumerate().for_each(|(i, s)| *s = -(i as f32));
                Ok(())
            }
        }
        let mut relevant = vec![Relevant::default(); 8];
        relevant[0] = Relevant { items: items(&[0]), n_unknown: 0 };
        relevant[4] = Relevant { items: items(&[7]), n_unknown: 0 };
        let m = evaluate(&ByIndex, &train, &relevant, 3, &Recency::OFF, Candidates::All);
        assert_eq!(m.n_users, 2);
        // Person 0 hits at rank 1, person 4 (holds 5, 6, 7) gets [0, 1, 2]: no hit.
        assert_eq!((m.hit_rate, m.mrr, m.precision), (0.5, 0.5, 1.0 / 6.0));
        // Items 0, 4, 5 and 1, 2 recommended: 5 of 8.
        assert_eq!(m.coverage, 5.0 / 8.0);
        // Every item is held by 3 persons: all tie at the middle percentile, 0.5. No
        // categories in this catalog.
        assert_eq!((m.novelty, m.diversity), (0.5, 0.0));
    }

    #[test]
    fn trained_candidates_leave_out_items_nobody_interacted_with() {
        let train = crate::testing::block_train();
        // Ten items, the last two never in training; highest index first.
        struct Reversed;
        impl Recommender for Reversed {
            fn name(&self) -> &'static str {
                "reversed"
            }
            fn n_items(&self) -> usize {
                10
            }
            fn score_into(&self, _: &Query<'_>, scores: &mut [f32]) -> crate::Result<()> {
                scores.iter_mut().enumerate().for_each(|(i, s)| *s = i as f32);
                Ok(())
            }
        }
        let mut relevant = vec![Relevant::default(); 8];
        relevant[0] = Relevant { items: items(&[9]), n_unknown: 0 };
        let all = evaluate(&Reversed, &train, &relevant, 3, &Recency::OFF, Candidates::All);
        let trained = evaluate(&Reversed, &train, &relevant, 3, &Recency::OFF, Candidates::Trained);
        assert_eq!((all.hit_rate, trained.hit_rate), (1.0, 0.0));
    }

    #[test]
    fn popularity_percentiles_share_tied_ranks() {
        // Items held by 0, 2, 2 and 5 persons: ranks 0, (1, 2) tied at 1.5, 3; over n − 1 = 3.
        let mut triplets = sprs::TriMatI::<f32, u32>::new((5, 4));
        for (user, item) in [(0, 1), (1, 1), (0, 2), (2, 2), (0, 3), (1, 3), (2, 3), (3, 3), (4, 3)] {
            triplets.add_triplet(user, item, 1.0f32);
        }
        let mut train = crate::testing::block_train();
        train.user_items = triplets.to_csr::<usize>();
        train.item_users = train.user_items.transpose_view().to_csr();
        assert_eq!(popularity_percentiles(&train), vec![0.0, 0.5, 0.5, 1.0]);
    }
}

//! The contract every model fulfils, and the training input they share.

use datasets::dataset::{Dataset, Matrix};
use datasets::recency::Recency;
use datasets::schema::Item;
use datasets::{ItemIdx, UserIdx};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The models omnirec can train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Global and per-category popularity (the cold-start fallback).
    Popularity,
    /// Item-based nearest neighbours.
    ItemKnn,
    /// Implicit alternating least squares.
    Als,
    /// Closed-form shallow autoencoder.
    Ease,
    /// TF-IDF content similarity over the catalog.
    Content,
}

impl ModelKind {
    /// Every kind, in training order.
    pub const ALL: [ModelKind; 5] =
        [ModelKind::Popularity, ModelKind::ItemKnn, ModelKind::Als, ModelKind::Ease, ModelKind::Content];

    /// The model's name, as used in configs, blend weights and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Popularity => "popularity",
            ModelKind::ItemKnn => "item_knn",
            ModelKind::Als => "als",
            ModelKind::Ease => "ease",
            ModelKind::Content => "content",
        }
    }
}

/// What a model is asked about: a person and their history.
///
/// `user` is the person's index in the training data when known; `history` is what they
/// interacted with (item and confidence weight), which may include events newer than the
/// model; `recency` holds each history entry's factor of the person's own recency
/// ([`datasets::recency`]), or nothing when recency is off. Models score the history with
/// the factors (EASE with the factors alone: it is a binary model), and models that store
/// per-person state (ALS's factors) fold the weighted history in instead when `recency` is
/// given or `user` is `None`.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The person's index in the training data, if any.
    pub user: Option<UserIdx>,
    /// The person's items with confidence weights; sorted by item, no duplicates.
    pub history: &'a [(ItemIdx, f32)],
    /// One recency factor per `history` entry, or empty for all 1.
    pub recency: &'a [f32],
}

impl Query<'_> {
    /// The recency factor of history entry `i` (1 when recency is off).
    pub fn factor(&self, i: usize) -> f32 {
        self.recency.get(i).copied().unwrap_or(1.0)
    }

    /// The history as (item, confidence × recency factor) pairs.
    pub fn weighted(&self) -> impl Iterator<Item = (ItemIdx, f32)> + '_ {
        self.history.iter().enumerate().map(|(i, &(item, w))| (item, w * self.factor(i)))
    }
}

/// A fitted, immutable model: object-safe and `Send + Sync`, so a blend or a server can
/// hold several behind `&dyn Recommender`.
pub trait Recommender: Send + Sync {
    /// The model's short name (`als`, `ease`, …).
    fn name(&self) -> &'static str;

    /// Number of items the model scores.
    fn n_items(&self) -> usize;

    /// Writes one score per item into `scores` (length [`Recommender::n_items`]); higher is
    /// more relevant. Scores are comparable within one query only.
    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()>;

    /// The items of `query.history` that most support recommending `item`, with their
    /// contribution, strongest first; empty for models that cannot explain.
    fn explain(&self, _query: &Query<'_>, _item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        Vec::new()
    }

    /// [`Recommender::explain`] of each of `items` (an answer's), in their order: models
    /// whose lookups can share work across the items override it.
    fn explain_many(&self, query: &Query<'_>, items: &[ItemIdx]) -> Vec<Vec<(ItemIdx, f32)>> {
        items.iter().map(|&item| self.explain(query, item)).collect()
    }

    /// For models whose scores are zero outside a small part of the catalog (neighbours,
    /// pruned weights, shared terms): adds the query's non-zero scores into `out` (cleared
    /// by the caller, [`SparseScores::n_items`] = [`Recommender::n_items`]) and returns
    /// `true`; every item not touched scores exactly 0, as [`Recommender::score_into`]
    /// would give it. Models without such structure return `false` and touch nothing: the
    /// caller scores them in full. Fails as `score_into` does on a bad query.
    fn score_sparse(&self, _query: &Query<'_>, _out: &mut SparseScores) -> Result<bool> {
        Ok(false)
    }
}

/// Scores of one query that are zero but for the items touched: a dense buffer with the
/// list of touched items, so clearing costs what was touched, not the catalog (the candidate
/// stage of serving, [`crate::serve::candidates`]).
///
/// A bit per item says whether it was touched: the bits of a million items fit the first
/// level of cache, so an untouched item is read without reaching the values, and the
/// values, 4 bytes an item, are half what a slot with its generation beside it took.
#[derive(Debug, Clone, Default)]
pub struct SparseScores {
    values: Vec<f32>,
    /// Bit `i % 64` of word `i / 64`: item `i` touched since the last clear.
    seen: Vec<u64>,
    touched: Vec<u32>,
}

impl SparseScores {
    /// Empty scores over `n_items` items (all zero).
    pub fn new(n_items: usize) -> Self {
        SparseScores { values: vec![0.0; n_items], seen: vec![0; n_items.div_ceil(64)], touched: Vec::new() }
    }

    /// Resets every item to 0, and resizes to `n_items`.
    pub fn clear(&mut self, n_items: usize) {
        if self.touched.len() > self.seen.len() / 8 {
            self.seen.fill(0);
        } else {
            for &i in &self.touched {
                if let Some(word) = self.seen.get_mut(i as usize / 64) {
                    *word &= !(1 << (i % 64));
                }
            }
        }
        self.touched.clear();
        self.values.resize(n_items, 0.0);
        self.seen.resize(n_items.div_ceil(64), 0);
    }

    /// The number of items scored (touched or not).
    pub fn n_items(&self) -> usize {
        self.values.len()
    }

    /// Adds `value` to item `item`'s score; an item past the catalog is ignored (models check
    /// their input first).
    #[inline]
    pub fn add(&mut self, item: usize, value: f32) {
        let (Some(slot), Some(word)) = (self.values.get_mut(item), self.seen.get_mut(item / 64)) else {
            return;
        };
        let bit = 1 << (item % 64);
        if *word & bit != 0 {
            *slot += value;
        } else {
            *word |= bit;
            *slot = value;
            self.touched.push(item as u32);
        }
    }

    /// Item `item`'s score (0 when untouched or past the catalog).
    #[inline]
    pub fn get(&self, item: usize) -> f32 {
        match self.seen.get(item / 64) {
            Some(&word) if word & (1 << (item % 64)) != 0 => self.values.get(item).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// The items touched, in the order first touched.
    pub fn touched(&self) -> &[u32] {
        &self.touched
    }

    /// Applies `f` to every touched item's score (an untouched item stays 0, as `f` must keep
    /// 0 at 0: the blend's de-bias does).
    pub fn map_touched(&mut self, mut f: impl FnMut(usize, f32) -> f32) {
        for &i in &self.touched {
            if let Some(value) = self.values.get_mut(i as usize) {
                *value = f(i as usize, *value);
            }
        }
    }
}

/// The training input shared by all models: the confidence matrix in both orientations,
/// the catalog, and the interaction times.
#[derive(Debug, Clone)]
pub struct TrainSet {
    /// Person × item confidence (CSR).
    pub user_items: Matrix,
    /// Item × person confidence (CSR of the transpose).
    pub item_users: Matrix,
    /// One catalog entry per item.
    pub catalog: Vec<Item>,
    /// The latest interaction time per (person, item) entry of `user_items`, aligned with
    /// its data array; 0 when unknown.
    pub last_seen: Vec<i64>,
    /// The reference time of recency ("now" for the data):
    /// [`Dataset::reference_timestamp`].
    pub newest: i64,
}

/// A data set's person × item history: what [`TrainSet`] is made of before the item ×
/// person transpose. Built while the data set's rows are in memory; the transpose can wait
/// until they are released.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Person × item confidence (CSR): [`Dataset::matrix`].
    pub user_items: Matrix,
    /// The latest interaction time per entry of `user_items`, aligned with its data array.
    pub last_seen: Vec<i64>,
    /// [`Dataset::reference_timestamp`].
    pub newest: i64,
}

impl History {
    /// The history of `dataset`.
    pub fn of(dataset: &Dataset) -> Self {
        let newest = dataset.reference_timestamp();
        let user_items = dataset.matrix_at(newest);
        let mut last_seen = vec![0i64; user_items.nnz()];
        let indptr = user_items.indptr();
        let indptr = indptr.raw_storage();
        for interaction in &dataset.interactions {
            let user = interaction.user.get();
            let row = &user_items.indices()[indptr[user]..indptr[user + 1]];
            if let Ok(pos) = row.binary_search(&interaction.item.0) {
                let slot = &mut last_seen[indptr[user] + pos];
                *slot = (*slot).max(interaction.timestamp);
            }
        }
        History { user_items, last_seen, newest }
    }
}

impl TrainSet {
    /// Builds the training input from a data set.
    pub fn from_dataset(dataset: &Dataset) -> Self {
        TrainSet::new(History::of(dataset), dataset.catalog.clone())
    }

    /// The training input of `history` over `catalog` (one entry per item).
    pub fn new(history: History, catalog: Vec<Item>) -> Self {
        let History { user_items, last_seen, newest } = history;
        let item_users = user_items.transpose_view().to_csr();
        TrainSet { user_items, item_users, catalog, last_seen, newest }
    }

    /// Number of persons.
    pub fn n_users(&self) -> usize {
        self.user_items.rows()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.user_items.cols()
    }

    /// A person's history as (item, confidence) pairs, sorted by item.
    pub fn history(&self, user: UserIdx) -> Vec<(ItemIdx, f32)> {
        row_items(&self.user_items, user)
    }

    /// The recency factors of a person's history entries (aligned with
    /// [`TrainSet::history`]), from each entry's latest time; empty when `recency` is off.
    pub fn recency(&self, user: UserIdx, recency: &Recency) -> Vec<f32> {
        let times = row_range(&self.user_items, user).and_then(|range| self.last_seen.get(range));
        recency.factors(times.unwrap_or(&[]), None)
    }

    /// Per item, `ln(1 + the number of persons who hold it)`: the popularity that blend
    /// de-biasing divides by ([`crate::blend`]).
    pub fn log_popularity(&self) -> Vec<f32> {
        log_popularity(&self.user_items)
    }
}

/// Per column of a person × item CSR matrix, `ln(1 + the persons with an entry in it)`.
pub fn log_popularity(user_items: &Matrix) -> Vec<f32> {
    let mut counts = vec![0u32; user_items.cols()];
    for &item in user_items.indices() {
        counts[item as usize] += 1;
    }
    counts.into_iter().map(|n| (n as f32).ln_1p()).collect()
}

/// The range of row `user`'s entries in a CSR matrix's data (for arrays aligned with it);
/// `None` for a row out of range.
pub fn row_range(matrix: &Matrix, user: UserIdx) -> Option<std::ops::Range<usize>> {
    let indptr = matrix.indptr();
    let indptr = indptr.raw_storage();
    Some(*indptr.get(user.get())?..*indptr.get(user.get() + 1)?)
}

/// Row `user` of a person × item CSR matrix as (item, weight) pairs, sorted by item; empty
/// for a row out of range.
pub fn row_items(matrix: &Matrix, user: UserIdx) -> Vec<(ItemIdx, f32)> {
    match matrix.outer_view(user.get()) {
        Some(row) => row.iter().map(|(item, &w)| (ItemIdx(item as u32), w)).collect(),
        None => Vec::new(),
    }
}

/// The one check of a query every model makes before scoring: a score buffer of `n_items`
/// entries and history items below `n_items`. Every model answers a bad query with this
/// error, never a panic and never by ignoring part of it.
pub fn check_query(n_items: usize, query: &Query<'_>, scores: &[f32]) -> Result<()> {
    if scores.len() != n_items {
        return Err(crate::Error::OutOfRange {
            what: "score buffer length",
            index: scores.len(),
            len: n_items,
        });
    }
    check_history(n_items, query)
}

/// [`check_query`] for [`Recommender::score_sparse`]: `out` must cover `n_items` items.
pub fn check_sparse(n_items: usize, query: &Query<'_>, out: &SparseScores) -> Result<()> {
    if out.n_items() != n_items {
        return Err(crate::Error::OutOfRange {
            what: "score buffer length",
            index: out.n_items(),
            len: n_items,
        });
    }
    check_history(n_items, query)
}

/// The part of [`check_query`] that is about the query: history items below `n_items` and
/// one recency factor per history entry (or none).
pub fn check_history(n_items: usize, query: &Query<'_>) -> Result<()> {
    if let Some(&(item, _)) = query.history.iter().find(|(item, _)| item.get() >= n_items) {
        return Err(crate::Error::OutOfRange { what: "item", index: item.get(), len: n_items });
    }
    if !query.recency.is_empty() && query.recency.len() != query.history.len() {
        return Err(crate::Error::OutOfRange {
            what: "recency factors for the history's entries",
            index: query.recency.len(),
            len: query.history.len(),
        });
    }
    Ok(())
}

/// Unfitted hyperparameters; fitting validates them and yields a model.
pub trait Fit {
    /// The fitted model.
    type Model: Recommender;

    /// Fits on `train`.
    fn fit(&self, train: &TrainSet) -> Result<Self::Model>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_scores_read_zero_after_a_clear() {
        let mut scores = SparseScores::new(5);
        scores.add(3, 1.5);
        scores.add(1, 2.0);
        scores.add(3, 0.5);
        scores.add(9, 7.0); // past the catalog: ignored
        assert_eq!((scores.get(3), scores.get(1), scores.get(0), scores.get(9)), (2.0, 2.0, 0.0, 0.0));
        assert_eq!(scores.touched(), [3, 1]);
        scores.map_touched(|i, s| s * i as f32);
        assert_eq!((scores.get(3), scores.get(1)), (6.0, 2.0));
        scores.clear(6);
        assert_eq!(scores.n_items(), 6);
        assert!(scores.touched().is_empty() && (0..6).all(|i| scores.get(i) == 0.0));
        scores.add(3, 1.0);
        assert_eq!((scores.get(3), scores.touched()), (1.0, &[3u32][..]));
        // A default buffer is empty until cleared to a size.
        let mut fresh = SparseScores::default();
        fresh.add(0, 1.0);
        assert_eq!((fresh.n_items(), fresh.get(0)), (0, 0.0));
        fresh.clear(2);
        fresh.add(0, 1.0);
        assert_eq!((fresh.get(0), fresh.get(1)), (1.0, 0.0));
    }

    use proptest::prelude::*;

    proptest! {
        /// Any run of additions and clears (to other sizes, with few or many items touched:
        /// both ways of clearing) reads as a map from item to its sum since the last clear.
        #[test]
        fn sparse_scores_are_the_sums_since_the_last_clear(
            steps in proptest::collection::vec(
                prop_oneof![
                    4 => (0usize..2_000, -4i8..4).prop_map(|(i, v)| (Some(i), f32::from(v))),
                    1 => (0usize..2_000).prop_map(|n| (None, n as f32)),
                ],
                0..200,
            )
        ) {
            let mut scores = SparseScores::new(1_300);
            let mut expected: std::collections::BTreeMap<usize, f32> = Default::default();
            let mut n = 1_300;
            for (item, value) in steps {
                match item {
                    Some(i) => {
                        scores.add(i, value);
                        if i < n {
                            *expected.entry(i).or_default() += value;
                        }
                    }
                    None => {
                        n = value as usize;
                        scores.clear(n);
                        expected.clear();
                    }
                }
                prop_assert_eq!(scores.n_items(), n);
                let touched: std::collections::BTreeSet<u32> = scores.touched().iter().copied().collect();
                prop_assert_eq!(touched.len(), scores.touched().len());
                prop_assert!(touched.iter().map(|&i| i as usize).eq(expected.keys().copied()));
                for i in 0..n + 70 {
                    prop_assert_eq!(scores.get(i), expected.get(&i).copied().unwrap_or(0.0), "item {}", i);
                }
            }
        }
    }
}

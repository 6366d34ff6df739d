//! EASE, the embarrassingly shallow autoencoder (Steck, "Embarrassingly Shallow
//! Autoencoders for Sparse Data", WWW 2019).
//!
//! With `X` the binary person × item matrix and `P = (XᵀX + λI)⁻¹`, the item-item weights
//! are the closed form `B = I − P · diag(1 / diag(P))` with a zero diagonal, that is
//! `B_ij = −P_ij / P_jj` for `i ≠ j`. A person's scores are `x_u B`, with `x_u` the person's recency factors (1 without
//! recency) on the items they hold. The dense `n × n`
//! solve limits it to catalogs of up to `max_items` items; larger ones are refused with a
//! message so the trainer can skip the model.
//!
//! After training, each item's row keeps only its `keep` weights of largest magnitude (the
//! items it raises or lowers most), stored sparse: `n × keep` index and weight pairs instead of `n²` floats
//! and scoring touches only the kept weights. The kept weights are rounded to half
//! precision, and catalogs of up to 65,536 items hold them with 16-bit item indices: 4 bytes
//! a weight, 40 MB instead of 400 MB dense at 10,000 items and the default 1,000 (the
//! artifact stores them in the 8-byte form of earlier versions). `keep = 0`, or a catalog of
//! at most `keep + 1` items, keeps the dense matrix.

use datasets::ItemIdx;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{MatMut, MatRef, Par};
use half::f16;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithms::half_scan::{round_to_half, widen};
use crate::algorithms::linalg::{WeightedRows, with_simd};
use crate::algorithms::spread::{SPREAD, spread_add};
use crate::artifact::integrity::finite;
use crate::error::{Error, Result, require};
use crate::recommender::{Fit, Query, Recommender, SparseScores, TrainSet, check_query, check_sparse};

/// Hyperparameters of EASE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EaseParams {
    /// L2 penalty `λ` on the item-item weights.
    pub regularization: f32,
    /// Largest catalog to fit; the dense solve costs `O(n³)` time and `O(n²)` memory.
    pub max_items: usize,
    /// Weights kept per item after training, the largest in magnitude; 0 keeps them all
    /// (dense).
    pub keep: usize,
}

impl Default for EaseParams {
    fn default() -> Self {
        EaseParams { regularization: 200.0, max_items: 20_000, keep: 400 }
    }
}

impl EaseParams {
    /// Checks that `regularization` is a positive number.
    pub fn validate(&self) -> Result<()> {
        require(
            self.regularization.is_finite() && self.regularization > 0.0,
            "ease.regularization",
            "must be a positive number",
        )?;
        Ok(())
    }
}

impl Fit for EaseParams {
    type Model = EaseModel;

    fn fit(&self, train: &TrainSet) -> Result<EaseModel> {
        self.validate()?;
        let n = train.n_items();
        if n > self.max_items {
            return Err(Error::Untrainable {
                model: "ease",
                reason: format!("the catalog has {n} items, above ease.max_items = {}", self.max_items),
            });
        }
        if train.user_items.nnz() == 0 {
            return Err(Error::Untrainable { model: "ease", reason: "no interactions".into() });
        }
        // Gram matrix XᵀX of the binarised data, row by row: row i sums the item sets of the
        // persons who have item i.
        let mut g = vec![0f32; n * n];
        g.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            if let Some(column) = train.item_users.outer_view(i) {
                for (user, _) in column.iter() {
                    if let Some(items) = train.user_items.outer_view(user) {
                        for (j, _) in items.iter() {
                            row[j] += 1.0;
                        }
                    }
                }
            }
            row[i] += self.regularization;
        });
        let par = Par::rayon(0);
        let scratch = llt::factor::cholesky_in_place_scratch::<f32>(n, par, Default::default())
            .or(llt::inverse::inverse_scratch::<f32>(n, par));
        let mut mem = MemBuffer::new(scratch);
        llt::factor::cholesky_in_place(
            MatMut::from_column_major_slice_mut(&mut g, n, n),
            Default::default(),
            par,
            MemStack::new(&mut mem),
            Default::default(),
        )
        .map_err(|e| Error::Numerical {
            model: "ease",
            reason: format!("Gram matrix is not positive definite: {e:?}"),
        })?;
        let mut p = vec![0f32; n * n];
        llt::inverse::inverse(
            MatMut::from_column_major_slice_mut(&mut p, n, n),
            MatRef::from_column_major_slice(&g, n, n),
            par,
            MemStack::new(&mut mem),
        );
        drop(g);
        // The inverse fills the lower triangle (column-major: p[j·n + i] for i ≥ j); P is
        // symmetric, so entry (i, j) = p[min·n + max].
        let at = |i: usize, j: usize| if i >= j { p[j * n + i] } else { p[i * n + j] };
        let weight = |i: usize, j: usize| if i == j { 0.0 } else { -at(i, j) / at(j, j) };
        let rows = if self.keep == 0 || self.keep + 1 >= n {
            let mut weights = vec![0f32; n * n];
            weights.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
                for (j, w) in row.iter_mut().enumerate() {
                    *w = weight(i, j);
                }
            });
            Rows::Dense(weights)
        } else {
            prune(n, self.keep, weight)
        };
        Ok(EaseModel { n_items: n, rows })
    }
}

/// Each row's `keep` weights of largest magnitude (ties to the lower item), sorted by item:
/// the negative weights push items down and count as much as the positive ones (keeping
/// only positive ones lost 1.8 % NDCG@10 on the synthetic data, by magnitude none). The
/// kept weights are rounded to half precision, the precision the model keeps them in.
fn prune(n: usize, keep: usize, weight: impl Fn(usize, usize) -> f32 + Sync) -> Rows {
    let kept: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut row: Vec<(u32, f32)> =
                (0..n).filter(|&j| j != i).map(|j| (j as u32, weight(i, j))).collect();
            let by_weight =
                |a: &(u32, f32), b: &(u32, f32)| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0));
            if row.len() > keep {
                row.select_nth_unstable_by(keep - 1, by_weight);
                row.truncate(keep);
                row.shrink_to_fit();
            }
            row.sort_unstable_by_key(|&(j, _)| j);
            row
        })
        .collect();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u32);
    let (mut items, mut weights) = (Vec::with_capacity(n * keep), Vec::with_capacity(n * keep));
    for row in kept {
        for (j, w) in row {
            items.push(j);
            weights.push(w);
        }
        offsets.push(items.len() as u32);
    }
    round_to_half(&mut weights);
    Rows::compact(n, Sparse { offsets, items, weights })
}

/// Sparse rows: row `i` holds `items[offsets[i]..offsets[i + 1]]` (ascending) with their
/// weights.
#[derive(Debug, Clone, PartialEq)]
struct Sparse<I, W> {
    offsets: Vec<u32>,
    items: Vec<I>,
    weights: Vec<W>,
}

/// An item index as stored in [`Sparse`] rows.
trait Index: Copy + Ord + Into<u32> + Send + Sync {}
impl Index for u16 {}
impl Index for u32 {}

/// A weight as stored in [`Sparse`] rows.
trait Weight: Copy + Send + Sync {
    fn get(self) -> f32;
    /// `dst[i] = src[i]` as `f32`, over equal lengths.
    fn widen(src: &[Self], dst: &mut [f32]);
}

impl Weight for f32 {
    fn get(self) -> f32 {
        self
    }

    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
}

impl Weight for f16 {
    fn get(self) -> f32 {
        self.to_f32()
    }

    fn widen(src: &[f16], dst: &mut [f32]) {
        widen(src, dst);
    }
}

impl<I: Index, W: Weight> Sparse<I, W> {
    /// The stored range of row `i`.
    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        Some(*self.offsets.get(i)? as usize..*self.offsets.get(i + 1)? as usize)
    }

    /// Offsets, lengths, ascending in-range items and finite weights, for `n_items`.
    fn check(&self, n_items: usize) -> std::result::Result<(), String> {
        let Sparse { offsets, items, weights } = self;
        if offsets.len() != n_items + 1 || offsets.first() != Some(&0) {
            return Err(format!("{} row offsets for {n_items} items", offsets.len()));
        }
        if items.len() != weights.len() || offsets.last().map(|&o| o as usize) != Some(items.len()) {
            return Err(format!("{} kept items, {} weights", items.len(), weights.len()));
        }
        for i in 0..n_items {
            let row = self.range(i).and_then(|r| items.get(r)).ok_or(format!("row {i} out of range"))?;
            if row.windows(2).any(|w| w[0] >= w[1])
                || row.last().is_some_and(|&j| j.into() as usize >= n_items)
            {
                return Err(format!("row {i}: items not ascending or out of range"));
            }
        }
        if let Some(at) = weights.iter().position(|w| !w.get().is_finite()) {
            return Err(format!("weights: entry {at} is not a finite number"));
        }
        Ok(())
    }

    /// `B[source][item]`, 0 where pruned.
    fn weight(&self, source: usize, item: usize) -> f32 {
        let Some(range) = self.range(source) else { return 0.0 };
        let found = self.items[range.clone()].binary_search_by(|&j| j.into().cmp(&(item as u32)));
        found.map_or(0.0, |at| self.weights[range.start + at].get())
    }

    /// Starts reading the items of the history's rows (see [`super::linalg::touch`]).
    fn touch_items(&self, query: &Query<'_>) {
        let rows = query.history.iter().filter_map(|&(item, _)| self.range(item.get()));
        super::linalg::touch(rows.map(|range| &self.items[range]));
    }

    /// Adds `factor × row` of every history item to `add(item, value)`.
    fn accumulate(&self, query: &Query<'_>, mut add: impl FnMut(usize, f32)) {
        let rows = || query.history.iter().filter_map(|&(item, _)| self.range(item.get()));
        self.touch_items(query);
        super::linalg::touch(rows().map(|range| &self.weights[range]));
        let mut widened = Vec::new();
        for (i, &(item, _)) in query.history.iter().enumerate() {
            let Some(range) = self.range(item.get()) else { continue };
            let factor = query.factor(i);
            widened.resize(range.len(), 0.0);
            W::widen(&self.weights[range.clone()], &mut widened);
            for (&j, &w) in self.items[range].iter().zip(&widened) {
                add(j.into() as usize, factor * w);
            }
        }
    }
}

impl<W: Weight> Sparse<u16, W> {
    /// [`Sparse::accumulate`] into a buffer that 16-bit items reach without a bounds check
    /// ([`spread_add`]); returns one past the highest item written.
    fn spread(&self, query: &Query<'_>, scores: &mut [f32; SPREAD]) -> usize {
        let rows = || query.history.iter().filter_map(|&(item, _)| self.range(item.get()));
        self.touch_items(query);
        super::linalg::touch(rows().map(|range| &self.weights[range]));
        let (mut widened, mut end) = (Vec::new(), 0);
        for (i, &(item, _)) in query.history.iter().enumerate() {
            let Some(range) = self.range(item.get()) else { continue };
            let factor = query.factor(i);
            widened.resize(range.len(), 0.0);
            W::widen(&self.weights[range.clone()], &mut widened);
            let row = &self.items[range];
            for (&j, &w) in row.iter().zip(&widened) {
                scores[usize::from(j)] += factor * w;
            }
            end = end.max(row.last().map_or(0, |&j| usize::from(j) + 1));
        }
        end
    }
}

impl<I: Index, W: Weight> Sparse<I, W> {
    /// Calls `found(at, w)` for every `(item, at)` of `targets` (sorted by item) that row
    /// `source` keeps, with its weight: the row (ascending) is walked 16 entries at a time
    /// against the targets, instead of a binary search per target, and a target is looked
    /// for in its chunk by one wide comparison.
    fn lookup(&self, source: usize, targets: &[(u32, usize)], mut found: impl FnMut(usize, f32)) {
        let Some(range) = self.range(source) else { return };
        let (row, weights) = (&self.items[range.clone()], &self.weights[range]);
        let (chunks, rest) = row.as_chunks::<16>();
        let mut next = 0;
        for (c, chunk) in chunks.iter().enumerate() {
            let last: u32 = chunk[15].into();
            while let Some(&(target, at)) = targets.get(next) {
                if target > last {
                    break;
                }
                let hits = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |hits, (l, &j)| hits | u32::from(j.into() == target) << l);
                if hits != 0 {
                    found(at, weights[c * 16 + hits.trailing_zeros() as usize].get());
                }
                next += 1;
            }
            if next == targets.len() {
                return;
            }
        }
        // The short last chunk: what is left of the targets lies beyond every whole one.
        let base = chunks.len() * 16;
        for &(target, at) in &targets[next..] {
            if let Some(k) = rest.iter().position(|&j| j.into() == target) {
                found(at, weights[base + k].get());
            }
        }
    }
}

/// The item-item weights, dense or pruned.
#[derive(Debug, Clone, PartialEq)]
enum Rows {
    /// Row-major `n × n`.
    Dense(Vec<f32>),
    /// Pruned rows as trained and stored.
    Pruned(Sparse<u32, f32>),
    /// Pruned rows in 4 bytes per weight instead of 8: 16-bit items (catalogs of at most
    /// 65,536) and half-precision weights, held when the stored weights are exactly half
    /// numbers (training rounds them). Scoring reads half the memory.
    Compact(Sparse<u16, f16>),
}

impl Rows {
    /// `Compact` when every item fits 16 bits and every weight is a half number; `Pruned`
    /// otherwise (including rows whose offsets or items a later check refuses).
    fn compact(n_items: usize, rows: Sparse<u32, f32>) -> Rows {
        let fits = n_items <= 1 << 16 && rows.items.iter().all(|&j| j <= u32::from(u16::MAX));
        let exact = rows.weights.iter().all(|&w| f16::from_f32(w).to_f32().to_bits() == w.to_bits());
        if !(fits && exact) {
            return Rows::Pruned(rows);
        }
        Rows::Compact(Sparse {
            items: rows.items.iter().map(|&j| j as u16).collect(),
            weights: rows.weights.iter().map(|&w| f16::from_f32(w)).collect(),
            offsets: rows.offsets,
        })
    }
}

/// Fitted item-item weights `B`: row `i` holds what item `i` adds to every item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct EaseModel {
    n_items: usize,
    rows: Rows,
}

/// [`EaseModel`] as the artifact stores it (the format of every version): pruned rows with
/// 32-bit items and weights, whatever the model holds in memory.
#[derive(Serialize, Deserialize)]
struct Stored {
    n_items: usize,
    rows: StoredRows,
}

#[derive(Serialize, Deserialize)]
enum StoredRows {
    Dense(Vec<f32>),
    Pruned { offsets: Vec<u32>, items: Vec<u32>, weights: Vec<f32> },
}

impl From<Stored> for EaseModel {
    fn from(stored: Stored) -> EaseModel {
        let rows = match stored.rows {
            StoredRows::Dense(weights) => Rows::Dense(weights),
            StoredRows::Pruned { offsets, items, weights } => {
                Rows::compact(stored.n_items, Sparse { offsets, items, weights })
            }
        };
        EaseModel { n_items: stored.n_items, rows }
    }
}

impl From<EaseModel> for Stored {
    fn from(model: EaseModel) -> Stored {
        let rows = match model.rows {
            Rows::Dense(weights) => StoredRows::Dense(weights),
            Rows::Pruned(Sparse { offsets, items, weights }) => {
                StoredRows::Pruned { offsets, items, weights }
            }
            Rows::Compact(Sparse { offsets, items, weights }) => StoredRows::Pruned {
                offsets,
                items: items.into_iter().map(u32::from).collect(),
                weights: weights.into_iter().map(f16::to_f32).collect(),
            },
        };
        Stored { n_items: model.n_items, rows }
    }
}

impl EaseModel {
    /// Checks decoded or freshly fitted weights for a catalog of `n_items`: an
    /// `n_items × n_items` matrix, or per item ascending in-range indices, of finite numbers.
    pub(crate) fn check(&self, n_items: usize) -> std::result::Result<(), String> {
        if self.n_items != n_items {
            return Err(format!("weights for {} items, expected {n_items}", self.n_items));
        }
        match &self.rows {
            Rows::Dense(weights) => {
                if Some(weights.len()) != n_items.checked_mul(n_items) {
                    return Err(format!("{} weights, expected {n_items} × {n_items}", weights.len()));
                }
                finite("weights", weights)
            }
            Rows::Pruned(rows) => rows.check(n_items),
            Rows::Compact(rows) => rows.check(n_items),
        }
    }

    /// How many weights are stored (`n²` dense).
    pub fn n_weights(&self) -> usize {
        match &self.rows {
            Rows::Dense(weights) => weights.len(),
            Rows::Pruned(rows) => rows.weights.len(),
            Rows::Compact(rows) => rows.weights.len(),
        }
    }

    /// `B[source][item]`, 0 where pruned.
    fn weight(&self, source: usize, item: usize) -> f32 {
        let n = self.n_items;
        match &self.rows {
            Rows::Dense(weights) => weights.get(source * n + item).copied().unwrap_or(0.0),
            Rows::Pruned(rows) => rows.weight(source, item),
            Rows::Compact(rows) => rows.weight(source, item),
        }
    }
}

impl Recommender for EaseModel {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()> {
        let n = self.n_items;
        check_query(n, query, scores)?;
        if let Rows::Compact(rows) = &self.rows
            && spread_add(scores, |spread| rows.spread(query, spread))
        {
            return Ok(());
        }
        scores.iter_mut().for_each(|s| *s = 0.0);
        let add = |j: usize, v: f32| {
            if let Some(score) = scores.get_mut(j) {
                *score += v;
            }
        };
        match &self.rows {
            Rows::Dense(weights) => {
                let rows = query.history.iter().enumerate().filter_map(|(i, &(item, _))| {
                    let row = weights.get(item.get() * n..(item.get() + 1) * n)?;
                    Some((row, query.factor(i)))
                });
                with_simd(WeightedRows { rows, out: scores });
            }
            Rows::Pruned(rows) => rows.accumulate(query, add),
            Rows::Compact(rows) => rows.accumulate(query, add),
        }
        Ok(())
    }

    /// Pruned rows only: dense weights touch every item.
    fn score_sparse(&self, query: &Query<'_>, out: &mut SparseScores) -> Result<bool> {
        if matches!(self.rows, Rows::Dense(_)) {
            return Ok(false);
        }
        check_sparse(self.n_items, query, out)?;
        match &self.rows {
            Rows::Pruned(rows) => rows.accumulate(query, |j, v| out.add(j, v)),
            Rows::Compact(rows) => rows.accumulate(query, |j, v| out.add(j, v)),
            Rows::Dense(_) => {}
        }
        Ok(true)
    }

    fn explain(&self, query: &Query<'_>, item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        self.explain_many(query, &[item]).pop().unwrap_or_default()
    }

    /// Pruned rows are read once per history item for all of `items`, each walked 16
    /// entries at a time against the sorted targets: a binary search per history item and
    /// target scattered reads over a tenth of a `home` answer at 10,000 items.
    fn explain_many(&self, query: &Query<'_>, items: &[ItemIdx]) -> Vec<Vec<(ItemIdx, f32)>> {
        let n = self.n_items;
        let mut explained: Vec<Vec<(ItemIdx, f32)>> = vec![Vec::new(); items.len()];
        // The targets in item order, each with its position in `items`.
        let mut targets: Vec<(u32, usize)> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| item.get() < n)
            .map(|(at, item)| (item.0, at))
            .collect();
        targets.sort_unstable();
        // The rows are walked one after another: their lines are asked for all at once
        // first, rather than each row's waiting on the walk of the one before.
        match &self.rows {
            Rows::Dense(_) => {}
            Rows::Pruned(rows) => rows.touch_items(query),
            Rows::Compact(rows) => rows.touch_items(query),
        }
        for (i, &(source, _)) in query.history.iter().enumerate() {
            if source.get() >= n {
                continue;
            }
            let factor = query.factor(i);
            let add = |at: usize, w: f32| {
                if factor * w > 0.0 {
                    explained[at].push((source, factor * w));
                }
            };
            match &self.rows {
                Rows::Dense(_) => {
                    let mut add = add;
                    for &(item, at) in &targets {
                        add(at, self.weight(source.get(), item as usize));
                    }
                }
                Rows::Pruned(rows) => rows.lookup(source.get(), &targets, add),
                Rows::Compact(rows) => rows.lookup(source.get(), &targets, add),
            }
        }
        for contributions in &mut explained {
            contributions.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        explained
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_train, contract};

    #[test]
    fn closed_form_on_a_two_item_case() {
        // One person holds items 0 and 1: XᵀX = [[1, 1], [1, 1]]; with λ = 1,
        // P = [[2, 1], [1, 2]]⁻¹ = [[2, −1], [−1, 2]] / 3, so B_01 = −P_01 / P_11 = 1/2.
        let mut triplets = sprs::TriMatI::<f32, u32>::new((1, 2));
        triplets.add_triplet(0, 0, 1.0f32);
        triplets.add_triplet(0, 1, 3.0f32);
        let mut train = block_train();
        train.user_items = triplets.to_csr::<usize>();
        train.item_users = train.user_items.transpose_view().to_csr();
        let model = EaseParams { regularization: 1.0, max_items: 10, keep: 0 }.fit(&train).unwrap();
        assert!((model.weight(0, 1) - 0.5).abs() < 1e-6 && (model.weight(1, 0) - 0.5).abs() < 1e-6);
        assert_eq!((model.weight(0, 0), model.weight(1, 1)), (0.0, 0.0));
    }

    #[test]
    fn recommends_the_missing_block_item() {
        contract(&EaseParams { regularization: 1.0, ..Default::default() }, &block_train());
    }

    #[test]
    fn pruned_rows_keep_the_strongest_weights_and_still_rank() {
        // Three kept per item: each item's block partners (all tied), not the other block.
        let train = block_train();
        let params = EaseParams { regularization: 1.0, keep: 3, ..Default::default() };
        contract(&params, &train);
        let (dense, pruned) =
            (EaseParams { keep: 0, ..params.clone() }.fit(&train).unwrap(), params.fit(&train).unwrap());
        let n = train.n_items();
        assert_eq!((dense.n_weights(), pruned.n_weights()), (n * n, 3 * n));
        pruned.check(n).unwrap();
        for i in 0..n {
            let mut row: Vec<f32> = (0..n).filter(|&j| j != i).map(|j| dense.weight(i, j)).collect();
            row.sort_by(|a, b| b.total_cmp(a));
            let kept: Vec<f32> = (0..n).map(|j| pruned.weight(i, j)).filter(|&w| w != 0.0).collect();
            // Whatever is kept is dense's value in half precision, and the kept ones are the
            // row's largest (the block partners; weights across blocks are 0).
            let half = |w: f32| f16::from_f32(w).to_f32();
            assert!(
                (0..n).all(|j| pruned.weight(i, j) == 0.0 || pruned.weight(i, j) == half(dense.weight(i, j)))
            );
            let row: Vec<f32> = row.into_iter().map(half).collect();
            assert!(kept.iter().all(|&w| w >= row[2]), "row {i}: {kept:?} vs {row:?}");
        }
        let broken = EaseModel {
            n_items: n,
            rows: Rows::Pruned(Sparse { offsets: vec![0; n + 1], items: vec![], weights: vec![] }),
        };
        broken.check(n).unwrap();
        let broken = EaseModel {
            n_items: n,
            rows: Rows::Pruned(Sparse {
                offsets: vec![0, 2, 2, 2, 2, 2, 2, 2, 2],
                items: vec![3, 3],
                weights: vec![1.0, 1.0],
            }),
        };
        assert!(broken.check(n).unwrap_err().contains("not ascending"));
        // Trained rows are held compact (16-bit items, half weights).
        assert!(matches!(pruned.rows, Rows::Compact(_)));
        // Compact rows score through the unchecked buffer, the same rows in 32 bits through
        // checked additions: the same numbers, bit for bit.
        let Rows::Compact(compact) = &pruned.rows else { unreachable!() };
        let wide = EaseModel {
            n_items: n,
            rows: Rows::Pruned(Sparse {
                offsets: compact.offsets.clone(),
                items: compact.items.iter().map(|&j| u32::from(j)).collect(),
                weights: compact.weights.iter().map(|w| w.to_f32()).collect(),
            }),
        };
        let history = [(ItemIdx(0), 2.0), (ItemIdx(1), 1.0), (ItemIdx(5), 3.0)];
        let recency = [1.5, 1.0, 0.25];
        for recency in [&[][..], &recency[..]] {
            let query = Query { user: None, history: &history, recency };
            let (mut a, mut b) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            pruned.score_into(&query, &mut a).unwrap();
            wide.score_into(&query, &mut b).unwrap();
            assert_eq!(
                a.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
            );
            assert!(a.iter().any(|&s| s != 0.0));
        }
    }

    #[test]
    fn explaining_many_items_at_once_matches_one_lookup_per_pair() {
        // 60 items, 40 kept per row (three 16-entry chunks and a partial one), weights of
        // both signs; asked for items anywhere in the rows, twice the same item, one out of
        // range, with recency factors.
        let n = 60;
        let weight = |i: usize, j: usize| ((i * 7 + j * 13) % 23) as f32 - 9.0;
        for rows in [
            prune(n, 40, weight),
            as_pruned(prune(n, 40, weight)),
            Rows::Dense((0..n * n).map(|x| weight(x / n, x % n)).collect()),
        ] {
            let model = EaseModel { n_items: n, rows };
            model.check(n).unwrap();
            let history: Vec<(ItemIdx, f32)> =
                [0u32, 5, 17, 31, 32, 59].iter().map(|&i| (ItemIdx(i), 1.0)).collect();
            let recency = [1.0, 0.5, 2.0, 1.0, 1.5, 1.0];
            let query = Query { user: None, history: &history, recency: &recency };
            let asked: Vec<ItemIdx> =
                [47u32, 1, 16, 17, 48, 3, 47, 200, 58].iter().map(|&i| ItemIdx(i)).collect();
            let many = model.explain_many(&query, &asked);
            assert_eq!(many.len(), asked.len());
            for (item, got) in asked.iter().zip(&many) {
                let mut want: Vec<(ItemIdx, f32)> = history
                    .iter()
                    .enumerate()
                    .filter(|_| item.get() < n)
                    .map(|(i, &(source, _))| (source, recency[i] * model.weight(source.get(), item.get())))
                    .filter(|(_, w)| *w > 0.0)
                    .collect();
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                assert_eq!(got, &want, "item {item:?}");
                assert_eq!(&model.explain(&query, *item), got);
            }
            assert!(many.iter().filter(|why| !why.is_empty()).count() >= 5);
        }
    }

    /// The same rows with 32-bit items and weights.
    fn as_pruned(rows: Rows) -> Rows {
        let Rows::Compact(Sparse { offsets, items, weights }) = rows else { panic!("not compact") };
        let items = items.into_iter().map(u32::from).collect();
        Rows::Pruned(Sparse { offsets, items, weights: weights.into_iter().map(f16::to_f32).collect() })
    }

    fn encode(model: &EaseModel) -> Vec<u8> {
        bincode::serde::encode_to_vec(model, bincode::config::standard()).unwrap()
    }

    #[test]
    fn compact_rows_are_stored_as_pruned_rows_and_score_the_same() {
        let train = block_train();
        let model = EaseParams { regularization: 1.0, keep: 3, ..Default::default() }.fit(&train).unwrap();
        let pruned = EaseModel { n_items: model.n_items, rows: as_pruned(model.rows.clone()) };
        // One stored format: the bytes of both are the same, and decoding holds them compact.
        assert_eq!(encode(&model), encode(&pruned));
        let (decoded, _): (EaseModel, _) =
            bincode::serde::decode_from_slice(&encode(&pruned), bincode::config::standard()).unwrap();
        assert_eq!(decoded, model);
        let history: Vec<(ItemIdx, f32)> = [0u32, 2, 5].iter().map(|&i| (ItemIdx(i), 1.0)).collect();
        let recency = [1.0, 0.25, 2.0];
        let query = Query { user: None, history: &history, recency: &recency };
        let score = |m: &EaseModel| {
            let mut scores = vec![0f32; m.n_items];
            m.score_into(&query, &mut scores).unwrap();
            scores
        };
        assert_eq!(score(&model), score(&pruned));
        let mut sparse = SparseScores::new(model.n_items);
        assert!(model.score_sparse(&query, &mut sparse).unwrap());
        assert!(!sparse.touched().is_empty());
        let dense = score(&model);
        assert!((0..model.n_items).all(|j| sparse.get(j) == dense[j]));
        // Weights a half cannot hold exactly (written before training rounded them) stay in
        // 32 bits.
        let Rows::Pruned(mut rows) = as_pruned(model.rows.clone()) else { unreachable!() };
        rows.weights[0] = 0.1;
        let old = EaseModel { n_items: model.n_items, rows: Rows::Pruned(rows) };
        let (decoded, _): (EaseModel, _) =
            bincode::serde::decode_from_slice(&encode(&old), bincode::config::standard()).unwrap();
        assert!(matches!(decoded.rows, Rows::Pruned(_)));
        assert_eq!(decoded, old);
    }

    #[test]
    fn large_catalogs_are_refused_with_a_reason() {
        let err = EaseParams { max_items: 4, ..Default::default() }.fit(&block_train()).unwrap_err();
        assert_eq!(err.to_string(), "cannot train ease: the catalog has 8 items, above ease.max_items = 4");
    }
}

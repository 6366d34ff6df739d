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
//! (80 MB instead of 400 MB at 10,000 items and the default 1,000), and scoring touches
//! only the kept weights. `keep = 0`, or a catalog of at most `keep + 1` items, keeps
//! the dense matrix.

use datasets::ItemIdx;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithms::linalg::{WeightedRows, with_simd};
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
        EaseParams { regularization: 200.0, max_items: 20_000, keep: 1000 }
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
/// only positive ones lost 1.8 % NDCG@10 on the synthetic data, by magnitude none).
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
    Rows::Pruned { offsets, items, weights }
}

/// The item-item weights, dense or pruned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Rows {
    /// Row-major `n × n`.
    Dense(Vec<f32>),
    /// Row `i` holds `items[offsets[i]..offsets[i + 1]]` (ascending) with their weights.
    Pruned { offsets: Vec<u32>, items: Vec<u32>, weights: Vec<f32> },
}

/// Fitted item-item weights `B`: row `i` holds what item `i` adds to every item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EaseModel {
    n_items: usize,
    rows: Rows,
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
            Rows::Pruned { offsets, items, weights } => {
                if offsets.len() != n_items + 1 || offsets.first() != Some(&0) {
                    return Err(format!("{} row offsets for {n_items} items", offsets.len()));
                }
                if items.len() != weights.len() || offsets.last().map(|&o| o as usize) != Some(items.len()) {
                    return Err(format!("{} kept items, {} weights", items.len(), weights.len()));
                }
                for (i, pair) in offsets.windows(2).enumerate() {
                    let row = items
                        .get(pair[0] as usize..pair[1] as usize)
                        .ok_or(format!("row {i} out of range"))?;
                    if row.windows(2).any(|w| w[0] >= w[1])
                        || row.last().is_some_and(|&j| j as usize >= n_items)
                    {
                        return Err(format!("row {i}: items not ascending or out of range"));
                    }
                }
                finite("weights", weights)
            }
        }
    }

    /// How many weights are stored (`n²` dense).
    pub fn n_weights(&self) -> usize {
        match &self.rows {
            Rows::Dense(weights) => weights.len(),
            Rows::Pruned { weights, .. } => weights.len(),
        }
    }

    /// `B[source][item]`, 0 where pruned.
    fn weight(&self, source: usize, item: usize) -> f32 {
        let n = self.n_items;
        match &self.rows {
            Rows::Dense(weights) => weights.get(source * n + item).copied().unwrap_or(0.0),
            Rows::Pruned { offsets, items, weights } => {
                let Some(range) = row_range(offsets, source) else { return 0.0 };
                match items[range.clone()].binary_search(&(item as u32)) {
                    Ok(at) => weights[range.start + at],
                    Err(_) => 0.0,
                }
            }
        }
    }
}

/// The stored range of row `i` of pruned rows.
fn row_range(offsets: &[u32], i: usize) -> Option<std::ops::Range<usize>> {
    Some(*offsets.get(i)? as usize..*offsets.get(i + 1)? as usize)
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
        scores.iter_mut().for_each(|s| *s = 0.0);
        match &self.rows {
            Rows::Dense(weights) => {
                let rows = query.history.iter().enumerate().filter_map(|(i, &(item, _))| {
                    let row = weights.get(item.get() * n..(item.get() + 1) * n)?;
                    Some((row, query.factor(i)))
                });
                with_simd(WeightedRows { rows, out: scores });
            }
            Rows::Pruned { offsets, items, weights } => {
                for (i, &(item, _)) in query.history.iter().enumerate() {
                    let Some(range) = row_range(offsets, item.get()) else { continue };
                    let factor = query.factor(i);
                    for (&j, &w) in items[range.clone()].iter().zip(&weights[range]) {
                        if let Some(score) = scores.get_mut(j as usize) {
                            *score += factor * w;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Pruned rows only: dense weights touch every item.
    fn score_sparse(&self, query: &Query<'_>, out: &mut SparseScores) -> Result<bool> {
        let Rows::Pruned { offsets, items, weights } = &self.rows else { return Ok(false) };
        check_sparse(self.n_items, query, out)?;
        for (i, &(item, _)) in query.history.iter().enumerate() {
            let Some(range) = row_range(offsets, item.get()) else { continue };
            let factor = query.factor(i);
            for (&j, &w) in items[range.clone()].iter().zip(&weights[range]) {
                out.add(j as usize, factor * w);
            }
        }
        Ok(true)
    }

    fn explain(&self, query: &Query<'_>, item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        self.explain_many(query, &[item]).pop().unwrap_or_default()
    }

    /// Pruned rows are read once per history item for all of `items`: each row (ascending)
    /// is walked 16 entries at a time against the sorted targets, instead of a binary search
    /// per history item and target (those scattered reads were a tenth of a `home` answer
    /// at 10,000 items).
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
        for (i, &(source, _)) in query.history.iter().enumerate() {
            if source.get() >= n {
                continue;
            }
            let factor = query.factor(i);
            let mut add = |at: usize, w: f32| {
                if factor * w > 0.0 {
                    explained[at].push((source, factor * w));
                }
            };
            match &self.rows {
                Rows::Dense(_) => {
                    for &(item, at) in &targets {
                        add(at, self.weight(source.get(), item as usize));
                    }
                }
                Rows::Pruned { offsets, items: kept, weights } => {
                    let Some(range) = row_range(offsets, source.get()) else { continue };
                    let (row, row_weights) = (&kept[range.clone()], &weights[range]);
                    let mut next = 0;
                    for (c, chunk) in row.chunks(16).enumerate() {
                        let Some(&last) = chunk.last() else { break };
                        while let Some(&(target, at)) = targets.get(next) {
                            if target > last {
                                break;
                            }
                            if let Some(k) = chunk.iter().position(|&j| j == target) {
                                add(at, row_weights[c * 16 + k]);
                            }
                            next += 1;
                        }
                        if next == targets.len() {
                            break;
                        }
                    }
                }
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
            // Whatever is kept is dense's value, and the kept ones are the row's largest (the
            // block partners; weights across blocks are 0).
            assert!((0..n).all(|j| pruned.weight(i, j) == 0.0 || pruned.weight(i, j) == dense.weight(i, j)));
            assert!(kept.iter().all(|&w| w >= row[2]), "row {i}: {kept:?} vs {row:?}");
        }
        let broken = EaseModel {
            n_items: n,
            rows: Rows::Pruned { offsets: vec![0; n + 1], items: vec![], weights: vec![] },
        };
        broken.check(n).unwrap();
        let broken = EaseModel {
            n_items: n,
            rows: Rows::Pruned {
                offsets: vec![0, 2, 2, 2, 2, 2, 2, 2, 2],
                items: vec![3, 3],
                weights: vec![1.0, 1.0],
            },
        };
        assert!(broken.check(n).unwrap_err().contains("not ascending"));
    }

    #[test]
    fn explaining_many_items_at_once_matches_one_lookup_per_pair() {
        // 60 items, 40 kept per row (three 16-entry chunks and a partial one), weights of
        // both signs; asked for items anywhere in the rows, twice the same item, one out of
        // range, with recency factors.
        let n = 60;
        let weight = |i: usize, j: usize| ((i * 7 + j * 13) % 23) as f32 - 9.0;
        for rows in [prune(n, 40, weight), Rows::Dense((0..n * n).map(|x| weight(x / n, x % n)).collect())] {
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

    #[test]
    fn large_catalogs_are_refused_with_a_reason() {
        let err = EaseParams { max_items: 4, ..Default::default() }.fit(&block_train()).unwrap_err();
        assert_eq!(err.to_string(), "cannot train ease: the catalog has 8 items, above ease.max_items = 4");
    }
}

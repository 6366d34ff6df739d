//! EASE, the embarrassingly shallow autoencoder (Steck, "Embarrassingly Shallow
//! Autoencoders for Sparse Data", WWW 2019).
//!
//! With `X` the binary person × item matrix and `P = (XᵀX + λI)⁻¹`, the item-item weights
//! are the closed form `B = I − P · diag(1 / diag(P))` with a zero diagonal, that is
//! `B_ij = −P_ij / P_jj` for `i ≠ j`. A person's scores are `x_u B`, with `x_u` the person's recency factors (1 without
//! recency) on the items they hold. The dense `n × n`
//! solve limits it to catalogs of up to `max_items` items; larger ones are refused with a
//! message so the trainer can skip the model.

use datasets::ItemIdx;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithms::linalg::{WeightedRows, with_simd};
use crate::artifact::integrity::finite;
use crate::error::{Error, Result, require};
use crate::recommender::{Fit, Query, Recommender, TrainSet, check_query};

/// Hyperparameters of EASE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EaseParams {
    /// L2 penalty `λ` on the item-item weights.
    pub regularization: f32,
    /// Largest catalog to fit; the dense solve costs `O(n³)` time and `O(n²)` memory.
    pub max_items: usize,
}

impl Default for EaseParams {
    fn default() -> Self {
        EaseParams { regularization: 200.0, max_items: 20_000 }
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
        let mut weights = vec![0f32; n * n];
        weights.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
            for (j, w) in row.iter_mut().enumerate() {
                *w = if i == j { 0.0 } else { -at(i, j) / at(j, j) };
            }
        });
        Ok(EaseModel { n_items: n, weights })
    }
}

/// Fitted item-item weights `B`, row-major: row `i` holds what item `i` adds to every item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EaseModel {
    n_items: usize,
    weights: Vec<f32>,
}

impl EaseModel {
    /// Checks decoded or freshly fitted weights for a catalog of `n_items`: an
    /// `n_items × n_items` matrix of finite numbers.
    pub(crate) fn check(&self, n_items: usize) -> std::result::Result<(), String> {
        if self.n_items != n_items || Some(self.weights.len()) != n_items.checked_mul(n_items) {
            return Err(format!(
                "{} weights for {} items, expected {n_items} × {n_items}",
                self.weights.len(),
                self.n_items
            ));
        }
        finite("weights", &self.weights)
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
        scores.iter_mut().for_each(|s| *s = 0.0);
        let rows = query.history.iter().enumerate().filter_map(|(i, &(item, _))| {
            let row = self.weights.get(item.get() * n..(item.get() + 1) * n)?;
            Some((row, query.factor(i)))
        });
        with_simd(WeightedRows { rows, out: scores });
        Ok(())
    }

    fn explain(&self, query: &Query<'_>, item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        let n = self.n_items;
        let mut contributions: Vec<(ItemIdx, f32)> = query
            .history
            .iter()
            .enumerate()
            .filter(|(_, (source, _))| source.get() < n && item.get() < n)
            .map(|(i, &(source, _))| (source, query.factor(i) * self.weights[source.get() * n + item.get()]))
            .filter(|(_, w)| *w > 0.0)
            .collect();
        contributions.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        contributions
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
        let mut triplets = sprs::TriMat::new((1, 2));
        triplets.add_triplet(0, 0, 1.0f32);
        triplets.add_triplet(0, 1, 3.0f32);
        let mut train = block_train();
        train.user_items = triplets.to_csr();
        train.item_users = train.user_items.transpose_view().to_csr();
        let model = EaseParams { regularization: 1.0, max_items: 10 }.fit(&train).unwrap();
        assert!((model.weights[1] - 0.5).abs() < 1e-6 && (model.weights[2] - 0.5).abs() < 1e-6);
        assert_eq!((model.weights[0], model.weights[3]), (0.0, 0.0));
    }

    #[test]
    fn recommends_the_missing_block_item() {
        contract(&EaseParams { regularization: 1.0, ..Default::default() }, &block_train());
    }

    #[test]
    fn large_catalogs_are_refused_with_a_reason() {
        let err = EaseParams { max_items: 4, ..Default::default() }.fit(&block_train()).unwrap_err();
        assert_eq!(err.to_string(), "cannot train ease: the catalog has 8 items, above ease.max_items = 4");
    }
}

//! Implicit-feedback alternating least squares (Hu, Koren, Volinsky, "Collaborative
//! Filtering for Implicit Feedback Datasets", ICDM 2008).
//!
//! With confidence `c_ui = 1 + α·r_ui / r̄` (`r̄` the mean stored weight, so `α` means the
//! same for ratings, counts and event weights) and preference `p_ui = 1` for observed pairs
//! (0 otherwise), ALS minimises
//! `Σ_u Σ_i c_ui (p_ui − x_uᵀ y_i)² + λ (Σ_u ‖x_u‖² + Σ_i ‖y_i‖²)`
//! by solving for all persons with items fixed, then all items with persons fixed. Each
//! person's system is `(YᵀY + λI + Σ_{i∈I_u} α r_ui y_i y_iᵀ) x_u = Σ_{i∈I_u} c_ui y_i`, where
//! `YᵀY` is computed once per sweep.
//!
//! The default solver is the conjugate-gradient variant (Takács, Pilászy, Tikk,
//! "Applications of the conjugate gradient method for implicit feedback collaborative
//! filtering", RecSys 2011): a few CG steps per row, warm-started from the previous factors,
//! never forming the `k × k` system. [`AlsSolver::Cholesky`] forms and factors it exactly.
//! All arithmetic is `f32`; rows are solved in parallel with rayon.

use std::sync::OnceLock;
use std::time::Instant;

use datasets::ItemIdx;
use datasets::dataset::Matrix;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{MatMut, MatRef, Par};
use pulp::{Simd, WithSimd};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithms::half_scan::{HalfFactors, round_to_half};
use crate::algorithms::linalg::{add_weighted_rows, axpy, copy_dot, dot, gram, row_dots, symv, with_simd};
use crate::artifact::integrity::finite;
use crate::error::{Error, Result};
use crate::progress::{Progress, Silent};
use crate::recommender::{Fit, Query, Recommender, TrainSet, check_query};

/// How each row's least-squares system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlsSolver {
    /// A few warm-started conjugate-gradient steps (fast; the `implicit` library's default).
    Cg,
    /// An exact Cholesky solve of the `k × k` system (slower, exact per sweep).
    Cholesky,
}

/// Hyperparameters of implicit ALS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlsParams {
    /// Latent dimensions `k`.
    pub factors: usize,
    /// Alternating sweeps (persons then items).
    pub iterations: usize,
    /// L2 penalty `λ`.
    pub regularization: f32,
    /// Confidence scaling `α` in `c = 1 + α·r/r̄`, where `r̄` is the mean interaction weight.
    pub alpha: f32,
    /// Row solver.
    pub solver: AlsSolver,
    /// Conjugate-gradient steps per row and sweep (CG solver only).
    pub cg_steps: usize,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParams {
            factors: 64,
            iterations: 15,
            regularization: 10.0,
            alpha: 1.0,
            solver: AlsSolver::Cg,
            cg_steps: 3,
            seed: 42,
        }
    }
}

impl AlsParams {
    /// Checks the ranges of every parameter.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| Err(Error::InvalidParam { name, reason: reason.into() });
        if self.factors == 0 || self.factors > MAX_FACTORS {
            return bad("als.factors", "must be between 1 and 1024");
        }
        // ALS converges in tens of sweeps; thousands only keep the machine busy for days.
        if self.iterations == 0 || self.iterations > 1_000 {
            return bad("als.iterations", "must be between 1 and 1000");
        }
        if self.cg_steps > 100 {
            return bad("als.cg_steps", "must be at most 100 (3 is implicit's default)");
        }
        if !(self.regularization.is_finite() && self.regularization > 0.0) {
            return bad("als.regularization", "must be a positive number");
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad("als.alpha", "must be a number >= 0");
        }
        if self.solver == AlsSolver::Cg && self.cg_steps == 0 {
            return bad("als.cg_steps", "must be at least 1");
        }
        Ok(())
    }

    /// Fits, reporting each sweep to `progress`.
    pub fn fit_with(&self, train: &TrainSet, progress: &dyn Progress) -> Result<AlsModel> {
        self.validate()?;
        if train.user_items.nnz() == 0 {
            return Err(Error::Untrainable { model: "als", reason: "no interactions".into() });
        }
        let k = self.factors;
        let data = train.user_items.data();
        let mean_weight = data.iter().map(|&w| f64::from(w)).sum::<f64>() / data.len() as f64;
        // Dividing α by the mean weight scales every stored weight to mean 1.
        let scaled =
            AlsParams { alpha: (f64::from(self.alpha) / mean_weight.max(1e-12)) as f32, ..self.clone() };
        let mut rng = StdRng::seed_from_u64(self.seed);
        // Small positive start, as in `implicit`: warm-started CG moves from here.
        let mut init = |n: usize| -> Vec<f32> { (0..n * k).map(|_| rng.r#gen::<f32>() * 0.01).collect() };
        let mut users = init(train.n_users());
        let mut items = init(train.n_items());
        for iteration in 0..self.iterations {
            let started = Instant::now();
            scaled.solve_side(&train.user_items, &items, &mut users)?;
            let users_done = started.elapsed();
            scaled.solve_side(&train.item_users, &users, &mut items)?;
            progress.step("als", iteration + 1, self.iterations, started.elapsed());
            tracing::trace!(?users_done, items_done = ?(started.elapsed() - users_done), "als sweep");
        }
        // The model keeps its item factors in half precision (see `half_scan`): serving
        // scans them at half the memory traffic. Factors beyond half's range stay as they are.
        round_to_half(&mut items);
        let mut gram_reg = gram(&items, k);
        for d in 0..k {
            gram_reg[d * k + d] += self.regularization;
        }
        Ok(AlsModel {
            k,
            alpha: scaled.alpha,
            regularization: self.regularization,
            user_factors: users,
            item_factors: items,
            gram_reg,
            half: HalfCopy::default(),
        })
    }

    /// Solves every row of `this` against the fixed factors `other`.
    fn solve_side(&self, matrix: &Matrix, other: &[f32], this: &mut [f32]) -> Result<()> {
        let k = self.factors;
        let mut gram_reg = gram(other, k);
        for d in 0..k {
            gram_reg[d * k + d] += self.regularization;
        }
        let indptr = matrix.indptr();
        let rows = RowSystem {
            indptr: indptr.raw_storage(),
            indices: matrix.indices(),
            data: matrix.data(),
            other,
            gram_reg: &gram_reg,
            alpha: self.alpha,
            k,
        };
        const ROWS_PER_TASK: usize = 64;
        match self.solver {
            AlsSolver::Cg => {
                this.par_chunks_mut(k * ROWS_PER_TASK).enumerate().for_each(|(task, block)| {
                    with_simd(CgTask {
                        rows: &rows,
                        first: task * ROWS_PER_TASK,
                        block,
                        steps: self.cg_steps,
                    })
                });
                Ok(())
            }
            AlsSolver::Cholesky => {
                this.par_chunks_mut(k * ROWS_PER_TASK).enumerate().try_for_each(|(task, block)| {
                    let mut a = vec![0f32; k * k];
                    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f32>(
                        k,
                        Par::Seq,
                        Default::default(),
                    ));
                    for (j, x) in block.chunks_exact_mut(k).enumerate() {
                        rows.cholesky(task * ROWS_PER_TASK + j, x, &mut a, &mut mem)?;
                    }
                    Ok(())
                })
            }
        }
    }
}

/// Conjugate-gradient solves of consecutive rows, under one instruction set.
struct CgTask<'a> {
    rows: &'a RowSystem<'a>,
    /// The first row's index.
    first: usize,
    /// The rows' factors, solved in place.
    block: &'a mut [f32],
    steps: usize,
}

impl WithSimd for CgTask<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let mut scratch = CgScratch::new(self.rows.k);
        for (j, x) in self.block.chunks_exact_mut(self.rows.k).enumerate() {
            self.rows.cg(simd, self.first + j, x, self.steps, &mut scratch);
        }
    }
}

/// One task's working memory for conjugate-gradient solves, reused from row to row.
struct CgScratch {
    /// The current row's factor rows, gathered.
    rows: Vec<f32>,
    /// Their `c − 1`.
    confidence: Vec<f32>,
    /// Per non-zero weights of the current pass.
    weights: Vec<f32>,
    /// `r`, `p` and `A p`, `k` each.
    vectors: Vec<f32>,
}

impl CgScratch {
    fn new(k: usize) -> Self {
        CgScratch { rows: Vec::new(), confidence: Vec::new(), weights: Vec::new(), vectors: vec![0.0; 3 * k] }
    }
}

/// One side's systems: row `u` of the sparse matrix against the fixed factors.
struct RowSystem<'a> {
    indptr: &'a [usize],
    indices: &'a [u32],
    data: &'a [f32],
    other: &'a [f32],
    gram_reg: &'a [f32],
    alpha: f32,
    k: usize,
}

impl RowSystem<'_> {
    /// The factor row of the `idx`-th stored non-zero.
    #[inline(always)]
    fn factor(&self, idx: usize) -> &[f32] {
        let item = self.indices[idx] as usize;
        &self.other[item * self.k..(item + 1) * self.k]
    }

    /// Copies row `row`'s factor rows into `scratch.rows` (one after the other), their
    /// `c − 1` into `scratch.confidence` and their products with `x` into
    /// `scratch.weights`, so that every later pass of the solve reads the rows from one
    /// contiguous, cache-resident block instead of gathering them again.
    #[inline(always)]
    fn gather<S: Simd>(&self, simd: S, row: usize, x: &[f32], scratch: &mut CgScratch) {
        let (start, end) = (self.indptr[row], self.indptr[row + 1]);
        let k = self.k;
        scratch.rows.resize((end - start) * k, 0.0);
        scratch.confidence.clear();
        scratch.weights.clear();
        for (idx, target) in (start..end).zip(scratch.rows.chunks_exact_mut(k)) {
            scratch.weights.push(copy_dot(simd, self.factor(idx), x, target));
            scratch.confidence.push(self.alpha * self.data[idx]);
        }
    }

    /// A few conjugate-gradient steps on row `row`'s system, from the current `x`. (Plain
    /// loops, no iterator closures: everything here must inline into the SIMD context.)
    #[inline(always)]
    fn cg<S: Simd>(&self, simd: S, row: usize, x: &mut [f32], steps: usize, scratch: &mut CgScratch) {
        self.gather(simd, row, x, scratch);
        let k = self.k;
        let CgScratch { rows, confidence, weights, vectors } = scratch;
        let (r, rest) = vectors.split_at_mut(k);
        let (p, ap) = rest.split_at_mut(k);
        // r = b − A x = Σ [c − (c − 1) yᵀx] y − (YᵀY + λI) x.
        symv(simd, self.gram_reg, x, ap);
        for (ri, api) in r.iter_mut().zip(ap.iter()) {
            *ri = -api;
        }
        for (w, &c_minus_1) in weights.iter_mut().zip(confidence.iter()) {
            *w = (1.0 + c_minus_1) - c_minus_1 * *w;
        }
        add_weighted_rows(simd, rows, weights, r);
        p.copy_from_slice(r);
        let mut rs_old = dot(simd, r, r);
        for _ in 0..steps {
            if rs_old < 1e-20 {
                break;
            }
            // A p = (YᵀY + λI) p + Σ (c − 1)(yᵀp) y.
            symv(simd, self.gram_reg, p, ap);
            row_dots(simd, rows, k, p, weights);
            for (w, &c_minus_1) in weights.iter_mut().zip(confidence.iter()) {
                *w *= c_minus_1;
            }
            add_weighted_rows(simd, rows, weights, ap);
            let p_ap = dot(simd, p, ap);
            if p_ap <= 0.0 {
                break;
            }
            let step = rs_old / p_ap;
            axpy(simd, step, p, x);
            axpy(simd, -step, ap, r);
            let rs_new = dot(simd, r, r);
            let beta = rs_new / rs_old;
            for (pi, ri) in p.iter_mut().zip(r.iter()) {
                *pi = ri + beta * *pi;
            }
            rs_old = rs_new;
        }
    }

    /// The exact solution of row `row`'s system, written into `x`.
    fn cholesky(&self, row: usize, x: &mut [f32], a: &mut [f32], mem: &mut MemBuffer) -> Result<()> {
        let k = self.k;
        a.copy_from_slice(self.gram_reg);
        x.iter_mut().for_each(|v| *v = 0.0);
        let rows = (self.indptr[row]..self.indptr[row + 1])
            .map(|idx| (self.factor(idx), self.alpha * self.data[idx]));
        with_simd(NormalEquations { rows, a, b: x });
        solve_spd(a, x, k, mem).map_err(|reason| Error::Numerical { model: "als", reason })
    }
}

/// Adds the terms of observed pairs to a row's normal equations: `A += Σ (c − 1) y yᵀ`
/// and `b += Σ c y` over the `(y, c − 1)` pairs (`A` row-major `k × k`).
struct NormalEquations<'a, I> {
    rows: I,
    a: &'a mut [f32],
    b: &'a mut [f32],
}

impl<'y, I: Iterator<Item = (&'y [f32], f32)>> WithSimd for NormalEquations<'_, I> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let k = self.b.len();
        for (y, c_minus_1) in self.rows {
            for (i, &yi) in y.iter().enumerate() {
                axpy(simd, c_minus_1 * yi, y, &mut self.a[i * k..(i + 1) * k]);
            }
            axpy(simd, 1.0 + c_minus_1, y, self.b);
        }
    }
}

/// Solves `A x = b` in place (`b` in `x`) for a symmetric positive definite `A` (overwritten).
fn solve_spd(a: &mut [f32], x: &mut [f32], k: usize, mem: &mut MemBuffer) -> std::result::Result<(), String> {
    llt::factor::cholesky_in_place(
        MatMut::from_column_major_slice_mut(a, k, k),
        Default::default(),
        Par::Seq,
        MemStack::new(mem),
        Default::default(),
    )
    .map_err(|e| format!("system is not positive definite: {e:?}"))?;
    llt::solve::solve_in_place(
        MatRef::from_column_major_slice(a, k, k),
        MatMut::from_column_major_slice_mut(x, k, 1),
        Par::Seq,
        MemStack::new(mem),
    );
    Ok(())
}

impl Fit for AlsParams {
    type Model = AlsModel;

    fn fit(&self, train: &TrainSet) -> Result<AlsModel> {
        self.fit_with(train, &Silent)
    }
}

/// The most latent dimensions a model may have.
const MAX_FACTORS: usize = 1024;

/// Fitted ALS factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsModel {
    k: usize,
    /// `α / r̄`: applied to raw weights.
    alpha: f32,
    regularization: f32,
    /// Row-major `n_users × k`.
    user_factors: Vec<f32>,
    /// Row-major `n_items × k`.
    item_factors: Vec<f32>,
    /// `YᵀY + λI`, row-major `k × k`, for folding in new persons.
    gram_reg: Vec<f32>,
    /// The item factors in half precision, built on first use (or by [`AlsModel::warm`]).
    #[serde(skip)]
    half: HalfCopy,
}

/// [`HalfFactors`] of the item factors, or `None` when they are not all half-precision
/// numbers (an artifact written before training rounded them). Derived from the factors, so
/// it takes no part in comparisons.
#[derive(Debug, Clone, Default)]
struct HalfCopy(OnceLock<Option<HalfFactors>>);

impl PartialEq for HalfCopy {
    fn eq(&self, _: &HalfCopy) -> bool {
        true
    }
}

impl AlsModel {
    /// Checks decoded or freshly fitted factors for a catalog of `n_items`: consistent
    /// dimensions, finite numbers.
    pub(crate) fn check(&self, n_items: usize) -> std::result::Result<(), String> {
        let k = self.k;
        if !(1..=MAX_FACTORS).contains(&k) {
            return Err(format!("{k} factors, expected 1 to {MAX_FACTORS}"));
        }
        if Some(self.item_factors.len()) != n_items.checked_mul(k)
            || !self.user_factors.len().is_multiple_of(k)
        {
            return Err(format!(
                "{} item and {} person factor values do not make rows of {k} for {n_items} items",
                self.item_factors.len(),
                self.user_factors.len()
            ));
        }
        if self.gram_reg.len() != k * k {
            return Err(format!("Gram matrix of {} values, expected {k} × {k}", self.gram_reg.len()));
        }
        finite("alpha and regularization", &[self.alpha, self.regularization])?;
        finite("item factors", &self.item_factors)?;
        finite("person factors", &self.user_factors)?;
        finite("Gram matrix", &self.gram_reg)
    }

    /// Latent dimensions.
    pub fn factors(&self) -> usize {
        self.k
    }

    /// Number of persons with factors.
    pub fn n_users(&self) -> usize {
        self.user_factors.len() / self.k
    }

    /// All person factors, row-major `n_users × factors`.
    pub fn user_factors(&self) -> &[f32] {
        &self.user_factors
    }

    /// Builds the half-precision copy of the item factors the full scan reads, so that the
    /// first answer does not pay for it.
    pub fn warm(&self) {
        self.half_factors();
    }

    fn half_factors(&self) -> Option<&HalfFactors> {
        self.half.0.get_or_init(|| HalfFactors::new(&self.item_factors, self.k)).as_ref()
    }

    /// All item factors, row-major `n_items × factors`.
    pub fn item_factors(&self) -> &[f32] {
        &self.item_factors
    }

    /// An item's factor vector.
    pub fn item_vector(&self, item: ItemIdx) -> Option<&[f32]> {
        self.item_factors.get(item.get() * self.k..(item.get() + 1) * self.k)
    }

    /// The person vector for a query: stored factors for a known person without recency
    /// factors, otherwise one exact least-squares step against the item factors from the
    /// weighted history (fold-in; for a known person's unweighted training history it gives
    /// the stored factors back, since it is the last user step of training).
    pub fn user_vector(&self, query: &Query<'_>) -> Result<Vec<f32>> {
        let k = self.k;
        if let Some(user) = query.user
            && query.recency.is_empty()
            && let Some(x) = self.user_factors.get(user.get() * k..(user.get() + 1) * k)
        {
            return Ok(x.to_vec());
        }
        let mut x = vec![0f32; k];
        if query.history.is_empty() {
            return Ok(x);
        }
        let mut a = self.gram_reg.clone();
        let mut rows = Vec::with_capacity(query.history.len());
        for (item, value) in query.weighted() {
            let y = self.item_vector(item).ok_or(Error::OutOfRange {
                what: "item",
                index: item.get(),
                len: self.n_items(),
            })?;
            rows.push((y, self.alpha * value.max(0.0)));
        }
        with_simd(NormalEquations { rows: rows.into_iter(), a: &mut a, b: &mut x });
        let mut mem =
            MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f32>(k, Par::Seq, Default::default()));
        solve_spd(&mut a, &mut x, k, &mut mem).map_err(|reason| Error::Numerical { model: "als", reason })?;
        Ok(x)
    }

    /// The training objective on `train` (for checking convergence):
    /// `Σ_u Σ_i c_ui (p_ui − x_uᵀy_i)² + λ(‖X‖² + ‖Y‖²)`, computed without visiting
    /// unobserved pairs via `Σ_i (x_uᵀy_i)² = x_uᵀ YᵀY x_u`.
    pub fn loss(&self, train: &TrainSet) -> f64 {
        let k = self.k;
        let mut gram = self.gram_reg.clone();
        for d in 0..k {
            gram[d * k + d] -= self.regularization;
        }
        // A diagnostic: the portable scalar kernels are fast enough.
        let simd = pulp::Scalar::new();
        let data_term: f64 = (0..self.n_users())
            .into_par_iter()
            .map(|u| {
                let x = &self.user_factors[u * k..(u + 1) * k];
                let mut gx = vec![0f32; k];
                symv(simd, &gram, x, &mut gx);
                let mut total = f64::from(dot(simd, x, &gx));
                if let Some(row) = train.user_items.outer_view(u) {
                    for (i, &r) in row.iter() {
                        let s = f64::from(dot(simd, x, &self.item_factors[i * k..(i + 1) * k]));
                        let c = 1.0 + f64::from(self.alpha) * f64::from(r);
                        total += c * (1.0 - s).powi(2) - s * s;
                    }
                }
                total
            })
            .sum();
        let norm = |v: &[f32]| v.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>();
        data_term + f64::from(self.regularization) * (norm(&self.user_factors) + norm(&self.item_factors))
    }
}

impl Recommender for AlsModel {
    fn name(&self) -> &'static str {
        "als"
    }

    fn n_items(&self) -> usize {
        self.item_factors.len() / self.k
    }

    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()> {
        check_query(self.n_items(), query, scores)?;
        let x = self.user_vector(query)?;
        if self.half_factors().is_some_and(|half| half.dots(&x, scores)) {
            return Ok(());
        }
        // faer's matrix-vector product: several times faster than a row-by-row dot here.
        let n = scores.len();
        let items = MatRef::from_row_major_slice(&self.item_factors, n, self.k);
        let person = MatRef::from_column_major_slice(&x, self.k, 1);
        let out = MatMut::from_column_major_slice_mut(scores, n, 1);
        faer::linalg::matmul::matmul(out, faer::Accum::Replace, items, person, 1.0f32, Par::Seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_train, contract};

    /// The toy data has a handful of persons: a small penalty keeps the factors informative.
    fn toy(factors: usize, iterations: usize) -> AlsParams {
        AlsParams { factors, iterations, regularization: 0.1, alpha: 2.0, ..Default::default() }
    }

    #[test]
    fn loss_falls_and_blocks_are_recovered() {
        let train = block_train();
        let mut previous = f64::INFINITY;
        for iterations in [1, 3, 8] {
            let model = toy(4, iterations).fit(&train).unwrap();
            let loss = model.loss(&train);
            assert!(loss < previous, "loss {loss} after {iterations} sweeps, before {previous}");
            previous = loss;
        }
        for solver in [AlsSolver::Cg, AlsSolver::Cholesky] {
            contract(&AlsParams { solver, ..toy(4, 8) }, &train);
        }
    }

    #[test]
    fn cg_approaches_the_exact_solution() {
        let train = block_train();
        let exact = AlsParams { solver: AlsSolver::Cholesky, ..toy(4, 10) };
        let cg = AlsParams { cg_steps: 6, ..toy(4, 10) };
        let (exact, cg) = (exact.fit(&train).unwrap(), cg.fit(&train).unwrap());
        let (le, lc) = (exact.loss(&train), cg.loss(&train));
        assert!((lc - le).abs() / le < 0.05, "cg loss {lc} vs exact {le}");
    }

    #[test]
    fn fold_in_matches_stored_factors_closely() {
        let train = block_train();
        let model = AlsParams { solver: AlsSolver::Cholesky, ..toy(4, 10) }.fit(&train).unwrap();
        let history = train.history(datasets::UserIdx(0));
        let stored = model
            .user_vector(&Query { user: Some(datasets::UserIdx(0)), history: &history, recency: &[] })
            .unwrap();
        let folded = model.user_vector(&Query { user: None, history: &history, recency: &[] }).unwrap();
        // After a final item sweep the person's exact solution moves only a little.
        let diff: f32 = stored.iter().zip(&folded).map(|(a, b)| (a - b).abs()).sum();
        let size: f32 = stored.iter().map(|a| a.abs()).sum();
        assert!(diff / size < 0.2, "{stored:?} vs {folded:?}");
    }

    #[test]
    fn scores_are_the_rounded_factors_dot_products_through_the_half_copy() {
        let train = block_train();
        let model = toy(5, 4).fit(&train).unwrap();
        // Training rounded the factors, so the copy exists (and the scan reads it where the
        // CPU has AVX-512).
        assert!(model.half_factors().is_some());
        let history = train.history(datasets::UserIdx(1));
        let query = Query { user: Some(datasets::UserIdx(1)), history: &history, recency: &[] };
        let mut scores = vec![f32::NAN; model.n_items()];
        model.score_into(&query, &mut scores).unwrap();
        let x = model.user_vector(&query).unwrap();
        for (i, row) in model.item_factors.chunks_exact(model.k).enumerate() {
            let exact: f64 = row.iter().zip(&x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let size: f64 = row.iter().zip(&x).map(|(&a, &b)| f64::from(a * b).abs()).sum();
            assert!(
                (f64::from(scores[i]) - exact).abs() <= 1e-5 * size + 1e-12,
                "item {i}: {} vs {exact}",
                scores[i]
            );
        }
        // Factors that are not half numbers (an older artifact) have no copy and still score.
        let mut old = model.clone();
        old.half = HalfCopy::default();
        old.item_factors[0] += 1e-6;
        assert!(old.half_factors().is_none());
        old.score_into(&query, &mut scores).unwrap();
        assert!(scores.iter().all(|s| s.is_finite()));
    }

    #[test]
    fn check_refuses_non_finite_factors_and_wrong_shapes() {
        let model = toy(4, 2).fit(&block_train()).unwrap();
        assert_eq!(model.check(8), Ok(()));
        assert!(model.check(9).unwrap_err().contains("do not make rows of 4 for 9 items"));
        let mut nan = model.clone();
        nan.item_factors[5] = f32::NAN;
        assert_eq!(nan.check(8).unwrap_err(), "item factors: entry 5 is NaN (not a finite number)");
        let mut zero = model;
        zero.k = 0;
        assert!(zero.check(8).unwrap_err().contains("0 factors"));
    }

    #[test]
    fn bad_params_are_named() {
        let err = AlsParams { factors: 0, ..Default::default() }.validate().unwrap_err();
        assert_eq!(err.to_string(), "invalid parameter `als.factors`: must be between 1 and 1024");
        assert!(AlsParams { regularization: -1.0, ..Default::default() }.validate().is_err());
    }
}

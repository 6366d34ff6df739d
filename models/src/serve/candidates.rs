//! The candidate stage: the blend scored on a few hundred items per request instead of the
//! whole catalog, so the cost of an answer stops growing with the catalog.
//!
//! Each blend member proposes its own best [`CandidateParams::per_member`] items, and the
//! blend ([`crate::blend::Blend::fuse`]'s sum of weighted z-scores) is computed on their
//! union only. The z-scores stay those of the whole catalog: each member's mean and standard
//! deviation over every item are known without scoring every item.
//!
//! - **Sparse members** (item-kNN, pruned EASE, content through its term postings) score
//!   only the items they touch ([`Recommender::score_sparse`](crate::recommender::Recommender::score_sparse)); every other item scores
//!   exactly 0, so the catalog's moments follow from the touched scores
//!   ([`crate::rank::sparse_moments`]) and their best items are exact.
//! - **Popularity** scores item `j` as `global_j × f(category_j)` for one factor per category
//!   and query: the moments follow from per-category sums computed once, and the best items
//!   from per-category lists sorted once, merged under the query's factors. Exact.
//! - **ALS** scores `x · y_j`: the catalog's mean is `x · μ` and its variance `xᵀ Σ x` with
//!   `μ`, `Σ` the mean and covariance of the item factors, computed once (exact; from a fixed
//!   sample of 16,384 items when ALS is de-biased, since the de-bias is not linear). Its
//!   best items come from every item below [`CandidateParams::ann_from`] items, and above
//!   from an inverted-file index: k-means lists of item factors (about `√n / 2` lists, built
//!   when the artifact is loaded), of which the [`CandidateParams::probe`] lists whose
//!   centroid scores highest are scanned. That part is approximate; its recall against full
//!   scoring is tested on small data and printed by `cargo bench -p benches --bench serve`
//!   at 10,000 and 100,000 items (the README).
//! - Any other member, or one that cannot score sparsely (dense EASE), is scored in full.
//!
//! The engine applies the rules to the candidates; when they leave the answer short (a
//! narrow filter), it scores the catalog in full, so every rule holds exactly as without the
//! stage ([`crate::serve::engine::Engine::answer`]).

use datasets::ItemIdx;
use faer::{MatMut, MatRef, Par};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithms::als::AlsModel;
use crate::algorithms::linalg::{dot, gram, with_simd};
use crate::algorithms::popularity::PopularityModel;
use crate::blend::{Blend, Debias, Fused, Member, apply_debias};
use crate::error::{Error, Result};
use crate::rank::{moments, moments_from_sums, sparse_moments, top_k};
use crate::recommender::{ModelKind, Query, SparseScores};
use crate::train::FittedModel;

/// How the candidate stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CandidateParams {
    /// Items each blend member proposes; 0 turns the stage off (every request scores the
    /// whole catalog).
    pub per_member: usize,
    /// Catalogs of at most this many items are scored in full (the stage gains nothing there).
    pub min_items: usize,
    /// From this many items, ALS proposes through its inverted-file index instead of scoring
    /// every item.
    pub ann_from: usize,
    /// Lists of the index scanned per request.
    pub probe: usize,
}

impl Default for CandidateParams {
    fn default() -> Self {
        CandidateParams { per_member: 300, min_items: 5_000, ann_from: 50_000, probe: 24 }
    }
}

impl CandidateParams {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        crate::error::require(self.per_member <= 100_000, "candidates.per_member", "must be at most 100000")?;
        crate::error::require(self.probe >= 1, "candidates.probe", "must be at least 1")?;
        Ok(())
    }

    /// Whether a catalog of `n_items` items goes through the stage.
    pub fn applies(&self, n_items: usize) -> bool {
        self.per_member > 0 && n_items > self.min_items
    }
}

/// What the stage keeps per artifact: the ALS index and moments, the popularity lists.
pub struct Retriever {
    params: CandidateParams,
    n_items: usize,
    als: Option<AlsIndex>,
    popularity: Option<PopularityIndex>,
}

impl Retriever {
    /// Prepares the stage for `models` (one artifact's) under its blend `debias`.
    pub fn new(params: CandidateParams, models: &[FittedModel], debias: &Debias) -> Self {
        let n_items = models.first().map_or(0, |m| m.as_recommender().n_items());
        let active = params.applies(n_items);
        let als = models.iter().find_map(|m| match m {
            FittedModel::Als(als) if active && n_items >= params.ann_from => Some(AlsIndex::new(als)),
            _ => None,
        });
        let popularity = models.iter().find_map(|m| match m {
            FittedModel::Popularity(p) if active => {
                Some(PopularityIndex::new(p, debias.factors(ModelKind::Popularity)))
            }
            _ => None,
        });
        Retriever { params, n_items, als, popularity }
    }

    /// The settings.
    pub fn params(&self) -> &CandidateParams {
        &self.params
    }

    /// Whether requests go through the stage.
    pub fn active(&self) -> bool {
        self.params.applies(self.n_items)
    }

    /// Scores `query` with every member of `blend` (over `models`, the artifact's) on the
    /// members' candidates: `scratch.items` gets each candidate with its blended score, in
    /// item order. One outcome per member, as [`Blend::fuse`] reports them, with the moments
    /// over the whole catalog.
    pub fn fuse(
        &self,
        blend: &Blend<'_>,
        models: &[FittedModel],
        query: &Query<'_>,
        scratch: &mut Scratch,
    ) -> Vec<Fused> {
        let n = self.n_items;
        let per_member = self.params.per_member;
        let members = blend.members();
        scratch.states.clear();
        scratch.sparse.resize_with(members.len(), SparseScores::default);
        scratch.dense.resize_with(members.len(), Vec::new);
        scratch.pool.clear();
        let mut fused = Vec::with_capacity(members.len());
        for (m, member) in members.iter().enumerate() {
            let model = models.iter().find(|f| f.kind() == member.kind);
            let (state, outcome) = match (model, &self.als, &self.popularity) {
                (Some(FittedModel::Als(als)), Some(index), _) => {
                    index.propose(als, member, query, &self.params, &mut scratch.ann, &mut scratch.pool)
                }
                (Some(FittedModel::Popularity(p)), _, Some(index)) => {
                    index.propose(p, query, per_member, &mut scratch.pool)
                }
                _ => {
                    let sparse = &mut scratch.sparse[m];
                    sparse.clear(n);
                    match member.model.score_sparse(query, sparse) {
                        Err(error) => (State::None, Fused::Failed(error)),
                        Ok(true) => {
                            if let Some(factors) = member.debias {
                                sparse.map_touched(|i, s| debiased(s, factors[i]));
                            }
                            let values = sparse.touched().iter().map(|&i| sparse.get(i as usize));
                            let outcome = match sparse_moments(values, n) {
                                Some((mean, scale)) => Fused::Scored(mean, scale),
                                None => Fused::NoFiniteScore,
                            };
                            let touched = sparse.touched();
                            let best =
                                top_k_of(touched.iter().map(|&i| (i, sparse.get(i as usize))), per_member);
                            scratch.pool.extend(best);
                            (State::Sparse, outcome)
                        }
                        Ok(false) => {
                            let dense = &mut scratch.dense[m];
                            dense.resize(n, 0.0);
                            match member.model.score_into(query, dense) {
                                Err(error) => (State::None, Fused::Failed(error)),
                                Ok(()) => {
                                    if let Some(factors) = member.debias {
                                        apply_debias(dense, factors);
                                    }
                                    let outcome = match moments(dense) {
                                        Some((mean, scale)) => Fused::Scored(mean, scale),
                                        None => Fused::NoFiniteScore,
                                    };
                                    scratch
                                        .pool
                                        .extend(top_k(dense, per_member, |_| true).iter().map(|s| s.item.0));
                                    (State::Dense, outcome)
                                }
                            }
                        }
                    }
                }
            };
            scratch.states.push(state);
            fused.push(outcome);
        }
        scratch.pool.sort_unstable();
        scratch.pool.dedup();
        scratch.items.clear();
        scratch.items.extend(scratch.pool.iter().map(|&i| (i, 0f32)));
        for (m, (member, outcome)) in members.iter().zip(&fused).enumerate() {
            let Fused::Scored(mean, scale) = *outcome else { continue };
            let (a, b) = (member.weight * scale, -member.weight * scale * mean);
            scratch.raw.clear();
            self.raw_into(member, models, scratch, m);
            for ((_, total), &s) in scratch.items.iter_mut().zip(&scratch.raw) {
                if s.is_finite() {
                    *total += a * s + b;
                }
            }
        }
        fused
    }

    /// Member `m`'s score (after de-bias) of every item of `scratch.pool` into `scratch.raw`.
    fn raw_into(&self, member: &Member<'_>, models: &[FittedModel], scratch: &mut Scratch, m: usize) {
        let pool = &scratch.pool;
        match &scratch.states[m] {
            State::None => scratch.raw.extend(pool.iter().map(|_| f32::NAN)),
            State::Dense => scratch.raw.extend(pool.iter().map(|&i| scratch.dense[m][i as usize])),
            State::Sparse => scratch.raw.extend(pool.iter().map(|&i| scratch.sparse[m].get(i as usize))),
            State::Factors(x) => {
                let Some(FittedModel::Als(als)) = models.iter().find(|f| f.kind() == ModelKind::Als) else {
                    scratch.raw.extend(pool.iter().map(|_| f32::NAN));
                    return;
                };
                with_simd(GatherDots {
                    factors: als.item_factors(),
                    k: als.factors(),
                    items: pool,
                    x,
                    out: &mut scratch.raw,
                });
                if let Some(factors) = member.debias {
                    for (s, &i) in scratch.raw.iter_mut().zip(pool) {
                        *s = debiased(*s, factors[i as usize]);
                    }
                }
            }
            State::Popularity(factors) => {
                let Some(index) = &self.popularity else { return };
                scratch.raw.extend(pool.iter().map(|&i| index.score(factors, i as usize)));
            }
        }
    }

    /// Member `m`'s score (after de-bias) of `item` in the query `scratch` was last fused for;
    /// `None` for an item the member does not know or could not score.
    pub fn raw(
        &self,
        blend: &Blend<'_>,
        models: &[FittedModel],
        scratch: &Scratch,
        m: usize,
        item: ItemIdx,
    ) -> Option<f32> {
        let member = blend.members().get(m)?;
        let i = item.get();
        if i >= self.n_items {
            return None;
        }
        let s = match scratch.states.get(m)? {
            State::None => return None,
            State::Dense => *scratch.dense.get(m)?.get(i)?,
            State::Sparse => scratch.sparse.get(m)?.get(i),
            State::Popularity(factors) => self.popularity.as_ref()?.score(factors, i),
            State::Factors(x) => {
                let als = models.iter().find_map(|f| match f {
                    FittedModel::Als(als) => Some(als),
                    _ => None,
                })?;
                let s = with_simd(Dot { a: als.item_vector(item)?, b: x });
                member.debias.map_or(s, |factors| debiased(s, factors[i]))
            }
        };
        s.is_finite().then_some(s)
    }
}

/// Per-thread buffers of the stage.
#[derive(Default)]
pub struct Scratch {
    /// The candidates of the last query, in item order, with their blended scores.
    pub items: Vec<(u32, f32)>,
    states: Vec<State>,
    sparse: Vec<SparseScores>,
    dense: Vec<Vec<f32>>,
    pool: Vec<u32>,
    raw: Vec<f32>,
    ann: AnnBuffers,
}

/// How a member scored the last query, so any item's score can be read back.
enum State {
    /// It failed.
    None,
    /// In full, into its dense buffer.
    Dense,
    /// Into its sparse buffer.
    Sparse,
    /// ALS: the person's vector.
    Factors(Vec<f32>),
    /// Popularity: the factor of each group (category, then uncategorised).
    Popularity(Vec<f32>),
}

/// The de-bias of one score by its item's divisor ([`apply_debias`] for one entry).
fn debiased(s: f32, divisor: f32) -> f32 {
    if s > 0.0 { s / divisor } else { s * divisor }
}

/// The `k` best of (item, score) pairs (ties to the lower item), as items; non-finite scores
/// are never taken.
fn top_k_of(pairs: impl Iterator<Item = (u32, f32)>, k: usize) -> Vec<u32> {
    let mut best: Vec<(u32, f32)> = pairs.filter(|(_, s)| s.is_finite()).collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if best.len() > k && k > 0 {
        best.select_nth_unstable_by(k - 1, order);
    }
    best.truncate(k);
    best.into_iter().map(|(i, _)| i).collect()
}

/// `out.push(x · row_i)` for each item `i` of `items`.
struct GatherDots<'a> {
    factors: &'a [f32],
    k: usize,
    items: &'a [u32],
    x: &'a [f32],
    out: &'a mut Vec<f32>,
}

impl WithSimd for GatherDots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let k = self.k;
        for &i in self.items {
            let row = self.factors.get(i as usize * k..(i as usize + 1) * k);
            self.out.push(row.map_or(f32::NAN, |row| dot(simd, row, self.x)));
        }
    }
}

/// `a · b` under the dispatched instruction set.
struct Dot<'a> {
    a: &'a [f32],
    b: &'a [f32],
}

impl WithSimd for Dot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        dot(simd, self.a, self.b)
    }
}

/// Items of a fixed sample, for moments that cannot be computed in closed form.
const SAMPLE: usize = 16_384;

/// ALS's part: the moments of the item factors and the inverted-file lists.
struct AlsIndex {
    k: usize,
    /// Mean item factor vector.
    mean: Vec<f64>,
    /// Covariance of the item factors, `k × k`.
    covariance: Vec<f64>,
    /// A fixed sample of items (for de-biased moments).
    sample: Vec<u32>,
    /// `n_lists × k` centroids.
    centroids: Vec<f32>,
    /// List `l` holds `items[offsets[l]..offsets[l + 1]]`.
    offsets: Vec<u32>,
    items: Vec<u32>,
    /// `0..n_lists`, to score every centroid.
    lists: Vec<u32>,
}

/// The per-request buffers of [`AlsIndex::propose`].
#[derive(Default)]
struct AnnBuffers {
    by_centroid: Vec<f32>,
    probed: Vec<u32>,
    scores: Vec<f32>,
}

impl AlsIndex {
    fn new(als: &AlsModel) -> Self {
        let k = als.factors();
        let factors = als.item_factors();
        let n = factors.len() / k.max(1);
        let mut mean = vec![0f64; k];
        for row in factors.chunks_exact(k) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let second = gram(factors, k);
        let covariance = (0..k * k)
            .map(|at| f64::from(second[at]) / n.max(1) as f64 - mean[at / k] * mean[at % k])
            .collect();
        let step = n.div_ceil(SAMPLE).max(1);
        let sample = (0..n).step_by(step).map(|i| i as u32).collect();
        let n_lists = (((n as f64).sqrt() / 2.0) as usize).clamp(1, 2_048).min(n.max(1));
        let (centroids, assigned) = kmeans(factors, k, n_lists);
        let mut offsets = vec![0u32; n_lists + 1];
        for &l in &assigned {
            offsets[l as usize + 1] += 1;
        }
        for l in 0..n_lists {
            offsets[l + 1] += offsets[l];
        }
        let mut items = vec![0u32; n];
        let mut next = offsets.clone();
        for (i, &l) in assigned.iter().enumerate() {
            items[next[l as usize] as usize] = i as u32;
            next[l as usize] += 1;
        }
        let lists = (0..n_lists as u32).collect();
        AlsIndex { k, mean, covariance, sample, centroids, offsets, items, lists }
    }

    /// The person's vector, the catalog's moments and the best items of the `probe` lists
    /// whose centroids score highest (pushed onto `pool`).
    fn propose(
        &self,
        als: &AlsModel,
        member: &Member<'_>,
        query: &Query<'_>,
        params: &CandidateParams,
        buffers: &mut AnnBuffers,
        pool: &mut Vec<u32>,
    ) -> (State, Fused) {
        let x = match als.user_vector(query) {
            Ok(x) if x.len() == self.k => x,
            Ok(_) => {
                let reason = "factors of another size than the index".to_string();
                return (State::None, Fused::Failed(Error::Numerical { model: "als", reason }));
            }
            Err(error) => return (State::None, Fused::Failed(error)),
        };
        let factors = als.item_factors();
        let moments = match member.debias {
            None => {
                let mean: f64 = x.iter().zip(&self.mean).map(|(&a, &m)| f64::from(a) * m).sum();
                let mut variance = 0f64;
                for (r, &xr) in x.iter().enumerate() {
                    let row = &self.covariance[r * self.k..(r + 1) * self.k];
                    variance +=
                        f64::from(xr) * row.iter().zip(&x).map(|(&c, &xc)| c * f64::from(xc)).sum::<f64>();
                }
                let n = self.items.len() as f64;
                moments_from_sums(n, mean * n, (variance.max(0.0) + mean * mean) * n)
            }
            Some(divisors) => {
                let mut scores = Vec::with_capacity(self.sample.len());
                with_simd(GatherDots { factors, k: self.k, items: &self.sample, x: &x, out: &mut scores });
                for (s, &i) in scores.iter_mut().zip(&self.sample) {
                    *s = debiased(*s, divisors[i as usize]);
                }
                moments(&scores)
            }
        };
        let AnnBuffers { by_centroid, probed, scores } = buffers;
        by_centroid.clear();
        with_simd(GatherDots {
            factors: &self.centroids,
            k: self.k,
            items: &self.lists,
            x: &x,
            out: by_centroid,
        });
        probed.clear();
        for l in top_k(by_centroid, params.probe, |_| true) {
            let l = l.item.get();
            probed.extend_from_slice(&self.items[self.offsets[l] as usize..self.offsets[l + 1] as usize]);
        }
        scores.clear();
        with_simd(GatherDots { factors, k: self.k, items: probed, x: &x, out: scores });
        if let Some(divisors) = member.debias {
            for (s, &i) in scores.iter_mut().zip(probed.iter()) {
                *s = debiased(*s, divisors[i as usize]);
            }
        }
        pool.extend(top_k_of(probed.iter().copied().zip(scores.iter().copied()), params.per_member));
        let outcome = match moments {
            Some((mean, scale)) => Fused::Scored(mean, scale),
            None => Fused::NoFiniteScore,
        };
        (State::Factors(x), outcome)
    }
}

/// Lloyd's k-means of the `n × k` rows into `n_lists` lists, on a fixed sample of 64 rows
/// per list (seeded from evenly spaced rows, 8 rounds), then every row assigned to its
/// nearest centroid. Returns the centroids and each row's list. Deterministic.
fn kmeans(rows: &[f32], k: usize, n_lists: usize) -> (Vec<f32>, Vec<u32>) {
    let n = rows.len() / k.max(1);
    let sample_size = (n_lists * 64).min(n);
    let step = (n / sample_size.max(1)).max(1);
    let sample: Vec<f32> =
        (0..sample_size).flat_map(|s| rows[s * step * k..(s * step + 1) * k].iter().copied()).collect();
    let seed_step = (sample_size / n_lists.max(1)).max(1);
    let mut centroids: Vec<f32> = (0..n_lists)
        .flat_map(|l| sample[l * seed_step * k..(l * seed_step + 1) * k].iter().copied())
        .collect();
    for _ in 0..8 {
        let assigned = nearest(&sample, k, &centroids);
        let mut sums = vec![0f64; n_lists * k];
        let mut counts = vec![0u32; n_lists];
        for (s, &l) in assigned.iter().enumerate() {
            counts[l as usize] += 1;
            let row = &sample[s * k..(s + 1) * k];
            sums[l as usize * k..(l as usize + 1) * k]
                .iter_mut()
                .zip(row)
                .for_each(|(a, &v)| *a += f64::from(v));
        }
        for l in 0..n_lists {
            // An empty list keeps its centroid (it may collect rows in a later round).
            if counts[l] > 0 {
                for d in 0..k {
                    centroids[l * k + d] = (sums[l * k + d] / f64::from(counts[l])) as f32;
                }
            }
        }
    }
    let assigned = nearest(rows, k, &centroids);
    (centroids, assigned)
}

/// The nearest centroid (Euclidean) of every row: the largest `row · c − ‖c‖² / 2`, through
/// blocked matrix products in parallel.
fn nearest(rows: &[f32], k: usize, centroids: &[f32]) -> Vec<u32> {
    const BLOCK: usize = 1_024;
    let n_lists = centroids.len() / k;
    let half_norms: Vec<f32> =
        centroids.chunks_exact(k).map(|c| c.iter().map(|v| v * v).sum::<f32>() / 2.0).collect();
    let centres = MatRef::from_column_major_slice(centroids, k, n_lists);
    rows.par_chunks(BLOCK * k)
        .flat_map_iter(|block| {
            let b = block.len() / k;
            let mut products = vec![0f32; b * n_lists];
            let out = MatMut::from_row_major_slice_mut(&mut products, b, n_lists);
            let a = MatRef::from_row_major_slice(block, b, k);
            faer::linalg::matmul::matmul(out, faer::Accum::Replace, a, centres, 1.0f32, Par::Seq);
            products
                .chunks_exact(n_lists)
                .map(|row| {
                    let mut best = (0u32, f32::NEG_INFINITY);
                    for (l, (&p, &h)) in row.iter().zip(&half_norms).enumerate() {
                        if p - h > best.1 {
                            best = (l as u32, p - h);
                        }
                    }
                    best.0
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Popularity's part: items in groups (each category, then the uncategorised) sorted by
/// de-biased popularity, and each group's sum and sum of squares.
struct PopularityIndex {
    /// Each item's de-biased global popularity.
    values: Vec<f32>,
    /// Each item's group.
    group: Vec<u32>,
    /// Group `g` holds `sorted[offsets[g]..offsets[g + 1]]`, best first.
    offsets: Vec<u32>,
    sorted: Vec<u32>,
    /// Per group: (Σ v, Σ v²).
    sums: Vec<(f64, f64)>,
}

impl PopularityIndex {
    fn new(model: &PopularityModel, divisors: Option<&[f32]>) -> Self {
        let global = model.global();
        let values: Vec<f32> = match divisors {
            Some(d) => global.iter().zip(d).map(|(&s, &f)| debiased(s, f)).collect(),
            None => global.to_vec(),
        };
        let n_groups = model.n_categories() + 1;
        let categories = model.categories();
        let group: Vec<u32> = (0..values.len())
            .map(|i| categories.get(i).copied().flatten().unwrap_or(model.n_categories() as u32))
            .collect();
        let mut sorted: Vec<u32> = (0..values.len() as u32).collect();
        sorted.sort_by(|&a, &b| {
            group[a as usize]
                .cmp(&group[b as usize])
                .then(values[b as usize].total_cmp(&values[a as usize]))
                .then(a.cmp(&b))
        });
        let mut offsets = vec![0u32; n_groups + 1];
        let mut sums = vec![(0f64, 0f64); n_groups];
        for (i, &g) in group.iter().enumerate() {
            offsets[g as usize + 1] += 1;
            let v = f64::from(values[i]);
            sums[g as usize].0 += v;
            sums[g as usize].1 += v * v;
        }
        for g in 0..n_groups {
            offsets[g + 1] += offsets[g];
        }
        PopularityIndex { values, group, offsets, sorted, sums }
    }

    fn score(&self, factors: &[f32], i: usize) -> f32 {
        self.values[i] * factors[self.group[i] as usize]
    }

    /// The query's group factors, the moments and the `per_member` best items: a merge of the
    /// groups' sorted lists under their factors.
    fn propose(
        &self,
        model: &PopularityModel,
        query: &Query<'_>,
        per_member: usize,
        pool: &mut Vec<u32>,
    ) -> (State, Fused) {
        if let Err(error) = crate::recommender::check_history(self.values.len(), query) {
            return (State::None, Fused::Failed(error));
        }
        let n_groups = self.sums.len();
        let factors: Vec<f32> = match model.shares(query) {
            Some(shares) => shares.by_category.iter().copied().chain([shares.uncategorised]).collect(),
            None => vec![1.0; n_groups],
        };
        let (sum, sum_sq) = self.sums.iter().zip(&factors).fold((0f64, 0f64), |(a, b), (&(s, q), &f)| {
            (a + f64::from(f) * s, b + f64::from(f) * f64::from(f) * q)
        });
        let outcome = match moments_from_sums(self.values.len() as f64, sum, sum_sq) {
            Some((mean, scale)) => Fused::Scored(mean, scale),
            None => Fused::NoFiniteScore,
        };
        // Each group's list is sorted; a heap of their heads gives the best overall.
        let mut heads = std::collections::BinaryHeap::new();
        let entry = |g: usize, at: u32| {
            let item = self.sorted[at as usize];
            (OrderedScore(self.values[item as usize] * factors[g]), std::cmp::Reverse(item), g, at)
        };
        for g in 0..n_groups {
            if self.offsets[g] < self.offsets[g + 1] {
                heads.push(entry(g, self.offsets[g]));
            }
        }
        for _ in 0..per_member {
            let Some((_, std::cmp::Reverse(item), g, at)) = heads.pop() else { break };
            pool.push(item);
            if at + 1 < self.offsets[g + 1] {
                heads.push(entry(g, at + 1));
            }
        }
        (State::Popularity(factors), outcome)
    }
}

/// A score with a total order, for heaps.
#[derive(PartialEq)]
struct OrderedScore(f32);

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

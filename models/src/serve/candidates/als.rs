//! ALS's part of the candidate stage: exact moments from the item factors' mean and
//! covariance, candidates from an inverted-file k-means index.

use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;

use super::{CandidateParams, GatherDots, State, debiased, top_k_of};
use crate::algorithms::als::AlsModel;
use crate::algorithms::linalg::{gram, with_simd};
use crate::blend::{Fused, Member};
use crate::error::Error;
use crate::rank::{moments, moments_from_sums, top_k};
use crate::recommender::Query;

/// Items of a fixed sample, for moments that cannot be computed in closed form.
const SAMPLE: usize = 16_384;

/// Lists of the inverted file per square root of the catalog size: at 100,000 items, √n
/// lists (316 of about 316 items) found 96.8 % of the exact top 10 at 24 probes where √n / 2
/// found 95.3 %, in three quarters of the time (`benches` bin `candidates`).
const LISTS_PER_SQRT: f64 = 1.0;

/// ALS's part: the moments of the item factors and the inverted-file lists.
pub(super) struct AlsIndex {
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
pub(super) struct AnnBuffers {
    by_centroid: Vec<f32>,
    probed: Vec<u32>,
    scores: Vec<f32>,
}

impl AlsIndex {
    pub(super) fn new(als: &AlsModel) -> Self {
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
        let n_lists = (((n as f64).sqrt() * LISTS_PER_SQRT) as usize).clamp(1, 4_096).min(n.max(1));
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
    pub(super) fn propose(
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

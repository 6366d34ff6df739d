//! ALS's part of the candidate stage: exact moments from the item factors' mean and
//! covariance, candidates from an inverted-file k-means index.

use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;

use pulp::{Simd, WithSimd};

use super::{CandidateParams, GatherDots, State, debiased, top_k_of};
use crate::algorithms::als::AlsModel;
use crate::algorithms::linalg::{gram, with_simd};
use crate::blend::{Fused, Member};
use crate::error::Error;
use crate::rank::{moments, moments_from_sums, top_k};
use crate::recommender::Query;

/// Items of a fixed sample, for moments that cannot be computed in closed form.
const SAMPLE: usize = 16_384;

/// Persons whose exact top 10 calibrates the lists probed ([`calibrated_probe`]), at most;
/// fewer on large catalogs (20 at a million items), so that the persons × items products
/// stay near 20 million.
const CALIBRATION_PERSONS: usize = 200;

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
    /// The factors of `items[p]` quantized to 8 bits, row `p` (list order, so a probed list
    /// is one contiguous run), laid out by [`block_codes`]: a quarter of the bytes a scan
    /// of `f32` rows reads.
    codes: Vec<i8>,
    /// Row `p`'s scale: its factor `d` is about `codes[p][d] × scales[p]`.
    scales: Vec<f32>,
    /// `0..n_lists`, to score every centroid.
    lists: Vec<u32>,
    /// Lists scanned per request where ALS scores alone, and where it is one member of a
    /// blend ([`calibrated_probes`]).
    probe: usize,
    blend_probe: usize,
}

/// The per-request buffers of [`AlsIndex::propose`].
#[derive(Default)]
pub(super) struct AnnBuffers {
    by_centroid: Vec<f32>,
    probed: Vec<u32>,
    scores: Vec<f32>,
    query: Vec<i16>,
    /// The quantized query's factor pairs, packed for [`code_dots`].
    packed: Vec<i32>,
}

impl AlsIndex {
    /// The index of `als`'s item factors, its lists probed per request calibrated to
    /// `params` ([`calibrated_probe`]).
    pub(super) fn new(als: &AlsModel, params: &CandidateParams) -> Self {
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
        let mut codes = vec![0i8; n * k];
        let mut scales = vec![0f32; n];
        for ((code, scale), &i) in codes.chunks_exact_mut(k.max(1)).zip(&mut scales).zip(&items) {
            *scale = quantize(&factors[i as usize * k..(i as usize + 1) * k], i8::MAX, code);
        }
        let codes = block_codes(&codes, k);
        let (probe, blend_probe) = calibrated_probes(als, &centroids, &assigned, params);
        AlsIndex {
            k,
            mean,
            covariance,
            sample,
            centroids,
            offsets,
            items,
            lists,
            probe,
            blend_probe,
            codes,
            scales,
        }
    }

    /// The person's vector, the catalog's moments and the best items of the lists whose
    /// centroids score highest (pushed onto `pool`): as many lists as calibrated for ALS
    /// scoring `alone` or as one member of a blend.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn propose(
        &self,
        als: &AlsModel,
        member: &Member<'_>,
        query: &Query<'_>,
        alone: bool,
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
        let AnnBuffers { by_centroid, probed, scores, query, packed } = buffers;
        by_centroid.clear();
        with_simd(GatherDots {
            factors: &self.centroids,
            k: self.k,
            items: &self.lists,
            x: &x,
            out: by_centroid,
        });
        probed.clear();
        scores.clear();
        query.clear();
        query.resize(self.k, 0);
        let x_scale = quantize(&x, QUERY_MAX, query);
        pack_pairs(query, packed);
        let probe = if alone { self.probe } else { self.blend_probe };
        for l in top_k(by_centroid, probe, |_| true) {
            let l = l.item.get();
            let range = self.offsets[l] as usize..self.offsets[l + 1] as usize;
            probed.extend_from_slice(&self.items[range.clone()]);
            code_dots(CodeDots {
                codes: &self.codes,
                rows: range,
                scales: &self.scales,
                query: packed,
                x_scale,
                out: scores,
            });
        }
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

/// The lists to scan per request: the fewest, at least `params.probe`, whose lists hold
/// `params.recall` of the exact top 10 (ALS's scores over every item) of a sample of the
/// trained persons, each person's lists taken in the order their centroids score for them,
/// as a request takes them; and the same for `params.blend_recall`. How many lists a recall
/// needs depends on the data (at 100,000 items, ALS alone: 24 lists held 0.82 of the top 10
/// on the generated omnichannel events, where at 1,000,000 items 24 held 0.95 on plain
/// interactions), so it is measured on the model instead of fixed. A recall of 0 keeps
/// `params.probe`.
fn calibrated_probes(
    als: &AlsModel,
    centroids: &[f32],
    assigned: &[u32],
    params: &CandidateParams,
) -> (usize, usize) {
    let k = als.factors();
    let n_lists = centroids.len() / k.max(1);
    let floor = params.probe.clamp(1, n_lists.max(1));
    let n_items = assigned.len();
    if (params.recall <= 0.0 && params.blend_recall <= 0.0) || n_items == 0 || k == 0 {
        return (floor, floor);
    }
    let users = als.user_factors();
    let n_users = users.len() / k;
    let wanted = (20_000_000 / n_items).clamp(20, CALIBRATION_PERSONS).min(n_users);
    let step = (n_users / wanted.max(1)).max(1);
    let all_items: Vec<u32> = (0..n_items as u32).collect();
    let all_lists: Vec<u32> = (0..n_lists as u32).collect();
    // Per person, the rank (in probing order) of the list of each of its exact top 10.
    let ranks: Vec<Vec<usize>> = (0..n_users)
        .step_by(step)
        .take(wanted)
        .collect::<Vec<_>>()
        .into_par_iter()
        .filter_map(|u| {
            let x = &users[u * k..(u + 1) * k];
            if x.iter().all(|&v| v == 0.0) {
                return None;
            }
            let (mut scores, mut by_centroid) = (Vec::with_capacity(n_items), Vec::with_capacity(n_lists));
            with_simd(GatherDots { factors: als.item_factors(), k, items: &all_items, x, out: &mut scores });
            with_simd(GatherDots { factors: centroids, k, items: &all_lists, x, out: &mut by_centroid });
            let mut rank_of = vec![0usize; n_lists];
            for (rank, l) in top_k(&by_centroid, n_lists, |_| true).iter().enumerate() {
                rank_of[l.item.get()] = rank;
            }
            let best = top_k(&scores, 10, |_| true);
            Some(best.iter().map(|s| rank_of[assigned[s.item.get()] as usize]).collect())
        })
        .collect();
    let mut found = vec![0usize; n_lists + 1];
    for &rank in ranks.iter().flatten() {
        found[rank + 1] += 1;
    }
    let total: usize = found.iter().sum();
    let lists_for = |recall: f64| {
        if recall <= 0.0 || total == 0 {
            return floor;
        }
        let mut covered = 0;
        for (probe, &count) in found.iter().enumerate() {
            covered += count;
            if probe >= floor && covered as f64 >= recall * total as f64 {
                return probe;
            }
        }
        n_lists
    };
    (lists_for(params.recall), lists_for(params.blend_recall))
}

/// The largest quantized query component: with 8-bit item codes, a dot product over
/// [`MAX_FACTORS`](crate::algorithms::als) (1,024) factors stays within an `i32`
/// (1,024 × 127 × 16,383 < 2³¹).
const QUERY_MAX: i16 = 16_383;

/// Quantizes `values` symmetrically to integers in `±max` (written to `out`, which has their
/// length) and returns the scale: `values[d] ≈ out[d] × scale`. All zeros (or no finite
/// value) give scale 0.
fn quantize<T: TryFrom<i32> + Default + Copy>(values: &[f32], max: T, out: &mut [T]) -> f32
where
    i32: From<T>,
{
    let largest = values.iter().filter(|v| v.is_finite()).fold(0f32, |m, v| m.max(v.abs()));
    let limit = i32::from(max) as f32;
    if largest == 0.0 {
        out.iter_mut().for_each(|o| *o = T::default());
        return 0.0;
    }
    let scale = largest / limit;
    for (o, &v) in out.iter_mut().zip(values) {
        let q = if v.is_finite() { (v / scale).round().clamp(-limit, limit) as i32 } else { 0 };
        *o = T::try_from(q).unwrap_or_default();
    }
    scale
}

/// Rows of one block of [`block_codes`].
const BLOCK: usize = 16;

/// Row-major `k`-wide `codes` in blocks of 16 rows, each block stored factor pair by factor
/// pair: codes `2p` and `2p + 1` of row `16b + l` at `((b × pairs + p) × 16 + l) × 2`. A
/// block's 16 sums then build up side by side in one register, with no sum across lanes per
/// row. The rows after the last (up to a whole block) and the factor after an odd `k` are
/// zeros.
fn block_codes(codes: &[i8], k: usize) -> Vec<i8> {
    let k = k.max(1);
    let pairs = k.div_ceil(2);
    let n = codes.len() / k;
    let mut blocked = vec![0i8; n.div_ceil(BLOCK) * pairs * BLOCK * 2];
    for (row, code) in codes.chunks_exact(k).enumerate() {
        let (b, l) = (row / BLOCK, row % BLOCK);
        for (d, &c) in code.iter().enumerate() {
            blocked[((b * pairs + d / 2) * BLOCK + l) * 2 + d % 2] = c;
        }
    }
    blocked
}

/// The quantized query's factors `2p` and `2p + 1` in the low and high halves of `packed[p]`
/// (a zero after an odd count), as [`code_dots`] multiplies them.
fn pack_pairs(query: &[i16], packed: &mut Vec<i32>) {
    packed.clear();
    packed.extend(query.chunks(2).map(|pair| {
        let low = pair[0] as u16 as u32;
        let high = pair.get(1).map_or(0, |&q| q as u16 as u32);
        (low | high << 16) as i32
    }));
}

/// `out.push(scale_p × x_scale × (codes_p · query))` for each row `p` of `rows`: the codes in
/// [`block_codes`]' layout, the query's pairs packed by [`pack_pairs`], integer products
/// summed in `i32`.
struct CodeDots<'a> {
    codes: &'a [i8],
    rows: std::ops::Range<usize>,
    scales: &'a [f32],
    query: &'a [i32],
    x_scale: f32,
    out: &'a mut Vec<f32>,
}

/// [`CodeDots`] 16 rows at a time on AVX-512 (widen 32 codes, multiply-add pairs against
/// the query's pair: 16 rows' partial sums per instruction), elsewhere row by row. The
/// integer sums are the same either way, so the scores are too.
fn code_dots(dots: CodeDots<'_>) {
    let whole = dots.rows.end.div_ceil(BLOCK) * dots.query.len() * BLOCK * 2 <= dots.codes.len();
    #[cfg(target_arch = "x86_64")]
    if whole && let Some(simd) = crate::algorithms::linalg::avx512() {
        pulp::Simd::vectorize(simd, Avx512CodeDots { simd, dots });
        return;
    }
    with_simd(dots);
}

impl WithSimd for CodeDots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let pairs = self.query.len();
        for row in self.rows {
            let (b, l) = (row / BLOCK, row % BLOCK);
            let mut dot = 0i32;
            for (p, &packed) in self.query.iter().enumerate() {
                let at = ((b * pairs + p) * BLOCK + l) * 2;
                let (low, high) = (i32::from(packed as i16), i32::from((packed >> 16) as i16));
                let codes = self.codes.get(at..at + 2).unwrap_or(&[0, 0]);
                dot += i32::from(codes[0]) * low + i32::from(codes[1]) * high;
            }
            let scale = self.scales.get(row).copied().unwrap_or(f32::NAN);
            self.out.push(scale * self.x_scale * dot as f32);
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx512CodeDots<'a> {
    simd: pulp::x86::V4,
    dots: CodeDots<'a>,
}

#[cfg(target_arch = "x86_64")]
impl WithSimd for Avx512CodeDots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let (f, bw) = (self.simd.avx512f, self.simd.avx512bw);
        let CodeDots { codes, rows, scales, query, x_scale, out } = self.dots;
        let block_len = query.len() * BLOCK * 2;
        for b in rows.start / BLOCK..rows.end.div_ceil(BLOCK) {
            let Some(block) = codes.get(b * block_len..(b + 1) * block_len) else { continue };
            // Two independent sums, so consecutive additions do not wait on each other.
            let mut acc = [f._mm512_setzero_si512(); 2];
            for (p, (pair, &q)) in block.chunks_exact(BLOCK * 2).zip(query).enumerate() {
                let Ok(pair) = <[i8; BLOCK * 2]>::try_from(pair) else { continue };
                let wide = bw._mm512_cvtepi8_epi16(pulp::cast(pair));
                let products = bw._mm512_madd_epi16(wide, f._mm512_set1_epi32(q));
                acc[p % 2] = f._mm512_add_epi32(acc[p % 2], products);
            }
            let dots = f._mm512_cvtepi32_ps(f._mm512_add_epi32(acc[0], acc[1]));
            let first = b * BLOCK;
            // A block within `rows` scales its 16 sums together, in the scalar order
            // (`scale × x_scale × dot`), so to the same bits.
            let whole = rows.start <= first && first + BLOCK <= rows.end;
            if let (true, Some(Ok(block_scales))) =
                (whole, scales.get(first..first + BLOCK).map(<[f32; BLOCK]>::try_from))
            {
                let scaled = f._mm512_mul_ps(pulp::cast(block_scales), f._mm512_set1_ps(x_scale));
                out.extend_from_slice(&pulp::cast::<_, [f32; BLOCK]>(f._mm512_mul_ps(scaled, dots)));
                continue;
            }
            let sums: [f32; BLOCK] = pulp::cast(dots);
            for (l, &dot) in sums.iter().enumerate() {
                let row = first + l;
                if rows.contains(&row) {
                    let scale = scales.get(row).copied().unwrap_or(f32::NAN);
                    out.push(scale * x_scale * dot);
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of `k` values in about ±1 with some exact zeros, seeded.
    fn rows(n: usize, k: usize) -> Vec<f32> {
        let mut state = 11u64;
        (0..n * k)
            .map(|at| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if at % 17 == 0 { 0.0 } else { ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 }
            })
            .collect()
    }

    #[test]
    fn quantization_rounds_each_value_to_its_nearest_step() {
        let values = rows(1, 64);
        let mut codes = vec![0i8; 64];
        let scale = quantize(&values, i8::MAX, &mut codes);
        let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((scale - largest / 127.0).abs() <= f32::EPSILON * largest);
        for (&v, &c) in values.iter().zip(&codes) {
            assert!((v - f32::from(c) * scale).abs() <= scale / 2.0 * (1.0 + 1e-5), "{v} → {c}");
        }
        assert!(codes.iter().any(|&c| c.abs() == 127));
        // Nothing to scale: zeros; non-finite values count as 0.
        let mut out = vec![5i16; 3];
        assert_eq!(quantize(&[0.0, 0.0, 0.0], QUERY_MAX, &mut out), 0.0);
        assert_eq!(out, [0, 0, 0]);
        let scale = quantize(&[f32::NAN, 2.0, -1.0], QUERY_MAX, &mut out);
        assert_eq!((out[0], out[1], out[2]), (0, QUERY_MAX, -8_192));
        assert!((scale - 2.0 / f32::from(QUERY_MAX)).abs() < 1e-9);
    }

    /// The integer scan gives each row's dot product with the query within the rounding of
    /// both sides, on every instruction set and over any run of rows (a list starts and ends
    /// anywhere in a block); the AVX-512 blocks give the row-by-row sums bit for bit; the
    /// widest sums cannot overflow.
    #[test]
    fn quantized_dot_products_match_the_f64_reference_on_every_instruction_set() {
        for k in [1, 7, 16, 64, 100] {
            let (n, factors, x) = (40, rows(40, k), rows(1, k + 3)[3..].to_vec());
            let mut codes = vec![0i8; n * k];
            let mut scales = vec![0f32; n];
            for ((code, scale), row) in
                codes.chunks_exact_mut(k).zip(&mut scales).zip(factors.chunks_exact(k))
            {
                *scale = quantize(row, i8::MAX, code);
            }
            let codes = block_codes(&codes, k);
            let mut query = vec![0i16; k];
            let x_scale = quantize(&x, QUERY_MAX, &mut query);
            let mut packed = Vec::new();
            pack_pairs(&query, &mut packed);
            for rows in [0..n, 3..29, 16..32, 17..18, 5..5, 33..40] {
                let check = |name: &str, scores: &[f32]| {
                    assert_eq!(scores.len(), rows.len(), "{name}");
                    for (p, &got) in rows.clone().zip(scores) {
                        let row = &factors[p * k..(p + 1) * k];
                        let exact: f64 = row.iter().zip(&x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                        // Each row value is off by at most half its step, each query value by
                        // half of its (much finer) step.
                        let bound = f64::from(scales[p]) / 2.0
                            * x.iter().map(|v| f64::from(v.abs())).sum::<f64>()
                            + f64::from(x_scale) * row.iter().map(|v| f64::from(v.abs())).sum::<f64>()
                            + 1e-5;
                        assert!(
                            (f64::from(got) - exact).abs() <= bound,
                            "{name}, k {k}, row {p}: {got} vs {exact}"
                        );
                    }
                };
                fn dots<'a>(
                    codes: &'a [i8],
                    rows: std::ops::Range<usize>,
                    scales: &'a [f32],
                    query: &'a [i32],
                    x_scale: f32,
                    out: &'a mut Vec<f32>,
                ) -> CodeDots<'a> {
                    CodeDots { codes, rows, scales, query, x_scale, out }
                }
                let mut reference = Vec::new();
                Simd::vectorize(
                    pulp::Scalar::new(),
                    dots(&codes, rows.clone(), &scales, &packed, x_scale, &mut reference),
                );
                check("scalar", &reference);
                let mut scores = Vec::new();
                #[cfg(target_arch = "x86_64")]
                {
                    if let Some(simd) = pulp::x86::V3::try_new() {
                        Simd::vectorize(
                            simd,
                            dots(&codes, rows.clone(), &scales, &packed, x_scale, &mut scores),
                        );
                        assert_eq!(std::mem::take(&mut scores), reference, "avx2, k {k}, rows {rows:?}");
                    }
                    if let Some(simd) = pulp::x86::V4::try_new() {
                        Simd::vectorize(
                            simd,
                            Avx512CodeDots {
                                simd,
                                dots: dots(&codes, rows.clone(), &scales, &packed, x_scale, &mut scores),
                            },
                        );
                        assert_eq!(
                            std::mem::take(&mut scores),
                            reference,
                            "avx512 blocks, k {k}, rows {rows:?}"
                        );
                    }
                }
                code_dots(dots(&codes, rows.clone(), &scales, &packed, x_scale, &mut scores));
                assert_eq!(scores, reference, "dispatched, k {k}, rows {rows:?}");
            }
        }
        // The extreme: 1,024 factors all at the largest codes of the same sign.
        let codes = block_codes(&[-127i8; 1_024], 1_024);
        let mut packed = Vec::new();
        pack_pairs(&[-QUERY_MAX; 1_024], &mut packed);
        let mut scores = Vec::new();
        code_dots(CodeDots {
            codes: &codes,
            rows: 0..1,
            scales: &[1.0],
            query: &packed,
            x_scale: 1.0,
            out: &mut scores,
        });
        assert_eq!(scores, [1_024.0 * 127.0 * f32::from(QUERY_MAX)]);
    }
}

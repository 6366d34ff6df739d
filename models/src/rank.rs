//! Ranking: the `k` best items of a score vector, and score normalisation for blends.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use datasets::ItemIdx;
use pulp::{Simd, WithSimd};

use crate::algorithms::linalg::with_simd;

/// An item with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredItem {
    /// The item.
    pub item: ItemIdx,
    /// Its score; higher is better.
    pub score: f32,
}

/// Heap entry ordered by score (total order, NaN lowest), then by lower item index first.
#[derive(Clone, Copy, PartialEq)]
struct Entry(f32, u32);

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        let nan_low = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
        nan_low(self.0).total_cmp(&nan_low(other.0)).then_with(|| other.1.cmp(&self.1))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` highest-scoring items for which `is_allowed` holds, best first; ties go to the
/// lower item index. NaN and negative-infinity scores are never returned.
pub fn top_k(scores: &[f32], k: usize, mut is_allowed: impl FnMut(usize) -> bool) -> Vec<ScoredItem> {
    let mut top = TopK::new(k, scores.len());
    scan(scores, &mut top, &mut is_allowed);
    top.ranked()
}

/// What keeps the best of the scores [`scan`] offers ([`TopK`], [`CappedTopK`]).
trait Keep {
    /// The worst kept score once the keeper is full; `None` before.
    fn full_floor(&self) -> Option<f32>;

    /// Considers item `idx` with `score`.
    fn consider(&mut self, idx: usize, score: f32, is_allowed: &mut impl FnMut(usize) -> bool);
}

/// Offers every score of `scores` with its index to `top`, but for whole chunks of 16 below
/// its full floor, which are turned away in a few wide comparisons.
fn scan(scores: &[f32], top: &mut impl Keep, is_allowed: &mut impl FnMut(usize) -> bool) {
    let (chunks, rest) = scores.as_chunks::<16>();
    let mut c = 0;
    while c < chunks.len() {
        if let Some(floor) = top.full_floor() {
            match with_simd(FirstReaching { chunks: &chunks[c..], floor }) {
                Some(skip) => c += skip,
                None => break,
            }
        }
        for (l, &score) in chunks[c].iter().enumerate() {
            top.consider(c * 16 + l, score, is_allowed);
        }
        c += 1;
    }
    for (l, &score) in rest.iter().enumerate() {
        top.consider(chunks.len() * 16 + l, score, is_allowed);
    }
}

/// The first of `chunks` with a score at or above `floor` (NaN is not), in one wide
/// comparison per chunk.
struct FirstReaching<'a> {
    chunks: &'a [[f32; 16]],
    floor: f32,
}

impl WithSimd for FirstReaching<'_> {
    type Output = Option<usize>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Option<usize> {
        let floor = self.floor;
        self.chunks.iter().position(|chunk| chunk.iter().fold(false, |any, &s| any | (s >= floor)))
    }
}

/// [`top_k`] over (item, score) pairs of distinct items, `len` of them (only to size the
/// heap): the same order, ties to the lower item.
pub fn top_k_of(
    scores: impl IntoIterator<Item = (usize, f32)>,
    len: usize,
    k: usize,
    mut is_allowed: impl FnMut(usize) -> bool,
) -> Vec<ScoredItem> {
    let mut top = TopK::new(k, len);
    for (idx, score) in scores {
        top.offer(idx, score, &mut is_allowed);
    }
    top.ranked()
}

/// The diversity cap of [`top_k_capped`] and [`top_k_of_capped`]: at most `max` items per
/// category (an item's by `category`, none for an uncategorised one), counting the `taken`
/// ones of each that an earlier stage of the answer already holds.
pub struct Cap<C, T> {
    /// Items per category at most.
    pub max: usize,
    /// An item's category.
    pub category: C,
    /// How many of a category the answer already holds.
    pub taken: T,
}

/// What taking items best first would take under `cap`, stopping at `k`: the `k` best allowed
/// items among those each of which is one of its category's best within the cap, best first,
/// ties to the lower item. One pass: an item that does not beat the worst of the `k` kept
/// cannot be taken (the kept only get better: a newcomer of a full category replaces that
/// category's worst), nor can one that does not beat its full category's worst.
pub fn top_k_capped<C, T>(
    scores: &[f32],
    k: usize,
    cap: &Cap<C, T>,
    mut is_allowed: impl FnMut(usize) -> bool,
) -> Vec<ScoredItem>
where
    C: Fn(usize) -> Option<u32>,
    T: Fn(u32) -> usize,
{
    if k <= FEW {
        let mut top = FewCapped::new(k, cap);
        scan(scores, &mut top, &mut is_allowed);
        return top.ranked();
    }
    let mut top = CappedTopK::new(k, cap);
    scan(scores, &mut top, &mut is_allowed);
    top.ranked()
}

/// [`top_k_capped`] over (item, score) pairs of distinct items.
pub fn top_k_of_capped<C, T>(
    scores: impl IntoIterator<Item = (usize, f32)>,
    k: usize,
    cap: &Cap<C, T>,
    mut is_allowed: impl FnMut(usize) -> bool,
) -> Vec<ScoredItem>
where
    C: Fn(usize) -> Option<u32>,
    T: Fn(u32) -> usize,
{
    if k <= FEW {
        let mut top = FewCapped::new(k, cap);
        for (idx, score) in scores {
            top.offer(idx, score, &mut is_allowed);
        }
        return top.ranked();
    }
    let mut top = CappedTopK::new(k, cap);
    for (idx, score) in scores {
        top.offer(idx, score, &mut is_allowed);
    }
    top.ranked()
}

/// Up to this `k`, the capped selections keep their items in a plain list ([`FewCapped`]):
/// a page's few items are searched faster than a tree and per-category heaps are kept.
const FEW: usize = 32;

/// [`CappedTopK`] for a few items: the kept in one unordered list, every step a pass over
/// it (`kernels/top_k/capped/6`, 10,000 scores: 3.8 µs against the tree's 7.4).
struct FewCapped<'c, C, T> {
    k: usize,
    cap: &'c Cap<C, T>,
    /// The kept, each with its category.
    kept: Vec<(Entry, Option<u32>)>,
    /// The worst kept score once `k` are kept (see [`TopK`]).
    floor: f32,
}

impl<'c, C, T> FewCapped<'c, C, T>
where
    C: Fn(usize) -> Option<u32>,
    T: Fn(u32) -> usize,
{
    fn new(k: usize, cap: &'c Cap<C, T>) -> Self {
        FewCapped { k, cap, kept: Vec::with_capacity(k + 1), floor: f32::NEG_INFINITY }
    }

    /// Where in `kept` the worst of those `of` holds is.
    fn worst(&self, of: impl Fn(Option<u32>) -> bool) -> Option<usize> {
        let mut worst: Option<usize> = None;
        for (at, &(entry, category)) in self.kept.iter().enumerate() {
            if of(category) && worst.is_none_or(|w| entry < self.kept[w].0) {
                worst = Some(at);
            }
        }
        worst
    }

    fn offer(&mut self, idx: usize, score: f32, is_allowed: &mut impl FnMut(usize) -> bool) {
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if self.k == 0 || !(score >= self.floor) || score == f32::NEG_INFINITY {
            return;
        }
        let entry = Entry(score, idx as u32);
        let full = self.kept.len() == self.k;
        if full && self.worst(|_| true).is_some_and(|w| entry <= self.kept[w].0) {
            return;
        }
        let category = (self.cap.category)(idx);
        // A newcomer of a full category must beat that category's worst kept item, and
        // replaces it.
        let mut replaces = None;
        if let Some(c) = category {
            let room = self.cap.max.saturating_sub((self.cap.taken)(c));
            let same = self.kept.iter().filter(|(_, k)| *k == Some(c)).count();
            if same >= room {
                match self.worst(|k| k == Some(c)) {
                    Some(w) if entry > self.kept[w].0 => replaces = Some(w),
                    _ => return,
                }
            }
        }
        if !is_allowed(idx) {
            return;
        }
        match replaces {
            Some(w) => self.kept[w] = (entry, category),
            None => {
                self.kept.push((entry, category));
                if self.kept.len() > self.k
                    && let Some(w) = self.worst(|_| true)
                {
                    self.kept.swap_remove(w);
                }
            }
        }
        if self.kept.len() == self.k {
            self.floor = self.worst(|_| true).map_or(f32::NEG_INFINITY, |w| self.kept[w].0.0);
        }
    }

    fn ranked(mut self) -> Vec<ScoredItem> {
        self.kept.sort_unstable_by_key(|&(entry, _)| Reverse(entry));
        self.kept
            .into_iter()
            .map(|(Entry(score, item), _)| ScoredItem { item: ItemIdx(item), score })
            .collect()
    }
}

impl<C, T> Keep for FewCapped<'_, C, T>
where
    C: Fn(usize) -> Option<u32>,
    T: Fn(u32) -> usize,
{
    fn full_floor(&self) -> Option<f32> {
        (self.kept.len() == self.k).then_some(self.floor)
    }

    fn consider(&mut self, idx: usize, score: f32, is_allowed: &mut impl FnMut(usize) -> bool) {
        self.offer(idx, score, is_allowed);
    }
}

/// The best `k` offered so far under a [`Cap`]: every step in logarithmic time, so a page of
/// thousands (`max_k`) under a cap costs what [`TopK`] does.
struct CappedTopK<'c, C, T> {
    k: usize,
    cap: &'c Cap<C, T>,
    /// The kept, each with its category, worst first.
    kept: BTreeSet<(Entry, Option<u32>)>,
    /// Each category's kept, worst on top.
    by_category: HashMap<u32, BinaryHeap<Reverse<Entry>>>,
    /// The worst kept score once `k` are kept (see [`TopK`]).
    floor: f32,
}

impl<'c, C, T> CappedTopK<'c, C, T>
where
    C: Fn(usize) -> Option<u32>,
    T: Fn(u32) -> usize,
{
    fn new(k: usize, cap: &'c Cap<C, T>) -> Self {
        CappedTopK { k, cap, kept: BTreeSet::new(), by_category: HashMap::new(), floor: f32::NEG_INFINITY }
    }

    fn is_full(&self) -> bool {
        self.kept.len() == self.k
    }

    fn offer(&mut self, idx: usize, score: f32, is_allowed: &mut impl FnMut(usize) -> bool) {
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if self.k == 0 || !(score >= self.floor) || score == f32::NEG_INFINITY {
            return;
        }
        let entry = Entry(score, idx as u32);
        if self.is_full() && self.kept.first().is_some_and(|(worst, _)| entry <= *worst) {
            return;
        }
        let category = (self.cap.category)(idx);
        // A newcomer of a full category must beat that category's worst kept item: a test
        // cheaper than the rules', and the one that turns most of a favoured category away.
        if let Some(c) = category {
            let same = self.by_category.get(&c);
            if same.map_or(0, BinaryHeap::len) >= self.cap.max.saturating_sub((self.cap.taken)(c))
                && same.and_then(BinaryHeap::peek).is_none_or(|&Reverse(worst)| entry <= worst)
            {
                return;
            }
        }
        if !is_allowed(idx) {
            return;
        }
        if let Some(c) = category {
            let room = self.cap.max.saturating_sub((self.cap.taken)(c));
            let same = self.by_category.entry(c).or_default();
            if same.len() >= room {
                // A full category: the newcomer must beat its worst kept item, and replaces it.
                match same.peek() {
                    Some(&Reverse(worst)) if entry > worst => {
                        same.pop();
                        self.kept.remove(&(worst, category));
                    }
                    _ => return,
                }
            }
            same.push(Reverse(entry));
        }
        self.kept.insert((entry, category));
        if self.kept.len() > self.k {
            // The worst kept is also the worst of its own category.
            if let Some((_, Some(c))) = self.kept.pop_first() {
                self.by_category.get_mut(&c).and_then(BinaryHeap::pop);
            }
        }
        if self.is_full() {
            self.floor = self.kept.first().map_or(f32::NEG_INFINITY, |(worst, _)| worst.0);
        }
    }

    fn ranked(self) -> Vec<ScoredItem> {
        self.kept
            .into_iter()
            .rev()
            .map(|(Entry(score, item), _)| ScoredItem { item: ItemIdx(item), score })
            .collect()
    }
}

impl<C, T> Keep for CappedTopK<'_, C, T>
where
    C: Fn(usize) -> Option<u32>,
    T: Fn(u32) -> usize,
{
    fn full_floor(&self) -> Option<f32> {
        self.is_full().then_some(self.floor)
    }

    fn consider(&mut self, idx: usize, score: f32, is_allowed: &mut impl FnMut(usize) -> bool) {
        self.offer(idx, score, is_allowed);
    }
}

impl Keep for TopK {
    fn full_floor(&self) -> Option<f32> {
        self.is_full().then_some(self.floor)
    }

    fn consider(&mut self, idx: usize, score: f32, is_allowed: &mut impl FnMut(usize) -> bool) {
        self.offer(idx, score, is_allowed);
    }
}

/// The best `k` offered so far, in a heap whose root is the worst kept.
struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Entry>>,
    /// The worst kept score once the heap is full: one float comparison turns away almost
    /// every item of a long vector (NaN fails it too) before the full order is consulted.
    floor: f32,
}

impl TopK {
    fn new(k: usize, len: usize) -> TopK {
        // `k` may be anything a caller was given: the heap never holds more than the scores.
        TopK { k, heap: BinaryHeap::with_capacity(k.min(len) + 1), floor: f32::NEG_INFINITY }
    }

    fn is_full(&self) -> bool {
        self.heap.len() == self.k
    }

    fn offer(&mut self, idx: usize, score: f32, is_allowed: &mut impl FnMut(usize) -> bool) {
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if self.k == 0 || !(score >= self.floor) || score == f32::NEG_INFINITY {
            return;
        }
        if self.is_full() && self.heap.peek().is_some_and(|Reverse(worst)| Entry(score, idx as u32) <= *worst)
        {
            return;
        }
        if !is_allowed(idx) {
            return;
        }
        self.heap.push(Reverse(Entry(score, idx as u32)));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
        if self.is_full() {
            self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |Reverse(worst)| worst.0);
        }
    }

    fn ranked(self) -> Vec<ScoredItem> {
        let mut ranked: Vec<ScoredItem> = self
            .heap
            .into_iter()
            .map(|Reverse(Entry(score, item))| ScoredItem { item: ItemIdx(item), score })
            .collect();
        ranked.sort_by_key(|s| Reverse(Entry(s.score, s.item.0)));
        ranked
    }
}

/// Standardises finite scores in place to mean 0 and standard deviation 1 (z-scores), so
/// models on different scales can be blended. A constant vector becomes all zeros;
/// non-finite entries are left as they are.
pub fn standardise(scores: &mut [f32]) {
    let Some((mean, scale)) = moments(scores) else { return };
    for s in scores.iter_mut() {
        if s.is_finite() {
            *s = (*s - mean) * scale;
        }
    }
}

/// Adds `weight` times the z-scores of one member's raw `scores` to `total`, the z-scores
/// computed on the fly from the member's own [`moments`] over the whole catalog, so the raw
/// scores stay intact for explanations. Non-finite scores add nothing. Returns those
/// moments, or `None` when the member has no finite score (then `total` is unchanged).
pub fn add_weighted_z(total: &mut [f32], scores: &[f32], weight: f32) -> Option<(f32, f32)> {
    let moments = moments(scores)?;
    add_scaled_z(total, scores, weight, moments);
    Some(moments)
}

/// The one fusion step of every blend (serving, offline evaluation, batch, the tuner): adds
/// `weight · (s − mean) · scale` for every finite raw score `s` to `total`, as `a·s + b`.
/// `scores` may be a subset of the catalog (the tuner's candidates) as long as `(mean,
/// scale)` are the moments of the member's scores over the whole catalog.
pub fn add_scaled_z(total: &mut [f32], scores: &[f32], weight: f32, (mean, scale): (f32, f32)) {
    let (a, b) = (weight * scale, -weight * scale * mean);
    with_simd(AddScaled { total, scores, a, b });
}

/// `total[i] += a · scores[i] + b` where the score is finite: without a branch, so that it
/// compiles to wide selects under the dispatched instruction set.
struct AddScaled<'a> {
    total: &'a mut [f32],
    scores: &'a [f32],
    a: f32,
    b: f32,
}

impl WithSimd for AddScaled<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let (a, b) = (self.a, self.b);
        for (total, &s) in self.total.iter_mut().zip(self.scores) {
            let z = a * s + b;
            *total += if s.is_finite() { z } else { 0.0 };
        }
    }
}

/// The mean of the finite scores and the reciprocal of their standard deviation (0 for a
/// constant vector), so `(s - mean) * scale` is the z-score; `None` without finite scores.
/// One pass with sixteen independent partial sums in f32 around a shift (the first finite
/// score), which keeps the variance accurate when the mean is far from zero: this runs on
/// every model's scores for every served request.
pub fn moments(scores: &[f32]) -> Option<(f32, f32)> {
    let shift = *scores.iter().find(|s| s.is_finite())?;
    let Lanes { mut count, mut sum, mut sum_sq } = with_simd(ShiftedSums { scores, shift });
    for &s in scores.chunks_exact(16).remainder().iter().filter(|s| s.is_finite()) {
        count[0] += 1;
        sum[0] += s - shift;
        sum_sq[0] += (s - shift) * (s - shift);
    }
    let n = count.iter().map(|&c| f64::from(c)).sum::<f64>();
    let mean_d = sum.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let variance = (sum_sq.iter().map(|&v| f64::from(v)).sum::<f64>() / n - mean_d * mean_d).max(0.0);
    let std = variance.sqrt();
    let scale = if std > 1e-12 * (1.0 + f64::from(shift).abs()) { (1.0 / std) as f32 } else { 0.0 };
    Some(((f64::from(shift) + mean_d) as f32, scale))
}

/// Per-lane count, sum and sum of squares of `scores[i] − shift` over the finite scores of
/// whole 16-score chunks (the remainder is left to the caller).
struct ShiftedSums<'a> {
    scores: &'a [f32],
    shift: f32,
}

struct Lanes {
    count: [u32; 16],
    sum: [f32; 16],
    sum_sq: [f32; 16],
}

impl WithSimd for ShiftedSums<'_> {
    type Output = Lanes;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Lanes {
        let (mut count, mut sum, mut sum_sq) = ([0u32; 16], [0f32; 16], [0f32; 16]);
        for chunk in self.scores.chunks_exact(16) {
            for l in 0..16 {
                let s = chunk[l];
                let finite = s.is_finite();
                let d = if finite { s - self.shift } else { 0.0 };
                count[l] += u32::from(finite);
                sum[l] += d;
                sum_sq[l] += d * d;
            }
        }
        Lanes { count, sum, sum_sq }
    }
}

/// [`moments`] of a catalog of `n_items` scores that are 0 but for `touched` (values of
/// distinct items): what `moments` gives the dense vector, in one pass over the touched
/// values only. Non-finite values are left out, as `moments` leaves them out.
pub fn sparse_moments(touched: impl IntoIterator<Item = f32>, n_items: usize) -> Option<(f32, f32)> {
    let (mut skipped, mut sum, mut sum_sq) = (0usize, 0f64, 0f64);
    for s in touched {
        if s.is_finite() {
            sum += f64::from(s);
            sum_sq += f64::from(s) * f64::from(s);
        } else {
            skipped += 1;
        }
    }
    moments_from_sums(n_items.saturating_sub(skipped) as f64, sum, sum_sq)
}

/// The (mean, 1 / standard deviation) of `n` scores from their sum and sum of squares (0 for
/// a constant vector, as in [`moments`]); `None` for no scores.
pub fn moments_from_sums(n: f64, sum: f64, sum_sq: f64) -> Option<(f32, f32)> {
    if n < 1.0 {
        return None;
    }
    let mean = sum / n;
    let std = (sum_sq / n - mean * mean).max(0.0).sqrt();
    let scale = if std > 1e-6 * (1e-3 + mean.abs()) { (1.0 / std) as f32 } else { 0.0 };
    Some((mean as f32, scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn best_first_skipping_disallowed_and_nan() {
        let scores = [0.5, f32::NAN, 2.0, 1.0, 2.0, f32::NEG_INFINITY];
        let top = top_k(&scores, 3, |i| i != 3);
        let items: Vec<u32> = top.iter().map(|s| s.item.0).collect();
        // 2.0 twice (lower index first), then 0.5 because item 3 is excluded.
        assert_eq!(items, [2, 4, 0]);
        assert!(top_k(&scores, 0, |_| true).is_empty());
        assert_eq!(top_k(&scores, 10, |_| true).len(), 4);
    }

    #[test]
    fn standardise_gives_z_scores() {
        let mut scores = [1.0, 2.0, 3.0, f32::NEG_INFINITY];
        standardise(&mut scores);
        // mean 2, population std sqrt(2/3).
        let z = (1.0f32 / (2.0f32 / 3.0).sqrt()).abs();
        assert!((scores[0] + z).abs() < 1e-5 && scores[1].abs() < 1e-6 && (scores[2] - z).abs() < 1e-5);
        assert_eq!(scores[3], f32::NEG_INFINITY);
        let mut flat = [4.0; 3];
        standardise(&mut flat);
        assert_eq!(flat, [0.0; 3]);
    }

    proptest! {
        #[test]
        fn sparse_moments_are_the_moments_of_the_dense_vector(
            touched in proptest::collection::btree_map(0usize..300, -50.0f32..50.0, 0..40),
            n in 300usize..400,
        ) {
            let mut dense = vec![0f32; n];
            touched.iter().for_each(|(&i, &v)| dense[i] = v);
            let (mean, scale) = moments(&dense).unwrap();
            let (sparse_mean, sparse_scale) = sparse_moments(touched.values().copied(), n).unwrap();
            prop_assert!((mean - sparse_mean).abs() <= 1e-4 * (1.0 + mean.abs()), "{mean} vs {sparse_mean}");
            prop_assert!((scale - sparse_scale).abs() <= 1e-4 * scale, "{scale} vs {sparse_scale}");
        }

        #[test]
        fn top_k_matches_a_full_sort(scores in proptest::collection::vec(-100i32..103, 0..200), k in 0usize..20) {
            // Ties are frequent; 101 and 102 stand for NaN and negative infinity.
            let scores: Vec<f32> = scores
                .into_iter()
                .map(|s| match s {
                    101 => f32::NAN,
                    102 => f32::NEG_INFINITY,
                    s => s as f32 / 7.0,
                })
                .collect();
            let mut expected: Vec<(f32, usize)> = scores
                .iter()
                .enumerate()
                .filter(|&(i, &s)| i % 5 != 0 && s.is_finite())
                .map(|(i, &s)| (s, i))
                .collect();
            expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            expected.truncate(k);
            let pairs = |top: Vec<ScoredItem>| -> Vec<(f32, usize)> {
                top.iter().map(|s| (s.score, s.item.get())).collect()
            };
            prop_assert_eq!(pairs(top_k(&scores, k, |i| i % 5 != 0)), expected.clone());
            // Pairs in any order give the same answer (ties still to the lower item).
            let reversed = scores.iter().copied().enumerate().rev();
            prop_assert_eq!(pairs(top_k_of(reversed, scores.len(), k, |i| i % 5 != 0)), expected);
        }

        #[test]
        fn capped_top_k_takes_what_taking_best_first_under_the_cap_takes(
            scores in proptest::collection::vec(-100i32..103, 0..200),
            // Both sides of `FEW`: the list and the tree.
            k in 0usize..50,
            max in 1usize..14,
            taken in proptest::collection::vec(0usize..4, 4),
        ) {
            let scores: Vec<f32> = scores
                .into_iter()
                .map(|s| match s {
                    101 => f32::NAN,
                    102 => f32::NEG_INFINITY,
                    s => s as f32 / 7.0,
                })
                .collect();
            // Four categories, every seventh item in none.
            let category = |i: usize| (!i.is_multiple_of(7)).then_some((i % 4) as u32);
            let cap = Cap { max, category, taken: |c: u32| taken[c as usize] };
            // The reference: every allowed finite item best first, each taken unless its
            // category is full, until k.
            let mut order: Vec<(f32, usize)> = scores
                .iter()
                .enumerate()
                .filter(|&(i, &s)| i % 5 != 0 && s.is_finite())
                .map(|(i, &s)| (s, i))
                .collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut held = taken.clone();
            let mut expected = Vec::new();
            for (score, i) in order {
                if expected.len() == k {
                    break;
                }
                if let Some(c) = category(i) {
                    if held[c as usize] >= max {
                        continue;
                    }
                    held[c as usize] += 1;
                }
                expected.push((score, i));
            }
            let pairs = |top: Vec<ScoredItem>| -> Vec<(f32, usize)> {
                top.iter().map(|s| (s.score, s.item.get())).collect()
            };
            prop_assert_eq!(pairs(top_k_capped(&scores, k, &cap, |i| i % 5 != 0)), expected.clone());
            let reversed = scores.iter().copied().enumerate().rev();
            prop_assert_eq!(pairs(top_k_of_capped(reversed, k, &cap, |i| i % 5 != 0)), expected);
        }
    }
}

//! The catalog's most common terms as bits, for scoring every item.
//!
//! Through postings, a profile costs one scattered addition per posting of its terms: a
//! load, an add and a store into a score somewhere in the catalog, one at a time. Most of
//! those postings belong to a few common terms (on the synthetic catalog of 10,000 items, the
//! 54 terms that one item in 24 or more carries hold four fifths of the postings a profile
//! touches). Their weights hardly need storing: an item's row is its terms' counts times
//! their idf, scaled to unit length, so a term the item has once weighs `idf_t × scale_j`
//! with one `scale_j` per item. What is left is which items have the term: one bit per
//! item, 16 items per mask. Scoring adds each common profile term's `idf_t × p_t` to the
//! sixteen sums of a block under its mask (one masked addition per term and block, in
//! registers), multiplies the block by its items' scales, and adds the rest of the
//! profile's postings as before. Weights that are not `idf_t × scale_j` to within a
//! millionth (a term twice in a title, say) stay postings of their own, so every item's sum
//! holds the same products to within a millionth, added in another order. On that catalog a
//! person's content scores took 17 µs instead of 28 (`benches` bin `members`).
//!
//! The masked additions need AVX-512; elsewhere every term goes through the postings.

use crate::algorithms::spread::SPREAD;

/// Items per mask: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// A term that at least one item in this many carries gets bits: its bits cost one masked
/// addition per 16 items, its postings one scattered addition per posting (on the catalog
/// above, 16 to 40 scored alike).
const SHARE: usize = 24;

/// How far a weight may be from `idf_t × scale_j`, relatively, to count as it.
const TOLERANCE: f32 = 1e-6;

/// The common terms of an item × term matrix as bits, with the weights the bits cannot
/// hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct CommonTerms {
    n_items: usize,
    /// The term of each slot.
    terms: Vec<u32>,
    /// The idf of each slot's term.
    idf: Vec<f32>,
    /// Each term's slot; `u32::MAX` for a term left to the postings.
    slot: Vec<u32>,
    /// Block `b`'s masks, one per slot, at `b · slots + slot`: bit `l` for item `16 b + l`.
    masks: Vec<u16>,
    /// Each item's scale, zeros up to a whole block.
    scale: Vec<f32>,
    /// The common terms' weights the bits leave out, as `(item, weight)` per slot.
    rest: Vec<Vec<(u32, f32)>>,
}

impl CommonTerms {
    /// The terms of `rows` (item × term, unit rows of count × `idf` weights) that at least
    /// one item in [`SHARE`] carries; `None` when there are none, or the catalog is too large
    /// for the 16-bit scatter the other terms take.
    pub(super) fn of(rows: &sprs::CsMat<f32>, idf: &[f32]) -> Option<CommonTerms> {
        let (n_items, n_terms) = (rows.rows(), rows.cols());
        if n_items > SPREAD || idf.len() != n_terms {
            return None;
        }
        let mut counts = vec![0usize; n_terms];
        for &term in rows.indices() {
            counts[term] += 1;
        }
        let terms: Vec<u32> = (0..n_terms)
            .filter(|&t| counts[t] > 0 && counts[t].saturating_mul(SHARE) >= n_items && idf[t] > 0.0)
            .map(|t| t as u32)
            .collect();
        if terms.is_empty() {
            return None;
        }
        let slots = terms.len();
        let mut slot = vec![u32::MAX; n_terms];
        for (s, &t) in terms.iter().enumerate() {
            slot[t as usize] = s as u32;
        }
        let blocks = n_items.div_ceil(LANES);
        let mut masks = vec![0u16; blocks * slots];
        let mut scale = vec![0f32; blocks * LANES];
        let mut rest = vec![Vec::new(); slots];
        for (item, row) in rows.outer_iterator().enumerate() {
            let common = || row.iter().filter(|&(t, _)| slot[t] != u32::MAX);
            // A term the item has once weighs least among its terms for its idf. (Without a
            // positive finite scale, every weight stays a posting.)
            let s = common()
                .map(|(t, &w)| w / idf[t])
                .filter(|s| s.is_finite() && *s > 0.0)
                .reduce(f32::min)
                .unwrap_or(0.0);
            scale[item] = s;
            let (block, lane) = (item / LANES, item % LANES);
            for (t, &w) in common() {
                let at = slot[t] as usize;
                if s > 0.0 && (idf[t] * s - w).abs() <= TOLERANCE * w.abs() {
                    masks[block * slots + at] |= 1 << lane;
                } else {
                    rest[at].push((item as u32, w));
                }
            }
        }
        let idf = terms.iter().map(|&t| idf[t as usize]).collect();
        Some(CommonTerms { n_items, terms, idf, slot, masks, scale, rest })
    }

    /// Whether [`CommonTerms::add`] can score a catalog of `n_items` (AVX-512 is there).
    pub(super) fn usable(&self, n_items: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        if crate::algorithms::linalg::avx512().is_some() {
            return n_items == self.n_items;
        }
        false
    }

    /// How many weights of the common terms the bits leave out.
    #[cfg(test)]
    pub(super) fn left_out(&self) -> usize {
        self.rest.iter().map(Vec::len).sum()
    }

    /// Whether term `t` has bits.
    pub(super) fn holds(&self, t: usize) -> bool {
        self.slot.get(t).is_some_and(|&s| s != u32::MAX)
    }

    /// Adds `row_j[t] · profile[t] / norm` to `scores[j]` for every item `j` and every common
    /// term `t`. Returns `false`, with `scores` untouched, where it is not
    /// [`CommonTerms::usable`]: the caller then scores these terms through their postings.
    pub(super) fn add(&self, profile: &[f32], norm: f32, scores: &mut [f32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = crate::algorithms::linalg::avx512().filter(|_| scores.len() == self.n_items) {
            let weight = |t: u32| profile.get(t as usize).map_or(0.0, |p| p / norm);
            let active: Vec<(usize, f32)> = (self.terms.iter().zip(&self.idf).enumerate())
                .filter(|(_, (t, _))| weight(**t) != 0.0)
                .map(|(s, (&t, &idf))| (s, weight(t) * idf))
                .collect();
            pulp::Simd::vectorize(simd, Masked { simd, common: self, active: &active, scores: &mut *scores });
            for &(s, _) in &active {
                let w = weight(self.terms[s]);
                for &(item, value) in &self.rest[s] {
                    scores[item as usize] += value * w;
                }
            }
            return true;
        }
        let _ = (profile, norm);
        false
    }
}

/// The masked additions of [`CommonTerms::add`], a block of 16 items at a time.
#[cfg(target_arch = "x86_64")]
struct Masked<'a> {
    simd: pulp::x86::V4,
    common: &'a CommonTerms,
    /// `(slot, idf × weight)` of the profile's common terms.
    active: &'a [(usize, f32)],
    scores: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl pulp::WithSimd for Masked<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let f = self.simd.avx512f;
        let slots = self.common.terms.len();
        let zero = f._mm512_setzero_ps();
        let (scales, _) = pulp::as_arrays::<LANES, f32>(&self.common.scale);
        let blocks = self.common.masks.chunks_exact(slots).zip(scales);
        for ((masks, scale), out) in blocks.zip(self.scores.chunks_mut(LANES)) {
            // Four independent sums, so consecutive additions do not wait on each other.
            let mut acc = [zero; 4];
            let mut quads = self.active.chunks_exact(4);
            for quad in &mut quads {
                for j in 0..4 {
                    let (s, c) = quad[j];
                    acc[j] = f._mm512_mask_add_ps(acc[j], masks[s], acc[j], f._mm512_set1_ps(c));
                }
            }
            for (j, &(s, c)) in quads.remainder().iter().enumerate() {
                acc[j] = f._mm512_mask_add_ps(acc[j], masks[s], acc[j], f._mm512_set1_ps(c));
            }
            let sum = f._mm512_add_ps(f._mm512_add_ps(acc[0], acc[1]), f._mm512_add_ps(acc[2], acc[3]));
            match <&mut [f32; LANES]>::try_from(&mut *out) {
                Ok(block) => {
                    *block = pulp::cast(f._mm512_fmadd_ps(sum, pulp::cast(*scale), pulp::cast(*block)))
                }
                Err(_) => {
                    let scaled: [f32; LANES] = pulp::cast(f._mm512_mul_ps(sum, pulp::cast(*scale)));
                    out.iter_mut().zip(scaled).for_each(|(o, v)| *o += v);
                }
            }
        }
    }
}

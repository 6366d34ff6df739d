//! The candidate stage: the blend scored on a few hundred items per request instead of the
//! whole catalog, so the cost of an answer stops growing with the catalog.
//!
//! Each blend member proposes its own best [`CandidateParams::per_member`] items, and the
//! blend ([`crate::blend::Blend::fuse`]'s sum of weighted z-scores) is computed on their
//! union only. The z-scores stay those of the whole catalog: each member's mean and standard
//! deviation over every item are known without scoring every item.
//!
//! - **Sparse members** (item-kNN, pruned EASE) score only the items they touch
//!   ([`Recommender::score_sparse`](crate::recommender::Recommender::score_sparse)); every
//!   other item scores exactly 0, so the catalog's moments follow from the touched scores
//!   ([`crate::rank::sparse_moments`]) and their best items are exact.
//! - **Content** scores `r_j · u` (unit TF-IDF row, unit profile): the catalog's moments are
//!   closed forms over per-term sums and a term × term Gram matrix computed once; it
//!   proposes from each profile term's [`CandidateParams::postings`] strongest items
//!   (approximate when a term has more), reading at most [`CandidateParams::scan`] of them
//!   per request (the strongest contributions), and every candidate's score is exact.
//! - **Popularity** scores item `j` as `global_j × f(category_j)` for one factor per category
//!   and query: the moments follow from per-category sums computed once, and the best items
//!   from per-category lists sorted once, merged under the query's factors. Exact.
//! - **ALS** scores `x · y_j`: the catalog's mean is `x · μ` and its variance `xᵀ Σ x` with
//!   `μ`, `Σ` the mean and covariance of the item factors, computed once (exact; from a fixed
//!   sample of 16,384 items when ALS is de-biased, since the de-bias is not linear). Its
//!   best items come from every item below [`CandidateParams::ann_from`] items, and above
//!   from an inverted-file index: k-means lists of item factors (about `√n` lists, built
//!   when the artifact is loaded), of which the lists whose centroid scores highest are
//!   scanned: at least [`CandidateParams::probe`], and as many as held
//!   [`CandidateParams::recall`] of ALS's exact top 10 for a sample of the trained persons
//!   when the index was built; each list one contiguous block of the factors
//!   quantized to 8 bits per value (a scale per item; the query to 15 bits), summed in
//!   integers. That part is approximate (the candidates' scores in the blend are exact); its
//!   recall against full scoring is tested on small data and printed by `cargo run -p
//!   benches --bin candidates` (the README).
//! - Any other member, or one that cannot score sparsely (dense EASE), is scored in full.
//!
//! The engine applies the rules to the candidates; when they leave the answer short (a
//! narrow filter), it scores the catalog in full, so every rule holds exactly as without the
//! stage ([`crate::serve::engine::Engine::answer`]).

mod als;
mod content;
mod popularity;

use datasets::ItemIdx;
use pulp::{Simd, WithSimd};
use serde::{Deserialize, Serialize};

use crate::algorithms::linalg::{dot, with_simd};
use crate::blend::{Blend, Debias, Fused, Member, apply_debias};
use crate::error::Result;
use crate::rank::{moments, sparse_moments, top_k};
use crate::recommender::{ModelKind, Query, SparseScores};
use crate::train::FittedModel;
use als::{AlsIndex, AnnBuffers};
use content::ContentIndex;
use popularity::PopularityIndex;

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
    /// Lists of the index scanned per request, at least (see `recall`).
    pub probe: usize,
    /// When the ALS index is built, it scans as many more lists as it takes to hold this
    /// share of ALS's exact top 10 for a sample of the trained persons; 0 keeps `probe`.
    /// This is the share for placements where ALS alone scores.
    pub recall: f64,
    /// The same share where ALS is one member of a blend among others: their candidates
    /// join ALS's, so the blend's top 10 needs fewer of ALS's lists (at 100,000 items 0.92
    /// kept 0.980 of `home`'s exact top 10 where 0.95 kept 0.987, in two thirds of the
    /// time: `benches` bin `candidates`).
    pub blend_recall: f64,
    /// Content proposes from this many of each term's strongest items (its moments stay
    /// exact whatever the value).
    pub postings: usize,
    /// Content reads at most this many of those postings per request: the strongest
    /// contributions (profile weight × posting) over all the profile's terms.
    pub scan: usize,
}

impl Default for CandidateParams {
    fn default() -> Self {
        CandidateParams {
            per_member: 100,
            min_items: 20_000,
            ann_from: 50_000,
            probe: 24,
            recall: 0.95,
            blend_recall: 0.92,
            postings: 1_000,
            scan: 1_000,
        }
    }
}

impl CandidateParams {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        crate::error::require(self.per_member <= 100_000, "candidates.per_member", "must be at most 100000")?;
        crate::error::require(self.probe >= 1, "candidates.probe", "must be at least 1")?;
        crate::error::require(
            (0.0..=1.0).contains(&self.recall),
            "candidates.recall",
            "must be between 0 and 1",
        )?;
        crate::error::require(
            (0.0..=1.0).contains(&self.blend_recall),
            "candidates.blend_recall",
            "must be between 0 and 1",
        )?;
        crate::error::require(self.postings >= 1, "candidates.postings", "must be at least 1")?;
        crate::error::require(self.scan >= 1, "candidates.scan", "must be at least 1")?;
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
    content: Option<ContentIndex>,
}

impl Retriever {
    /// Prepares the stage for `models` (one artifact's) under its blend `debias`.
    pub fn new(params: CandidateParams, models: &[FittedModel], debias: &Debias) -> Self {
        let n_items = models.first().map_or(0, |m| m.as_recommender().n_items());
        let active = params.applies(n_items);
        let als = models.iter().find_map(|m| match m {
            FittedModel::Als(als) if active && n_items >= params.ann_from => {
                Some(AlsIndex::new(als, &params))
            }
            _ => None,
        });
        let popularity = models.iter().find_map(|m| match m {
            FittedModel::Popularity(p) if active => {
                Some(PopularityIndex::new(p, debias.factors(ModelKind::Popularity)))
            }
            _ => None,
        });
        let content = models.iter().find_map(|m| match m {
            FittedModel::Content(c) if active => {
                ContentIndex::new(c, debias.factors(ModelKind::Content), params.postings)
            }
            _ => None,
        });
        Retriever { params, n_items, als, popularity, content }
    }

    /// The settings.
    pub fn params(&self) -> &CandidateParams {
        &self.params
    }

    /// Whether ALS proposes its candidates through the index (instead of scoring every
    /// item).
    pub fn has_als_index(&self) -> bool {
        self.als.is_some()
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
            let (state, outcome) = match (model, &self.als, &self.popularity, &self.content) {
                (Some(FittedModel::Als(als)), Some(index), _, _) => {
                    let alone = members.len() == 1;
                    index.propose(
                        als,
                        member,
                        query,
                        alone,
                        &self.params,
                        &mut scratch.ann,
                        &mut scratch.pool,
                    )
                }
                (Some(FittedModel::Popularity(p)), _, Some(index), _) => {
                    index.propose(p, query, per_member, &mut scratch.pool)
                }
                (Some(FittedModel::Content(c)), _, _, Some(index)) => {
                    let sparse = &mut scratch.sparse[m];
                    index.propose(c, query, per_member, self.params.scan, sparse, &mut scratch.pool)
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
            State::Content(unit) => match &self.content {
                Some(index) => scratch.raw.extend(pool.iter().map(|&i| index.score(unit, i as usize))),
                None => scratch.raw.extend(pool.iter().map(|_| f32::NAN)),
            },
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
            State::Content(unit) => self.content.as_ref()?.score(unit, i),
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
pub(super) enum State {
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
    /// Content: the profile over its norm.
    Content(Vec<f32>),
}

/// The de-bias of one score by its item's divisor ([`apply_debias`] for one entry).
pub(super) fn debiased(s: f32, divisor: f32) -> f32 {
    if s > 0.0 { s / divisor } else { s * divisor }
}

/// The `k` best of (item, score) pairs (ties to the lower item), as items; non-finite scores
/// are never taken.
///
/// The pairs are read once: a pair below the `k`-th best score of those kept so far cannot
/// be among the best, so it is turned away with one comparison; the kept ones are cut back to
/// their `k` best whenever they grow to four times `k` (which raises that bound). A selection
/// over every pair compared each several times, with the full order.
pub(super) fn top_k_of(pairs: impl Iterator<Item = (u32, f32)>, k: usize) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let cut = |best: &mut Vec<(u32, f32)>| {
        if best.len() > k {
            best.select_nth_unstable_by(k - 1, order);
            best.truncate(k);
        }
    };
    // Room for what is kept before the first cut, no more than the pairs say they hold.
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(pairs.size_hint().1.unwrap_or(usize::MAX).min(4 * k));
    // The `k`-th best score kept so far: every pair of the final answer scores at least that.
    let mut floor = f32::NEG_INFINITY;
    for (item, score) in pairs {
        // Ties with the floor stay: the lower item wins them.
        if score.is_finite() && score >= floor {
            best.push((item, score));
            if best.len() == 4 * k {
                cut(&mut best);
                floor = best.iter().map(|&(_, s)| s).fold(f32::INFINITY, f32::min);
            }
        }
    }
    cut(&mut best);
    best.into_iter().map(|(i, _)| i).collect()
}

/// `out.push(x · row_i)` for each item `i` of `items`.
pub(super) struct GatherDots<'a> {
    pub(super) factors: &'a [f32],
    pub(super) k: usize,
    pub(super) items: &'a [u32],
    pub(super) x: &'a [f32],
    pub(super) out: &'a mut Vec<f32>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The `k` best by score, ties to the lower item, non-finite scores never taken: the
        /// same set as sorting every pair, whatever the order they come in.
        #[test]
        fn top_k_of_is_the_sorted_prefix(
            scores in proptest::collection::vec(
                prop_oneof![
                    8 => (0u8..20).prop_map(f32::from),
                    1 => Just(f32::NAN),
                    1 => Just(f32::INFINITY),
                    1 => Just(f32::NEG_INFINITY),
                    1 => Just(-0.0f32),
                ],
                0..300,
            ),
            k in 0usize..40,
            shift in 0u32..1000,
        ) {
            let pairs: Vec<(u32, f32)> = scores.iter().enumerate().map(|(i, &s)| (i as u32 * 7 + shift, s)).collect();
            let mut want: Vec<(u32, f32)> = pairs.iter().copied().filter(|(_, s)| s.is_finite()).collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut want: Vec<u32> = want.into_iter().take(k).map(|(i, _)| i).collect();
            // Any order of arrival: reversed as well as ascending.
            for pairs in [pairs.clone(), pairs.iter().rev().copied().collect()] {
                let mut got = top_k_of(pairs.into_iter(), k);
                got.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(&got, &want);
            }
        }
    }
}

//! Content's part of the candidate stage.
//!
//! Content scores item `j` as `s_j = w_j · r_j · u`: `r_j` its unit TF-IDF row, `u` the
//! query's profile over its norm, `w_j` one over the item's de-bias divisor (1 without
//! de-bias; content scores are never negative, so the de-bias is that division). Both sums
//! the catalog's moments need are then closed forms computed once per artifact:
//! `Σ_j s_j = (Σ_j w_j r_j) · u` and `Σ_j s_j² = uᵀ G u` with `G = Σ_j w_j² r_j r_jᵀ`, the
//! term × term Gram matrix (sparse: two terms meet only in an item that has both). Exact,
//! at a cost in the profile's terms and their co-occurring terms, not in the catalog.
//!
//! The candidates come from each profile term's strongest items only (the
//! [`CandidateParams::postings`](super::CandidateParams::postings) with the highest `w_j r_jt`, cut once per artifact), scored
//! by what those truncated lists sum to; every candidate's score in the blend is then
//! exact. A term shared by most of the catalog no longer makes every request touch most of
//! the catalog.

use rayon::prelude::*;

use super::State;
use crate::algorithms::content::ContentModel;
use crate::blend::Fused;
use crate::rank::moments_from_sums;
use crate::recommender::{Query, SparseScores};

/// Above this many entries the Gram matrix is not built and content is scored through all
/// its postings (exact, as without the index): about 100 MB.
const GRAM_MAX: usize = 8_000_000;

/// The moments' closed forms and the truncated postings of one content model.
pub(super) struct ContentIndex {
    n_items: usize,
    /// `Σ_j w_j r_jt` per term.
    sums: Vec<f64>,
    /// Row `t` of `G`: `gram[gram_offsets[t]..gram_offsets[t + 1]]` as (term, value).
    gram_offsets: Vec<usize>,
    gram: Vec<(u32, f64)>,
    /// Term `t`'s strongest items, best first: `posted[offsets[t]..offsets[t + 1]]` as
    /// (item, `w_j r_jt`).
    offsets: Vec<usize>,
    posted: Vec<(u32, f32)>,
    /// Item `j`'s row as (term, `w_j r_jt`): `rows[row_offsets[j]..row_offsets[j + 1]]`, the
    /// candidates' exact scores in one pass over one array.
    row_offsets: Vec<u32>,
    rows: Vec<(u32, f32)>,
}

impl ContentIndex {
    /// The index of `model` under the de-bias `divisors`, keeping `postings` items per term;
    /// `None` when the Gram matrix would pass [`GRAM_MAX`] entries.
    pub(super) fn new(model: &ContentModel, divisors: Option<&[f32]>, postings: usize) -> Option<Self> {
        let rows = model.item_terms();
        let (n_items, n_terms) = (rows.rows(), rows.cols());
        let weights: Option<Vec<f32>> =
            divisors.map(|d| (0..n_items).map(|j| d.get(j).map_or(1.0, |&f| 1.0 / f)).collect());
        let weight = |j: usize| weights.as_ref().map_or(1.0, |w| w[j]);
        let terms = rows.transpose_view().to_csr();
        let mut sums = vec![0f64; n_terms];
        for (t, sum) in sums.iter_mut().enumerate() {
            if let Some(items) = terms.outer_view(t) {
                *sum = items.iter().map(|(j, &v)| f64::from(weight(j) * v)).sum();
            }
        }
        // Row t of G: Σ over the items j having t of w_j² r_jt r_j.
        let gram_rows: Vec<Vec<(u32, f64)>> = (0..n_terms)
            .into_par_iter()
            .map_init(
                || (vec![0f64; n_terms], Vec::<u32>::new()),
                |(acc, touched), t| {
                    let Some(items) = terms.outer_view(t) else { return Vec::new() };
                    for (j, &v) in items.iter() {
                        let w = f64::from(weight(j));
                        let Some(row) = rows.outer_view(j) else { continue };
                        for (u, &r) in row.iter() {
                            if acc[u] == 0.0 {
                                touched.push(u as u32);
                            }
                            acc[u] += w * w * f64::from(v) * f64::from(r);
                        }
                    }
                    touched.sort_unstable();
                    let out = touched.iter().map(|&u| (u, std::mem::take(&mut acc[u as usize]))).collect();
                    touched.clear();
                    out
                },
            )
            .collect();
        if gram_rows.iter().map(Vec::len).sum::<usize>() > GRAM_MAX {
            return None;
        }
        let mut gram_offsets = Vec::with_capacity(n_terms + 1);
        gram_offsets.push(0);
        let mut gram = Vec::new();
        for row in gram_rows {
            gram.extend(row);
            gram_offsets.push(gram.len());
        }
        let mut offsets = Vec::with_capacity(n_terms + 1);
        offsets.push(0);
        let mut posted = Vec::new();
        for t in 0..n_terms {
            if let Some(items) = terms.outer_view(t) {
                let mut list: Vec<(u32, f32)> =
                    items.iter().map(|(j, &v)| (j as u32, weight(j) * v)).collect();
                let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
                if list.len() > postings && postings > 0 {
                    list.select_nth_unstable_by(postings - 1, order);
                    list.truncate(postings);
                }
                list.sort_unstable_by(order);
                posted.extend(list);
            }
            offsets.push(posted.len());
        }
        let mut row_offsets = Vec::with_capacity(n_items + 1);
        row_offsets.push(0u32);
        let mut item_rows = Vec::with_capacity(rows.nnz());
        for j in 0..n_items {
            if let Some(row) = rows.outer_view(j) {
                item_rows.extend(row.iter().map(|(t, &v)| (t as u32, weight(j) * v)));
            }
            // Offsets fit u32: the Gram matrix's limit bounds the entries far below.
            row_offsets.push(u32::try_from(item_rows.len()).ok()?);
        }
        Some(ContentIndex {
            n_items,
            sums,
            gram_offsets,
            gram,
            offsets,
            posted,
            row_offsets,
            rows: item_rows,
        })
    }

    /// Term `t`'s kept postings, best first.
    fn postings(&self, t: usize) -> &[(u32, f32)] {
        &self.posted[self.offsets[t]..self.offsets[t + 1]]
    }

    /// The smallest contribution `u_t × w_j r_jt` that keeps at most `scan` postings of the
    /// profile's `terms` (0: every kept posting when they are that few), and in `cuts` how
    /// many postings of each term it keeps. Each list is sorted by contribution, so what a
    /// threshold keeps is a prefix of each; the threshold is found by bisection, stopping once
    /// it keeps between seven eighths of `scan` and `scan` postings (or after 32 halvings).
    /// Each term's prefix at the bisection's middle lies between its prefixes at the two
    /// ends, so each count searches only that window, which narrows round by round.
    fn threshold(&self, terms: &[(usize, f32)], scan: usize, cuts: &mut Vec<usize>) -> f32 {
        let prefix = |t: usize, u: f32, window: std::ops::Range<usize>, threshold: f32| {
            let list = &self.postings(t)[window.clone()];
            window.start + list.partition_point(|&(_, v)| v * u >= threshold)
        };
        // The prefixes at the ends of the bracket (low, high]: `below` at low, `above` at high.
        cuts.clear();
        cuts.extend(terms.iter().map(|&(t, u)| prefix(t, u, 0..self.postings(t).len(), 0.0)));
        if cuts.iter().sum::<usize>() <= scan {
            return 0.0;
        }
        let strongest = terms
            .iter()
            .filter_map(|&(t, u)| self.postings(t).first().map(|&(_, v)| v * u))
            .fold(0f32, f32::max);
        let mut below = std::mem::take(cuts);
        let mut above = vec![0; terms.len()];
        let mut middles = Vec::with_capacity(terms.len());
        // count(low) > scan >= count(high): the answer lies in (low, high].
        let (mut low, mut high) = (0f32, strongest * (1.0 + f32::EPSILON) + f32::MIN_POSITIVE);
        for _ in 0..32 {
            let middle = low + (high - low) / 2.0;
            if middle <= low || middle >= high {
                break;
            }
            middles.clear();
            middles.extend(
                terms
                    .iter()
                    .zip(above.iter().zip(&below))
                    .map(|(&(t, u), (&a, &b))| prefix(t, u, a..b, middle)),
            );
            let n: usize = middles.iter().sum();
            if n > scan {
                low = middle;
                std::mem::swap(&mut below, &mut middles);
            } else if n >= scan - scan / 8 {
                // Within an eighth of the budget: close enough, and half the bisection saved.
                *cuts = middles;
                return middle;
            } else {
                high = middle;
                std::mem::swap(&mut above, &mut middles);
            }
        }
        *cuts = above;
        high
    }

    /// Item `j`'s exact score under the unit profile `unit` (as the blend sees it: de-biased).
    pub(super) fn score(&self, unit: &[f32], j: usize) -> f32 {
        let (Some(&start), Some(&end)) = (self.row_offsets.get(j), self.row_offsets.get(j + 1)) else {
            return f32::NAN;
        };
        self.rows[start as usize..end as usize]
            .iter()
            .map(|&(t, v)| v * unit.get(t as usize).copied().unwrap_or(0.0))
            .sum()
    }

    /// The query's unit profile, the catalog's moments, and the `per_member` best items by
    /// the truncated postings (pushed onto `pool`; `sparse` is the buffer they add up in),
    /// reading at most `scan` postings: the strongest contributions `u_t × w_j r_jt` of all
    /// the profile's terms (a term shared by much of the catalog and weak in the profile no
    /// longer costs its whole list).
    pub(super) fn propose(
        &self,
        model: &ContentModel,
        query: &Query<'_>,
        per_member: usize,
        scan: usize,
        sparse: &mut SparseScores,
        pool: &mut Vec<u32>,
    ) -> (State, Fused) {
        let profile = match crate::recommender::check_history(self.n_items, query)
            .and_then(|()| model.query_profile(query))
        {
            Ok(profile) => profile,
            Err(error) => return (State::None, Fused::Failed(error)),
        };
        let norm = profile.iter().map(|v| v * v).sum::<f32>().sqrt();
        let unit: Vec<f32> = if norm > 0.0 { profile.iter().map(|v| v / norm).collect() } else { profile };
        let (mut sum, mut sum_sq) = (0f64, 0f64);
        let terms: Vec<(usize, f32)> = unit.iter().copied().enumerate().filter(|&(_, u)| u != 0.0).collect();
        for &(t, u) in &terms {
            let u64 = f64::from(u);
            sum += u64 * self.sums[t];
            let g = &self.gram[self.gram_offsets[t]..self.gram_offsets[t + 1]];
            sum_sq += u64 * g.iter().map(|&(v, value)| value * f64::from(unit[v as usize])).sum::<f64>();
        }
        sparse.clear(self.n_items);
        let mut cuts = Vec::with_capacity(terms.len());
        self.threshold(&terms, scan, &mut cuts);
        for (&(t, u), &cut) in terms.iter().zip(&cuts) {
            for &(j, v) in &self.postings(t)[..cut] {
                sparse.add(j as usize, v * u);
            }
        }
        let outcome = match moments_from_sums(self.n_items as f64, sum, sum_sq.max(0.0)) {
            Some((mean, scale)) => Fused::Scored(mean, scale),
            None => Fused::NoFiniteScore,
        };
        let touched = sparse.touched();
        pool.extend(super::top_k_of(touched.iter().map(|&j| (j, sparse.get(j as usize))), per_member));
        (State::Content(unit), outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rank::moments;
    use crate::recommender::{Fit, Recommender, TrainSet};
    use datasets::ItemIdx;
    use datasets::schema::Item;
    use proptest::prelude::*;

    /// 300 items titled from a vocabulary of 24 words (many shared terms and ties), in 6
    /// categories.
    fn model() -> ContentModel {
        let words: Vec<String> = (0..24).map(|w| format!("w{w}")).collect();
        let mut state = 7u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        let catalog: Vec<Item> = (0..300)
            .map(|i| {
                let title: Vec<&str> =
                    (0..1 + next() % 4).map(|_| words[next() % words.len()].as_str()).collect();
                Item {
                    item_id: format!("i{i}"),
                    title: title.join(" "),
                    categories: vec![format!("c{}", i % 6)],
                    ..Item::default()
                }
            })
            .collect();
        let user_items = datasets::dataset::Matrix::zero((1, catalog.len()));
        let train = TrainSet {
            item_users: user_items.transpose_view().to_csr(),
            user_items,
            catalog,
            last_seen: vec![],
            newest: 0,
        };
        crate::algorithms::content::ContentParams::default().fit(&train).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The closed forms give the moments of every item's score, de-biased or not, and
        /// every candidate's score is the model's; with every posting kept the candidates are
        /// the exact best items.
        #[test]
        fn moments_and_scores_are_those_of_full_scoring(
            history in proptest::collection::vec((0u32..300, 0.5f32..5.0), 0..8),
            debias in proptest::bool::ANY,
        ) {
            let model = model();
            let n = model.n_items();
            let divisors: Vec<f32> = (0..n).map(|j| 1.0 + (j % 7) as f32 * 0.3).collect();
            let divisors = debias.then_some(divisors.as_slice());
            let index = ContentIndex::new(&model, divisors, n).unwrap();
            let history: Vec<(ItemIdx, f32)> = history.into_iter().map(|(i, w)| (ItemIdx(i), w)).collect();
            let query = Query { user: None, history: &history, recency: &[] };
            let mut dense = vec![0f32; n];
            model.score_into(&query, &mut dense).unwrap();
            if let Some(d) = divisors {
                crate::blend::apply_debias(&mut dense, d);
            }
            let (mut sparse, mut pool) = (SparseScores::new(n), Vec::new());
            let (state, outcome) = index.propose(&model, &query, 10, usize::MAX, &mut sparse, &mut pool);
            let (Fused::Scored(mean, scale), Some((m, s))) = (outcome, moments(&dense)) else {
                panic!("no moments")
            };
            prop_assert!((mean - m).abs() <= 1e-5 * (1.0 + m.abs()), "mean {mean} vs {m}");
            prop_assert!((scale - s).abs() <= 1e-3 * (1.0 + s.abs()), "scale {scale} vs {s}");
            let State::Content(unit) = state else { panic!("not a content state") };
            for (j, &expected) in dense.iter().enumerate() {
                let score = index.score(&unit, j);
                prop_assert!((score - expected).abs() <= 1e-5, "item {j}: {score} vs {expected}");
            }
            let best: Vec<u32> = crate::rank::top_k(&dense, 10, |j| dense[j] > 0.0).iter().map(|s| s.item.0).collect();
            let mut proposed = pool.clone();
            proposed.sort_unstable();
            let mut expected = best.clone();
            expected.sort_unstable();
            // Ties at the tenth place may pick other items of the same score.
            let tenth = best.last().map_or(0.0, |&j| dense[j as usize]);
            prop_assert_eq!(proposed.len(), expected.len());
            for &j in &proposed {
                prop_assert!(dense[j as usize] >= tenth - 1e-5, "item {j} below the tenth best");
            }
        }
    }

    /// The threshold's bisection counting every term's whole list each round: what
    /// [`ContentIndex::threshold`]'s narrowing windows must agree with.
    fn bisection(index: &ContentIndex, terms: &[(usize, f32)], scan: usize) -> f32 {
        let count = |threshold: f32| -> usize {
            terms.iter().map(|&(t, u)| index.postings(t).partition_point(|&(_, v)| v * u >= threshold)).sum()
        };
        if count(0.0) <= scan {
            return 0.0;
        }
        let strongest = terms
            .iter()
            .filter_map(|&(t, u)| index.postings(t).first().map(|&(_, v)| v * u))
            .fold(0f32, f32::max);
        let (mut low, mut high) = (0f32, strongest * (1.0 + f32::EPSILON) + f32::MIN_POSITIVE);
        for _ in 0..32 {
            let middle = low + (high - low) / 2.0;
            if middle <= low || middle >= high {
                break;
            }
            let n = count(middle);
            if n > scan {
                low = middle;
            } else if n >= scan - scan / 8 {
                return middle;
            } else {
                high = middle;
            }
        }
        high
    }

    /// The scan budget reads at most `scan` postings, and no posting it leaves out
    /// contributes more than one it reads.
    #[test]
    fn the_scan_reads_the_strongest_contributions_within_its_budget() {
        let model = model();
        let index = ContentIndex::new(&model, None, 300).unwrap();
        for (stride, len) in [(23, 12), (7, 30), (61, 4), (13, 40)] {
            let history: Vec<(ItemIdx, f32)> =
                (0..len).map(|i| (ItemIdx(i * stride % 300), 1.0 + i as f32)).collect();
            scan_within_budget(&index, &model, &history);
        }
    }

    fn scan_within_budget(index: &ContentIndex, model: &ContentModel, history: &[(ItemIdx, f32)]) {
        let query = Query { user: None, history, recency: &[] };
        let profile = model.query_profile(&query).unwrap();
        let terms: Vec<(usize, f32)> =
            profile.iter().copied().enumerate().filter(|&(_, u)| u != 0.0).collect();
        let all: usize = terms.iter().map(|&(t, _)| index.postings(t).len()).sum();
        if history.len() >= 12 {
            assert!(all > 200, "{all} postings");
        }
        for scan in [1, 7, 50, 199, all.saturating_sub(1), all, all + 10] {
            let mut cuts = Vec::new();
            let threshold = index.threshold(&terms, scan, &mut cuts);
            assert_eq!(threshold.to_bits(), bisection(index, &terms, scan).to_bits(), "scan {scan}");
            for (&(t, u), &cut) in terms.iter().zip(&cuts) {
                let list = index.postings(t);
                assert_eq!(cut, list.partition_point(|&(_, v)| v * u >= threshold), "scan {scan}, term {t}");
            }
            let (mut read, mut weakest_read, mut strongest_left) = (0, f32::INFINITY, 0f32);
            for &(t, u) in &terms {
                for &(_, v) in index.postings(t) {
                    if v * u >= threshold {
                        read += 1;
                        weakest_read = weakest_read.min(v * u);
                    } else {
                        strongest_left = strongest_left.max(v * u);
                    }
                }
            }
            assert!(read <= scan, "scan {scan}: read {read}");
            assert!(strongest_left <= weakest_read || read == 0, "scan {scan}");
            if scan >= all {
                assert_eq!((threshold, read), (0.0, all));
            } else {
                // Only ties at the threshold keep it from filling seven eighths of the budget.
                assert!(read > 0 || scan < 2, "scan {scan}: nothing read");
                if scan >= 50 {
                    assert!(read >= scan / 2, "scan {scan}: read {read}");
                }
            }
        }
    }

    /// Kept postings are each term's strongest, best first.
    #[test]
    fn truncated_postings_keep_each_terms_strongest_items() {
        let model = model();
        let index = ContentIndex::new(&model, None, 5).unwrap();
        let terms = model.item_terms().transpose_view().to_csr();
        for t in 0..terms.rows() {
            let kept = &index.posted[index.offsets[t]..index.offsets[t + 1]];
            let all = terms.outer_view(t).unwrap();
            assert_eq!(kept.len(), all.nnz().min(5));
            assert!(kept.windows(2).all(|w| w[0].1 >= w[1].1));
            let weakest = kept.last().map_or(f32::INFINITY, |k| k.1);
            let stronger = all.iter().filter(|&(_, &v)| v > weakest).count();
            assert!(stronger <= kept.len(), "term {t}: {stronger} items stronger than the kept ones");
        }
    }
}

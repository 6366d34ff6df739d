//! Item-based k-nearest neighbours: cosine similarity between items' confidence-weighted
//! person vectors, the `n` most similar neighbours kept per item.
//!
//! `sim(i, j) = Σ_u r_ui r_uj / (‖r_i‖ ‖r_j‖ + shrink)`; a person's score for `j` is
//! `Σ_{i∈history} w_i · sim(i, j)`, so every score can be explained by the history items
//! that contributed to it ("because you bought X").

use datasets::ItemIdx;
use half::f16;
use half::slice::HalfBitsSliceExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::half_scan::widen as widen_all;
use super::spread::{SPREAD, spread_add};
use crate::error::{Error, Result, require};
use crate::rank::{ScoredItem, top_k};
use crate::recommender::{Fit, Query, Recommender, SparseScores, TrainSet, check_query, check_sparse};

/// Hyperparameters of item-kNN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ItemKnnParams {
    /// Neighbours kept per item.
    pub neighbors: usize,
    /// Added to the cosine denominator, damping similarities supported by few persons.
    pub shrink: f32,
}

impl Default for ItemKnnParams {
    fn default() -> Self {
        ItemKnnParams { neighbors: 100, shrink: 10.0 }
    }
}

impl ItemKnnParams {
    /// Checks that `neighbors` is at least 1 and `shrink` a number ≥ 0.
    pub fn validate(&self) -> Result<()> {
        require(self.neighbors > 0, "item_knn.neighbors", "must be at least 1")?;
        require(self.shrink.is_finite() && self.shrink >= 0.0, "item_knn.shrink", "must be a number >= 0")?;
        Ok(())
    }
}

impl Fit for ItemKnnParams {
    type Model = ItemKnnModel;

    fn fit(&self, train: &TrainSet) -> Result<ItemKnnModel> {
        self.validate()?;
        if train.user_items.nnz() == 0 {
            return Err(Error::Untrainable { model: "item_knn", reason: "no interactions".into() });
        }
        let n_items = train.n_items();
        let norms: Vec<f32> = (0..n_items)
            .map(|i| {
                train
                    .item_users
                    .outer_view(i)
                    .map_or(0.0, |v| v.data().iter().map(|w| w * w).sum::<f32>().sqrt())
            })
            .collect();
        let neighbors: Vec<Vec<(u32, f32)>> = (0..n_items)
            .into_par_iter()
            .map_init(
                || vec![0f32; n_items],
                |acc, i| {
                    let Some(column) = train.item_users.outer_view(i) else { return Vec::new() };
                    let mut touched = Vec::new();
                    for (user, &r_ui) in column.iter() {
                        if let Some(row) = train.user_items.outer_view(user) {
                            for (j, &r_uj) in row.iter() {
                                if j != i {
                                    if acc[j] == 0.0 {
                                        touched.push(j);
                                    }
                                    acc[j] += r_ui * r_uj;
                                }
                            }
                        }
                    }
                    // Visit order must not decide ties: rank candidates by item index.
                    touched.sort_unstable();
                    let mut sims: Vec<f32> = Vec::with_capacity(touched.len());
                    for &j in &touched {
                        sims.push(acc[j] / (norms[i] * norms[j] + self.shrink));
                        acc[j] = 0.0;
                    }
                    let best = top_k(&sims, self.neighbors, |_| true);
                    best.into_iter().map(|s| (touched[s.item.get()] as u32, s.score)).collect()
                },
            )
            .collect();
        let mut indptr = Vec::with_capacity(n_items + 1);
        indptr.push(0);
        let mut indices = Vec::new();
        let mut sims = Vec::new();
        for list in neighbors {
            for (j, s) in list {
                indices.push(j);
                sims.push(f16::from_f32(s).to_bits());
            }
            indptr.push(indices.len());
        }
        Ok(ItemKnnModel { indptr, indices, sims })
    }
}

/// Fitted neighbour lists (CSR: item → (neighbour, similarity), most similar first).
///
/// The similarities are kept in half precision (rounded to nearest, relative error at most
/// 2⁻¹¹; their bits here): 6 bytes per neighbour instead of 8, which at a million items
/// (about 90 million neighbours) took 181 MB off the server's memory, and less to read per
/// list.
/// The model is its rounded similarities: scoring and explaining widen them exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemKnnModel {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    sims: Vec<u16>,
}

/// A stored similarity as `f32` (exact): inlined where scoring reads every neighbour, where
/// the `half` crate's conversion is a call.
#[inline(always)]
fn widen(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32_const()
}

impl ItemKnnModel {
    /// Checks the structure of decoded neighbour lists for a catalog of `n_items`: one list
    /// per item, neighbour ids in range, finite similarities.
    pub(crate) fn check(&self, n_items: usize) -> std::result::Result<(), String> {
        let n_entries = self.indices.len();
        if self.indptr.len() != n_items + 1 || self.indptr.first() != Some(&0) {
            return Err(format!("{} list offsets for {n_items} items", self.indptr.len()));
        }
        if self.indptr.windows(2).any(|w| w[0] > w[1]) || self.indptr[n_items] != n_entries {
            return Err("list offsets are not increasing up to the number of neighbours".into());
        }
        if self.sims.len() != n_entries {
            return Err(format!("{} similarities for {n_entries} neighbours", self.sims.len()));
        }
        if let Some(bad) = self.indices.iter().find(|&&j| j as usize >= n_items) {
            return Err(format!("neighbour id {bad} is past the {n_items} items"));
        }
        // Widened one by one: a widened copy would be 4 bytes per neighbour more at load.
        match self.sims.iter().position(|&b| !widen(b).is_finite()) {
            None => Ok(()),
            Some(at) => {
                Err(format!("similarities: entry {at} is {} (not a finite number)", widen(self.sims[at])))
            }
        }
    }

    /// The stored neighbours of `item`, most similar first.
    pub fn neighbors(&self, item: ItemIdx) -> impl Iterator<Item = (ItemIdx, f32)> + '_ {
        self.list(item).unwrap_or(0..0).map(|idx| (ItemIdx(self.indices[idx]), widen(self.sims[idx])))
    }

    /// [`super::linalg::touch`] of the history's lists, which scoring walks next.
    fn touch(&self, query: &Query<'_>) {
        let lists = || query.history.iter().filter_map(|&(item, _)| self.list(item));
        super::linalg::touch(lists().map(|range| &self.indices[range]));
        super::linalg::touch(lists().map(|range| &self.sims[range]));
    }

    /// [`Recommender::score_into`] into a buffer of [`SPREAD`] scores, for a catalog of at
    /// most that many items ([`ItemKnnModel::check`] holds every neighbour below it, so
    /// its low 16 bits are the neighbour); returns how far it wrote: at most the catalog.
    fn spread(&self, query: &Query<'_>, scores: &mut [f32; SPREAD]) -> usize {
        let mut widened = Vec::new();
        for (item, weight) in query.weighted() {
            let Some(range) = self.list(item) else { continue };
            widened.resize(range.len(), 0.0);
            widen_all(self.sims[range.clone()].reinterpret_cast(), &mut widened);
            let neighbors = &self.indices[range];
            for (&j, &sim) in neighbors.iter().zip(&widened) {
                scores[usize::from(j as u16)] += weight * sim;
            }
        }
        self.n_items()
    }

    /// Where `item`'s list lies in `indices` and `sims`; `None` out of range.
    fn list(&self, item: ItemIdx) -> Option<std::ops::Range<usize>> {
        Some(*self.indptr.get(item.get())?..*self.indptr.get(item.get() + 1)?)
    }

    /// The similarity of `item` in `source`'s neighbour list, if it is there. The list is
    /// compared 16 ids at a time without an early exit, which the compiler turns into vector
    /// compares: explanations ask this for every history item of every answered item.
    pub fn similarity(&self, source: ItemIdx, item: ItemIdx) -> Option<f32> {
        let start = *self.indptr.get(source.get())?;
        let end = *self.indptr.get(source.get() + 1)?;
        let indices = self.indices.get(start..end)?;
        let target = item.0;
        for (c, chunk) in indices.chunks(16).enumerate() {
            if chunk.iter().fold(false, |found, &j| found | (j == target)) {
                let at = chunk.iter().position(|&j| j == target)?;
                return self.sims.get(start + c * 16 + at).map(|&b| widen(b));
            }
        }
        None
    }

    /// The `k` items most similar to `item`.
    pub fn similar_items(&self, item: ItemIdx, k: usize) -> Vec<ScoredItem> {
        self.neighbors(item).take(k).map(|(item, score)| ScoredItem { item, score }).collect()
    }
}

impl Recommender for ItemKnnModel {
    fn name(&self) -> &'static str {
        "item_knn"
    }

    fn n_items(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Catalogs of at most 65,536 items add into [`spread_add`]'s buffer, each list's
    /// similarities widened at once: the same additions in the same order.
    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()> {
        check_query(self.n_items(), query, scores)?;
        self.touch(query);
        if spread_add(scores, |spread| self.spread(query, spread)) {
            return Ok(());
        }
        scores.iter_mut().for_each(|s| *s = 0.0);
        for (item, weight) in query.weighted() {
            for (neighbor, sim) in self.neighbors(item) {
                scores[neighbor.get()] += weight * sim;
            }
        }
        Ok(())
    }

    fn score_sparse(&self, query: &Query<'_>, out: &mut SparseScores) -> Result<bool> {
        check_sparse(self.n_items(), query, out)?;
        self.touch(query);
        for (item, weight) in query.weighted() {
            for (neighbor, sim) in self.neighbors(item) {
                out.add(neighbor.get(), weight * sim);
            }
        }
        Ok(true)
    }

    fn explain(&self, query: &Query<'_>, item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        let mut contributions: Vec<(ItemIdx, f32)> = query
            .weighted()
            .filter_map(|(source, weight)| self.similarity(source, item).map(|sim| (source, weight * sim)))
            .collect();
        contributions.sort_by(by_contribution);
        contributions
    }

    /// Each history item's list is read once for all of `items` (instead of once per item):
    /// a neighbour is looked up among the targets only when its bit in a 1,024-bit filter of
    /// them is set. The same contributions in the same order as [`Self::explain`]'s.
    fn explain_many(&self, query: &Query<'_>, items: &[ItemIdx]) -> Vec<Vec<(ItemIdx, f32)>> {
        let mut explained: Vec<Vec<(ItemIdx, f32)>> = vec![Vec::new(); items.len()];
        // The targets in item order, each with its position in `items`.
        let mut targets: Vec<(u32, usize)> =
            items.iter().enumerate().map(|(at, item)| (item.0, at)).collect();
        targets.sort_unstable();
        let slot = |j: u32| ((j as usize >> 6) & 15, 1u64 << (j & 63));
        let mut filter = [0u64; 16];
        for &(target, _) in &targets {
            let (word, bit) = slot(target);
            filter[word] |= bit;
        }
        for (source, weight) in query.weighted() {
            let Some(range) = self.list(source) else { continue };
            for (&j, &sim) in self.indices[range.clone()].iter().zip(&self.sims[range]) {
                let (word, bit) = slot(j);
                if filter[word] & bit == 0 {
                    continue;
                }
                let sim = widen(sim);
                let from = targets.partition_point(|&(target, _)| target < j);
                for &(_, at) in targets[from..].iter().take_while(|&&(target, _)| target == j) {
                    explained[at].push((source, weight * sim));
                }
            }
        }
        explained.iter_mut().for_each(|contributions| contributions.sort_by(by_contribution));
        explained
    }
}

/// Strongest contribution first, ties by item.
fn by_contribution(a: &(ItemIdx, f32), b: &(ItemIdx, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_train, contract};
    use datasets::UserIdx;

    #[test]
    fn similarity_finds_an_item_anywhere_in_a_list() {
        let train = block_train();
        let model = ItemKnnParams { neighbors: 10, shrink: 0.0 }.fit(&train).unwrap();
        for i in 0..8u32 {
            for j in 0..8u32 {
                let listed = model.neighbors(ItemIdx(i)).find(|(n, _)| n.0 == j).map(|(_, s)| s);
                assert_eq!(model.similarity(ItemIdx(i), ItemIdx(j)), listed, "{i} → {j}");
            }
        }
        assert_eq!(model.similarity(ItemIdx(99), ItemIdx(0)), None);
        // Lists longer than one chunk: every position of a 40-entry list.
        let long = ItemKnnModel {
            indptr: vec![0, 40],
            indices: (0..40).map(|j| 1000 - j).collect(),
            sims: (0..40).map(|j| f16::from_f32(j as f32).to_bits()).collect(),
        };
        for at in 0..40u32 {
            assert_eq!(long.similarity(ItemIdx(0), ItemIdx(1000 - at)), Some(at as f32));
        }
        assert_eq!(long.similarity(ItemIdx(0), ItemIdx(5)), None);
    }

    #[test]
    fn similarities_match_brute_force_cosine() {
        let train = block_train();
        let model = ItemKnnParams { neighbors: 10, shrink: 0.0 }.fit(&train).unwrap();
        // Items 0 and 1 are both held by persons 2 and 3 (each of norm √3):
        // cosine = 2 / (√3 · √3) = 2/3. Items of different blocks share nobody.
        let sim01 = model.neighbors(ItemIdx(0)).find(|(j, _)| j.0 == 1).unwrap().1;
        // Stored in half precision: within 2⁻¹¹ of the value, relatively.
        let close = |a: f32, b: f32| (a - b).abs() <= b.abs() / 2048.0;
        assert!(close(sim01, 2.0 / 3.0), "{sim01}");
        assert_eq!(sim01, f16::from_f32(2.0 / 3.0).to_f32());
        assert!(model.neighbors(ItemIdx(0)).all(|(j, _)| j.0 < 4));
        let dense = train.user_items.to_dense();
        for i in 0..8 {
            for (j, sim) in model.neighbors(ItemIdx(i as u32)) {
                let (a, b) = (dense.column(i), dense.column(j.get()));
                let brute = a.dot(&b) / (a.dot(&a).sqrt() * b.dot(&b).sqrt());
                assert!(close(sim, brute), "{sim} against {brute}");
            }
        }
    }

    #[test]
    fn recommends_and_explains() {
        let train = block_train();
        contract(&ItemKnnParams::default(), &train);
        let model = ItemKnnParams { neighbors: 2, shrink: 0.0 }.fit(&train).unwrap();
        assert!(model.neighbors(ItemIdx(0)).count() <= 2);
        let history = train.history(UserIdx(0));
        let why = model.explain(&Query { user: None, history: &history, recency: &[] }, ItemIdx(0));
        assert!(!why.is_empty() && why.iter().all(|(i, _)| (1..4).contains(&i.0)));
        assert!(ItemKnnParams { neighbors: 0, shrink: 0.0 }.validate().is_err());
    }

    #[test]
    fn the_spread_buffer_scores_bit_for_bit_as_checked_additions() {
        // 300 items, 40 neighbours each in no id order, half-precision similarities.
        let (n, per) = (300usize, 40usize);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let indices: Vec<u32> = (0..n * per).map(|_| (next() % n as u64) as u32).collect();
        let sims: Vec<u16> =
            (0..n * per).map(|_| f16::from_f32((next() % 1000) as f32 / 997.0).to_bits()).collect();
        let model = ItemKnnModel { indptr: (0..=n).map(|i| i * per).collect(), indices, sims };
        assert_eq!(model.check(n), Ok(()));
        let history: Vec<(ItemIdx, f32)> =
            (0..25).map(|_| (ItemIdx((next() % n as u64) as u32), 1.0 + (next() % 7) as f32)).collect();
        let query = Query { user: None, history: &history, recency: &[] };
        let mut spread = vec![f32::NAN; n];
        model.score_into(&query, &mut spread).unwrap();
        // With the buffer lent, the same call takes the checked additions.
        let mut checked = vec![f32::NAN; n];
        assert!(spread_add(&mut [0.0; 1], |_| {
            model.score_into(&query, &mut checked).unwrap();
            0
        }));
        assert!(spread.iter().any(|&s| s > 0.0));
        assert_eq!(
            spread.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
            checked.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn check_refuses_neighbour_ids_past_the_catalog_and_bad_offsets() {
        let model = ItemKnnParams::default().fit(&block_train()).unwrap();
        assert_eq!(model.check(8), Ok(()));
        assert_eq!(model.check(9).unwrap_err(), "9 list offsets for 9 items");
        let mut far = model.clone();
        far.indices[0] = 8;
        assert_eq!(far.check(8).unwrap_err(), "neighbour id 8 is past the 8 items");
        let mut offsets = model.clone();
        offsets.indptr[3] = usize::MAX;
        assert!(offsets.check(8).unwrap_err().contains("not increasing"));
        let mut nan = model;
        nan.sims[0] = f16::NAN.to_bits();
        assert!(nan.check(8).unwrap_err().starts_with("similarities: entry 0 is NaN"));
    }
}

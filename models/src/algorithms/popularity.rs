//! Popularity, the fallback for persons the other models know nothing about.
//!
//! An item's popularity is the number of distinct persons who interacted with it, each
//! counted `0.5^(age / half_life)` when a recency half-life is set (age of their latest
//! interaction with it). Per category, a person's scores are popularity times their
//! affinity for the item's top category (with add-one smoothing), so a person who only
//! buys running shoes sees popular running shoes first.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, require};
use crate::recommender::{Fit, Query, Recommender, TrainSet, check_query};

/// Hyperparameters of the popularity model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopularityParams {
    /// Weight popularity by the person's category affinity when they have a history.
    pub per_category: bool,
    /// Recency half-life in days; `None` counts every person fully.
    pub half_life_days: Option<f32>,
}

impl Default for PopularityParams {
    fn default() -> Self {
        PopularityParams { per_category: true, half_life_days: Some(30.0) }
    }
}

impl PopularityParams {
    /// Checks parameter ranges.
    pub fn validate(&self) -> Result<()> {
        require(
            self.half_life_days.is_none_or(|days| days.is_finite() && days > 0.0),
            "popularity.half_life_days",
            "must be a positive number of days",
        )?;
        Ok(())
    }
}

impl Fit for PopularityParams {
    type Model = PopularityModel;

    fn fit(&self, train: &TrainSet) -> Result<PopularityModel> {
        self.validate()?;
        let mut scores = vec![0f32; train.n_items()];
        let has_times = train.newest > 0;
        for (entry, (_, (_, item))) in train.user_items.iter().enumerate() {
            let weight = match self.half_life_days {
                Some(days) if has_times => {
                    let age_days = (train.newest - train.last_seen[entry]).max(0) as f64 / 86_400.0;
                    0.5f64.powf(age_days / f64::from(days)) as f32
                }
                _ => 1.0,
            };
            scores[item as usize] += weight;
        }
        let mut names: HashMap<String, u32> = HashMap::new();
        let category: Vec<Option<u32>> = train
            .catalog
            .iter()
            .map(|item| {
                let top = item.top_category()?;
                let next = names.len() as u32;
                Some(*names.entry(top.to_owned()).or_insert(next))
            })
            .collect();
        Ok(PopularityModel {
            scores,
            category: if self.per_category && !names.is_empty() { category } else { Vec::new() },
            n_categories: names.len(),
            slots: std::sync::OnceLock::new(),
        })
    }
}

/// Fitted popularity scores, with each item's top category for the per-category variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopularityModel {
    scores: Vec<f32>,
    category: Vec<Option<u32>>,
    n_categories: usize,
    /// Each item's category as an index into a person's shares with the uncategorised share
    /// last (at `n_categories`), built on first use: scoring then multiplies without a branch.
    #[serde(skip)]
    slots: std::sync::OnceLock<Slots>,
}

/// [`PopularityModel`]'s slots: a byte per item when the shares fit a table of 256 (a
/// lookup the compiler need not check), else 32 bits.
#[derive(Debug, Clone, PartialEq)]
enum Slots {
    Narrow(Vec<u8>),
    Wide(Vec<u32>),
}

impl PopularityModel {
    /// Checks decoded or freshly fitted scores for a catalog of `n_items`: one finite score
    /// per item, category numbers in range.
    pub(crate) fn check(&self, n_items: usize) -> std::result::Result<(), String> {
        if self.scores.len() != n_items {
            return Err(format!("{} scores for {n_items} items", self.scores.len()));
        }
        if !self.category.is_empty() && self.category.len() != n_items {
            return Err(format!("{} item categories for {n_items} items", self.category.len()));
        }
        if let Some(c) = self.category.iter().flatten().find(|&&c| c as usize >= self.n_categories) {
            return Err(format!("category {c} is past the {} categories", self.n_categories));
        }
        crate::artifact::integrity::finite("scores", &self.scores)
    }

    /// Builds what per-category scoring reads, so that the first answer does not pay for it.
    pub fn warm(&self) {
        self.slots();
    }

    fn slots(&self) -> &Slots {
        self.slots.get_or_init(|| {
            let last = self.n_categories;
            let slot = |c: &Option<u32>| c.map_or(last, |c| c as usize);
            if last < 256 {
                Slots::Narrow(self.category.iter().map(|c| slot(c) as u8).collect())
            } else {
                Slots::Wide(self.category.iter().map(|c| slot(c) as u32).collect())
            }
        })
    }

    /// The global popularity of every item.
    pub fn global(&self) -> &[f32] {
        &self.scores
    }

    /// Each item's top category (empty when the model is global only).
    pub fn categories(&self) -> &[Option<u32>] {
        &self.category
    }

    /// The number of categories.
    pub fn n_categories(&self) -> usize {
        self.n_categories
    }

    /// The factor a query multiplies each item's global popularity by: its category's share
    /// of the person's history, add-one smoothed; `None` when every factor is 1 (no
    /// categories, or no history). Item `j` scores `global[j] × factor(category_j)`.
    pub fn shares(&self, query: &Query<'_>) -> Option<Shares> {
        if self.category.is_empty() || query.history.is_empty() {
            return None;
        }
        let mut affinity = vec![0f32; self.n_categories];
        let mut total = 0.0;
        for (item, weight) in query.weighted() {
            if let Some(Some(c)) = self.category.get(item.get()) {
                affinity[*c as usize] += weight;
                total += weight;
            }
        }
        // Add-one smoothing keeps every category reachable.
        let denominator = total + self.n_categories as f32;
        affinity.iter_mut().for_each(|a| *a = (*a + 1.0) / denominator);
        Some(Shares { by_category: affinity, uncategorised: 1.0 / denominator })
    }
}

/// One query's factors on popularity, per category ([`PopularityModel::shares`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Shares {
    /// The factor of each category's items.
    pub by_category: Vec<f32>,
    /// The factor of items without a category.
    pub uncategorised: f32,
}

impl Recommender for PopularityModel {
    fn name(&self) -> &'static str {
        "popularity"
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()> {
        check_query(self.n_items(), query, scores)?;
        let Some(shares) = self.shares(query) else {
            scores.copy_from_slice(&self.scores);
            return Ok(());
        };
        match self.slots() {
            Slots::Narrow(slots) => {
                let mut table = [shares.uncategorised; 256];
                table[..shares.by_category.len()].copy_from_slice(&shares.by_category);
                #[cfg(target_arch = "x86_64")]
                if let Some(simd) = crate::algorithms::linalg::avx512().filter(|_| self.n_categories < 32) {
                    pulp::Simd::vectorize(
                        simd,
                        Permuted { simd, scores, base: &self.scores, slots, table: &table },
                    );
                    return Ok(());
                }
                for ((score, &base), &slot) in scores.iter_mut().zip(&self.scores).zip(slots) {
                    *score = base * table[usize::from(slot)];
                }
            }
            Slots::Wide(slots) => {
                let mut table = shares.by_category;
                table.push(shares.uncategorised);
                for ((score, &base), &slot) in scores.iter_mut().zip(&self.scores).zip(slots) {
                    // `check` holds every category below `n_categories`: the table has it.
                    *score = base * table.get(slot as usize).copied().unwrap_or(shares.uncategorised);
                }
            }
        }
        Ok(())
    }
}

/// The narrow slots' `scores[i] = base[i] × table[slots[i]]` on AVX-512 where every slot is
/// below 32: 16 items' factors per instruction, picked from the table's first 32 entries
/// held in two registers (a scalar loop took 4 µs at 10,000 items, this 0.9 µs).
#[cfg(target_arch = "x86_64")]
struct Permuted<'a> {
    simd: pulp::x86::V4,
    scores: &'a mut [f32],
    base: &'a [f32],
    slots: &'a [u8],
    table: &'a [f32; 256],
}

#[cfg(target_arch = "x86_64")]
impl pulp::WithSimd for Permuted<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let f = self.simd.avx512f;
        let low: [f32; 16] = self.table[..16].try_into().unwrap_or_default();
        let high: [f32; 16] = self.table[16..32].try_into().unwrap_or_default();
        let (low, high) = (pulp::cast(low), pulp::cast(high));
        let (scores, scores_rest) = pulp::as_arrays_mut::<16, f32>(self.scores);
        let (base, base_rest) = pulp::as_arrays::<16, f32>(self.base);
        let (slots, slots_rest) = pulp::as_arrays::<16, u8>(self.slots);
        for ((score, base), slots) in scores.iter_mut().zip(base).zip(slots) {
            let index = f._mm512_cvtepu8_epi32(pulp::cast(*slots));
            let factor = f._mm512_permutex2var_ps(low, index, high);
            *score = pulp::cast(f._mm512_mul_ps(pulp::cast(*base), factor));
        }
        for ((score, &base), &slot) in scores_rest.iter_mut().zip(base_rest).zip(slots_rest) {
            *score = base * self.table[usize::from(slot)];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_train;
    use datasets::ItemIdx;

    #[test]
    fn counts_persons_and_weights_by_category() {
        let mut train = block_train();
        // Items 0–3 are shoes, 4–7 are books; item 0 gets an extra holder.
        for (i, item) in train.catalog.iter_mut().enumerate() {
            item.categories = vec![if i < 4 { "shoes>running".into() } else { "books".into() }];
        }
        let model = PopularityParams { per_category: true, half_life_days: None }.fit(&train).unwrap();
        crate::testing::conforms(&model, &train);
        // Every item is held by 3 of its block's 4 persons.
        assert!(model.global().iter().all(|&s| s == 3.0));
        let history = [(ItemIdx(5), 2.0)];
        let mut scores = vec![0.0; 8];
        model.score_into(&Query { user: None, history: &history, recency: &[] }, &mut scores).unwrap();
        // books: 3 × (2 + 1) / (2 + 2) = 2.25; shoes: 3 × 1 / 4 = 0.75.
        assert_eq!((scores[0], scores[4]), (0.75, 2.25));
    }

    #[test]
    fn narrow_and_wide_slots_score_the_same_formula() {
        // Item j in category j mod c, the last item uncategorised: up to 31 categories take
        // AVX-512's permutes (where the CPU has it), 32 the byte table, 299 do not fit a byte;
        // 100 items are six whole blocks of 16 and a remainder.
        for (n, c) in [(10usize, 9usize), (100, 9), (100, 31), (100, 32), (400, 299)] {
            let model = PopularityModel {
                scores: (0..n).map(|j| 1.0 + j as f32).collect(),
                category: (0..n).map(|j| (j + 1 < n).then_some((j % c) as u32)).collect(),
                n_categories: c,
                slots: std::sync::OnceLock::new(),
            };
            model.check(n).unwrap();
            let history = [(ItemIdx(3), 1.0), (ItemIdx(n as u32 - 2), 2.0), (ItemIdx(n as u32 - 1), 1.0)];
            let query = Query { user: None, history: &history, recency: &[] };
            let shares = model.shares(&query).unwrap();
            let mut scores = vec![0.0; n];
            model.score_into(&query, &mut scores).unwrap();
            assert_eq!(matches!(model.slots(), Slots::Narrow(_)), c < 256);
            for (j, &score) in scores.iter().enumerate() {
                let share = shares.by_category[j % c];
                let expected = model.scores[j] * if j + 1 < n { share } else { shares.uncategorised };
                assert_eq!(score, expected, "item {j} of {n}, {c} categories");
            }
        }
    }

    #[test]
    fn recency_decays_old_interactions() {
        let mut train = block_train();
        train.newest = 10 * 86_400;
        // Entries are by person then item: person 0 holds items 1, 2, 3; make them old.
        for entry in 0..train.last_seen.len() {
            train.last_seen[entry] = if entry < 3 { 0 } else { 10 * 86_400 };
        }
        let model = PopularityParams { per_category: false, half_life_days: Some(10.0) }.fit(&train).unwrap();
        // Item 1: persons 0 (one half-life old: 0.5), 2 and 3 (fresh): 2.5.
        assert_eq!(model.global()[1], 2.5);
        assert_eq!(model.global()[0], 3.0);
    }
}

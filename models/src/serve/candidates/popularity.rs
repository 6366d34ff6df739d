//! Popularity's part of the candidate stage: exact moments from per-category sums, the best
//! items from per-category sorted lists merged under the query's factors.

use super::{State, debiased};
use crate::algorithms::popularity::PopularityModel;
use crate::blend::Fused;
use crate::rank::moments_from_sums;
use crate::recommender::Query;

/// Popularity's part: items in groups (each category, then the uncategorised) sorted by
/// de-biased popularity, and each group's sum and sum of squares.
pub(super) struct PopularityIndex {
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
    pub(super) fn new(model: &PopularityModel, divisors: Option<&[f32]>) -> Self {
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

    pub(super) fn score(&self, factors: &[f32], i: usize) -> f32 {
        self.values[i] * factors[self.group[i] as usize]
    }

    /// The query's group factors, the moments and the `per_member` best items: a merge of the
    /// groups' sorted lists under their factors.
    pub(super) fn propose(
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

//! Cutting ranked lists to the answer: selection under the diversity cap, across the stages
//! of the fallback chain, then pins.

use std::collections::HashMap;

use crate::rank::{ScoredItem, top_k, top_k_of};

use super::*;

/// Where an item of an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The blend, for this person (or their session).
    Personalized,
    /// The blend, from the viewed item.
    Similar,
    /// Popular in the person's favourite categories.
    FavouriteCategories,
    /// Popular overall.
    Popular,
    /// A pin.
    Pinned,
}

impl Source {
    /// A stable snake-case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Personalized => "personalized",
            Source::Similar => "similar",
            Source::FavouriteCategories => "favourite_categories",
            Source::Popular => "popular",
            Source::Pinned => "pinned",
        }
    }
}

/// An answer being filled, stage by stage, under the diversity cap.
pub struct Selection<'a> {
    pub(super) eligibility: &'a Eligibility<'a>,
    pub(super) picked: Vec<(ScoredItem, Source)>,
    pub(super) per_category: HashMap<u32, usize>,
}

impl<'a> Selection<'a> {
    /// An empty answer for `eligibility`'s request.
    pub fn new(eligibility: &'a Eligibility<'a>) -> Self {
        Selection {
            eligibility,
            // `k` may exceed the catalog (a batch asks for "everything"): never allocate past it.
            picked: Vec::with_capacity(eligibility.request.k.min(eligibility.catalog.len())),
            per_category: HashMap::new(),
        }
    }

    /// Whether the answer has its `k` items.
    pub fn is_full(&self) -> bool {
        self.picked.len() >= self.eligibility.request.k
    }

    /// Adds the best eligible items of `scores` not yet picked, within the diversity cap,
    /// until full. Items with non-finite scores are never taken.
    pub fn fill(&mut self, scores: &[f32], source: Source) {
        self.fill_from(scores.len(), source, |wanted, allowed| top_k(scores, wanted, allowed));
    }

    /// [`Selection::fill`] from (item, score) pairs of distinct items (the candidate stage's):
    /// items not listed are not taken.
    pub fn fill_sparse(&mut self, scores: &[(u32, f32)], source: Source) {
        let pairs = || scores.iter().map(|&(i, s)| (i as usize, s));
        self.fill_from(scores.len(), source, |wanted, allowed| {
            top_k_of(pairs(), scores.len(), wanted, allowed)
        });
    }

    /// [`Selection::fill_sparse`] from `scores` when every item they leave out scores at most
    /// `bound`: returns whether the answer is then the one [`Selection::fill`] over the whole
    /// catalog gives (it filled, and with items above `bound` only, so no item left out could
    /// have come before any of them). Otherwise the selection is left as it was.
    pub fn fill_bounded(&mut self, scores: &[(u32, f32)], bound: f32, source: Source) -> bool {
        let (before, per_category) = (self.picked.len(), self.per_category.clone());
        self.fill_sparse(scores, source);
        if self.is_full() && self.picked[before..].iter().all(|(s, _)| s.score > bound) {
            return true;
        }
        self.picked.truncate(before);
        self.per_category = per_category;
        false
    }

    /// The selection loop over `n_items` scored entries, `ranked(wanted, is_allowed)` giving the
    /// `wanted` best allowed ones.
    fn fill_from(
        &mut self,
        n_items: usize,
        source: Source,
        ranked: impl Fn(usize, &mut dyn FnMut(usize) -> bool) -> Vec<ScoredItem>,
    ) {
        let k = self.eligibility.request.k;
        let cap = self.eligibility.placement.config.max_per_category;
        let index = self.eligibility.catalog.index();
        let mut pool = if cap.is_some() { k.saturating_mul(4).max(32) } else { k }.min(n_items);
        loop {
            let need = k - self.picked.len();
            if need == 0 {
                return;
            }
            let picked = &self.picked;
            let wanted = (pool + picked.len()).min(n_items);
            let ranked = ranked(wanted, &mut |i| {
                self.eligibility.allows(i) && picked.iter().all(|(p, _)| p.item.get() != i)
            });
            let exhausted = ranked.len() < wanted || wanted == n_items;
            let mut taken = Vec::new();
            for candidate in ranked {
                if taken.len() == need {
                    break;
                }
                if let (Some(max), Some(c)) = (cap, index.top_category(candidate.item)) {
                    let count = self.per_category.entry(c).or_default();
                    if *count >= max {
                        continue;
                    }
                    *count += 1;
                }
                taken.push(candidate);
            }
            let filled = taken.len() == need;
            self.picked.extend(taken.into_iter().map(|s| (s, source)));
            if filled || exhausted {
                return;
            }
            // The cap rejected too many; look deeper.
            pool = pool.saturating_mul(4).min(n_items);
        }
    }

    /// Applies the active pins and returns the answer, best first.
    pub fn finish(mut self) -> Vec<(ScoredItem, Source)> {
        let eligibility = self.eligibility;
        let now = eligibility.request.now;
        for &(item, slot, from, until) in &eligibility.placement.pins {
            let active = from.is_none_or(|f| now >= f) && until.is_none_or(|u| now < u);
            if !active || !eligibility.allows(item.get()) {
                continue;
            }
            let score = match self.picked.iter().position(|(p, _)| p.item == item) {
                Some(at) => self.picked.remove(at).0.score,
                None => f32::NAN,
            };
            let at = slot.min(self.picked.len());
            self.picked.insert(at, (ScoredItem { item, score }, Source::Pinned));
        }
        self.picked.truncate(eligibility.request.k);
        self.picked
    }
}

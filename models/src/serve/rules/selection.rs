//! Cutting ranked lists to the answer: selection under the diversity cap, across the stages
//! of the fallback chain, then pins.

use std::collections::HashMap;

use crate::rank::{Cap, ScoredItem, top_k, top_k_capped, top_k_of, top_k_of_capped};

/// An item's top category, for the diversity cap.
type CategoryOf<'a> = &'a dyn Fn(usize) -> Option<u32>;

/// How many of a top category the answer already holds.
type Taken<'a> = &'a dyn Fn(u32) -> usize;

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
        self.fill_from(
            source,
            |need, allowed| top_k(scores, need, allowed),
            |need, cap, allowed| top_k_capped(scores, need, cap, allowed),
        );
    }

    /// [`Selection::fill`] from (item, score) pairs of distinct items (the candidate stage's):
    /// items not listed are not taken.
    pub fn fill_sparse(&mut self, scores: &[(u32, f32)], source: Source) {
        let pairs = || scores.iter().map(|&(i, s)| (i as usize, s));
        self.fill_from(
            source,
            |need, allowed| top_k_of(pairs(), scores.len(), need, allowed),
            |need, cap, allowed| top_k_of_capped(pairs(), need, cap, allowed),
        );
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

    /// Takes what the answer still needs: `ranked(need, is_allowed)` gives the `need` best
    /// allowed entries, `capped(need, cap, is_allowed)` the same under the diversity cap (what
    /// taking them best first, skipping any of a full category, would take).
    fn fill_from(
        &mut self,
        source: Source,
        ranked: impl FnOnce(usize, &mut dyn FnMut(usize) -> bool) -> Vec<ScoredItem>,
        capped: impl FnOnce(
            usize,
            &Cap<CategoryOf<'_>, Taken<'_>>,
            &mut dyn FnMut(usize) -> bool,
        ) -> Vec<ScoredItem>,
    ) {
        let need = self.eligibility.request.k.saturating_sub(self.picked.len());
        if need == 0 {
            return;
        }
        let (eligibility, picked) = (self.eligibility, &self.picked);
        let mut allowed = |i: usize| eligibility.allows(i) && picked.iter().all(|(p, _)| p.item.get() != i);
        let index = eligibility.catalog.index();
        let taken = match eligibility.placement.config.max_per_category {
            None => ranked(need, &mut allowed),
            Some(max) => {
                let per_category = &self.per_category;
                let category: CategoryOf<'_> = &|i| index.top_category(datasets::ItemIdx(i as u32));
                let taken: Taken<'_> = &|c| per_category.get(&c).copied().unwrap_or(0);
                capped(need, &Cap { max, category, taken }, &mut allowed)
            }
        };
        let capping = eligibility.placement.config.max_per_category.is_some();
        for item in taken {
            if let (true, Some(c)) = (capping, index.top_category(item.item)) {
                *self.per_category.entry(c).or_default() += 1;
            }
            self.picked.push((item, source));
        }
    }

    /// Applies the active pins and returns the answer, best first. Every pinned item leaves
    /// the ranked list first, then each goes to its slot in slot order (the compiled pins'
    /// order), so moving one never shifts another. A pin is a merchant's decision: it is
    /// shown even where the diversity cap would have left its category out.
    pub fn finish(mut self) -> Vec<(ScoredItem, Source)> {
        let eligibility = self.eligibility;
        let now = eligibility.request.now;
        let mut pinned: Vec<(ScoredItem, usize)> = Vec::new();
        for &(item, slot, from, until) in &eligibility.placement.pins {
            let active = from.is_none_or(|f| now >= f) && until.is_none_or(|u| now < u);
            if !active || !eligibility.allows(item.get()) || pinned.iter().any(|(p, _)| p.item == item) {
                continue;
            }
            let score = match self.picked.iter().position(|(p, _)| p.item == item) {
                Some(at) => self.picked.remove(at).0.score,
                None => f32::NAN,
            };
            pinned.push((ScoredItem { item, score }, slot));
        }
        for (scored, slot) in pinned {
            let at = slot.min(self.picked.len());
            self.picked.insert(at, (scored, Source::Pinned));
        }
        self.picked.truncate(eligibility.request.k);
        self.picked
    }
}

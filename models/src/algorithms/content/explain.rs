//! Content's explanations: which history items' rows are most like each answered item's.

use sprs::CsVecView;

use datasets::ItemIdx;

use super::{ContentModel, EXPLAIN_TOP};
use crate::recommender::Query;

impl ContentModel {
    /// [`crate::recommender::Recommender::explain_many`] of the content model (see there).
    pub(super) fn explain_items(&self, query: &Query<'_>, items: &[ItemIdx]) -> Vec<Vec<(ItemIdx, f32)>> {
        let rows: Vec<(ItemIdx, CsVecView<'_, f32>)> =
            query.history.iter().filter_map(|&(seen, _)| Some((seen, self.row(seen).ok()?))).collect();
        let mut explained = Vec::with_capacity(items.len());
        let mut explain = |slots: &mut Vec<u32>| {
            slots.resize(self.item_terms.cols(), NO_SLOT);
            for targets in items.chunks(LANES) {
                explained.extend(self.explain_lanes(
                    &rows,
                    targets,
                    &mut TermSlots { slots, used: Vec::new() },
                ));
            }
        };
        SLOTS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slots) => explain(&mut slots),
            Err(_) => explain(&mut Vec::new()),
        });
        explained
    }
}

/// How many answered items one walk over a history explains together.
pub(super) const LANES: usize = 16;

/// [`TermSlots::slots`] of a term no answered item of the walk has.
const NO_SLOT: u32 = u32::MAX;

thread_local! {
    /// Each term's row among the answered items' weights, [`NO_SLOT`] between calls.
    static SLOTS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The terms of one walk's answered items and where their weights are; dropping it (even
/// while unwinding) sets the terms it gave a slot back to [`NO_SLOT`].
struct TermSlots<'a> {
    slots: &'a mut Vec<u32>,
    used: Vec<usize>,
}

impl Drop for TermSlots<'_> {
    fn drop(&mut self) {
        for &term in &self.used {
            if let Some(slot) = self.slots.get_mut(term) {
                *slot = NO_SLOT;
            }
        }
    }
}

impl ContentModel {
    /// Up to [`LANES`] answered items' explanations from one walk over the history's rows.
    fn explain_lanes(
        &self,
        rows: &[(ItemIdx, CsVecView<'_, f32>)],
        targets: &[ItemIdx],
        terms: &mut TermSlots<'_>,
    ) -> Vec<Vec<(ItemIdx, f32)>> {
        let mut weights: Vec<[f32; LANES]> = Vec::new();
        for (lane, &item) in targets.iter().enumerate().take(LANES) {
            let Ok(row) = self.row(item) else { continue };
            for (term, &value) in row.iter() {
                let Some(slot) = terms.slots.get_mut(term) else { continue };
                if *slot == NO_SLOT {
                    *slot = weights.len() as u32;
                    terms.used.push(term);
                    weights.push([0.0; LANES]);
                }
                weights[*slot as usize][lane] = value;
            }
        }
        let mut best: Vec<Vec<(ItemIdx, f32)>> = vec![Vec::with_capacity(EXPLAIN_TOP + 1); targets.len()];
        for (seen, row) in rows {
            let mut sums = [0.0f32; LANES];
            for (term, &value) in row.iter() {
                let Some(&slot) = terms.slots.get(term) else { continue };
                if let Some(lanes) = weights.get(slot as usize) {
                    for (sum, &weight) in sums.iter_mut().zip(lanes) {
                        *sum += value * weight;
                    }
                }
            }
            // Items sharing no term sum to 0 and are left out with the dissimilar ones.
            for ((kept, &item), &sum) in best.iter_mut().zip(targets).zip(&sums) {
                if *seen != item && sum > 0.0 {
                    keep_best(kept, (*seen, sum));
                }
            }
        }
        best
    }
}

/// Puts `candidate` among `kept`, the best [`EXPLAIN_TOP`] so far by descending similarity
/// then ascending item, after any it ties with (as a stable sort of the whole list would).
fn keep_best(kept: &mut Vec<(ItemIdx, f32)>, candidate: (ItemIdx, f32)) {
    let order = |a: &(ItemIdx, f32), b: &(ItemIdx, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let at = kept.partition_point(|k| order(k, &candidate) != std::cmp::Ordering::Greater);
    if at < EXPLAIN_TOP {
        kept.insert(at, candidate);
        kept.truncate(EXPLAIN_TOP);
    }
}

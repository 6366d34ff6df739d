//! Popularity of what happened since training: the counts the popularity model would add if
//! it were refitted now, kept up to date as events arrive.
//!
//! The popularity model counts the distinct persons who interacted with an item, each counted
//! `0.5^(age / half_life)` at the training data's reference time `t₀`. Live counts are on the
//! same scale: a person's first interaction with an item since training adds
//! `2^((t − t₀) / half_life)`, its value at `t₀` grown to its time `t`. Adding one common
//! factor `0.5^((now − t₀) / half_life)` to both would give each item's count as of now; a
//! common factor changes no ranking and no z-score, so it is left out. Without a half-life
//! every first interaction counts 1.
//!
//! An item created after training starts at zero and rises with its first buyers, which is
//! how it enters popular placements "at once". Counts are in memory: the server rebuilds them
//! from the store's events after the model's watermark whenever it loads a model.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use datasets::ItemIdx;

/// Live popularity counts; see the module docs.
#[derive(Debug)]
pub struct LivePopularity {
    /// The reference time of the model's popularity (seconds since the epoch).
    reference: i64,
    /// The model's half-life in seconds; `None`: no decay.
    half_life: Option<f64>,
    /// Per item, the live count (f32 bits), grown to `reference`.
    counts: RwLock<Vec<AtomicU32>>,
    /// Persons and items already counted (hashes of anchor and item).
    seen: Mutex<HashSet<u64>>,
    /// The items whose count is above zero, in the order they first rose.
    touched: Mutex<Vec<u32>>,
}

impl LivePopularity {
    /// Empty counts for a model whose popularity refers to time `reference` with `half_life_days`.
    pub fn new(reference: i64, half_life_days: Option<f32>) -> Self {
        LivePopularity {
            reference,
            half_life: half_life_days.map(|days| f64::from(days) * 86_400.0),
            counts: RwLock::new(Vec::new()),
            seen: Mutex::new(HashSet::new()),
            touched: Mutex::new(Vec::new()),
        }
    }

    /// Counts the interaction of the person filed under `anchor` with `item` at `timestamp`,
    /// unless that person and item are counted already.
    pub fn record(&self, anchor: &str, item: ItemIdx, timestamp: i64) {
        let mut hasher = DefaultHasher::new();
        (anchor, item.0).hash(&mut hasher);
        if !self.seen.lock().unwrap_or_else(PoisonError::into_inner).insert(hasher.finish()) {
            return;
        }
        let weight = match self.half_life {
            // Bounded: f32 holds 2^127; events more than a hundred half-lives after the
            // reference are rare enough to saturate.
            Some(half_life) => {
                2f64.powf(((timestamp - self.reference) as f64 / half_life).clamp(-100.0, 100.0)) as f32
            }
            None => 1.0,
        };
        let counts = self.counts.read().unwrap_or_else(PoisonError::into_inner);
        let rose = if item.get() >= counts.len() {
            drop(counts);
            let mut counts = self.counts.write().unwrap_or_else(PoisonError::into_inner);
            if item.get() >= counts.len() {
                counts.resize_with(item.get() + 1, || AtomicU32::new(0f32.to_bits()));
            }
            add(&counts[item.get()], weight)
        } else {
            add(&counts[item.get()], weight)
        };
        if rose {
            self.touched.lock().unwrap_or_else(PoisonError::into_inner).push(item.0);
        }
    }

    /// Adds each listed item's live count to its score, under one lock.
    pub fn add_counts(&self, scores: &mut [(u32, f32)]) {
        let counts = self.counts.read().unwrap_or_else(PoisonError::into_inner);
        for (item, score) in scores {
            if let Some(count) = counts.get(*item as usize) {
                *score += f32::from_bits(count.load(Ordering::Relaxed));
            }
        }
    }

    /// Calls `visit(item, count)` for every item whose live count is above zero.
    pub fn for_each_touched(&self, mut visit: impl FnMut(u32, f32)) {
        // Locks in one order everywhere: counts, then seen, then touched.
        let counts = self.counts.read().unwrap_or_else(PoisonError::into_inner);
        let touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        for &item in touched.iter() {
            if let Some(count) = counts.get(item as usize) {
                visit(item, f32::from_bits(count.load(Ordering::Relaxed)));
            }
        }
    }

    /// Adds the live counts to `scores` (indexed by item).
    pub fn add_to(&self, scores: &mut [f32]) {
        self.add_range(0, scores);
    }

    /// Adds the live counts of items `start..start + scores.len()` to `scores`.
    pub fn add_range(&self, start: usize, scores: &mut [f32]) {
        let counts = self.counts.read().unwrap_or_else(PoisonError::into_inner);
        for (score, count) in scores.iter_mut().zip(counts.iter().skip(start)) {
            *score += f32::from_bits(count.load(Ordering::Relaxed));
        }
    }

    /// Forgets every count and every person counted, to count again from scratch (after an
    /// erasure: the erased person's interactions must stop counting, and their hashes go).
    /// Recording the same stored events again after it gives the same counts.
    pub fn clear(&self) {
        let mut counts = self.counts.write().unwrap_or_else(PoisonError::into_inner);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        counts.clear();
        *seen = HashSet::new();
        touched.clear();
    }

    /// The live count of `item`.
    pub fn count(&self, item: ItemIdx) -> f32 {
        let counts = self.counts.read().unwrap_or_else(PoisonError::into_inner);
        counts.get(item.get()).map_or(0.0, |c| f32::from_bits(c.load(Ordering::Relaxed)))
    }
}

/// Adds `weight` (positive) to the count in `cell`; whether this took it above zero.
fn add(cell: &AtomicU32, weight: f32) -> bool {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f32::from_bits(current) + weight).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return f32::from_bits(current) <= 0.0 && f32::from_bits(next) > 0.0,
            Err(actual) => current = actual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_person_counts_once_per_item_grown_to_the_reference() {
        let day = 86_400;
        let live = LivePopularity::new(10 * day, Some(1.0));
        live.record("cookie_id:a", ItemIdx(2), 10 * day);
        live.record("cookie_id:a", ItemIdx(2), 11 * day);
        live.record("cookie_id:b", ItemIdx(2), 11 * day);
        live.record("cookie_id:b", ItemIdx(5), 9 * day);
        // a at the reference: 1; b a day (one half-life) later: 2; item 5 a day before: 0.5.
        assert_eq!(live.count(ItemIdx(2)), 3.0);
        assert_eq!(live.count(ItemIdx(5)), 0.5);
        let mut scores = vec![1.0; 4];
        live.add_to(&mut scores);
        assert_eq!(scores, [1.0, 1.0, 4.0, 1.0]);
        let mut tail = vec![0.0; 3];
        live.add_range(4, &mut tail);
        assert_eq!(tail, [0.0, 0.5, 0.0]);
        let mut touched = Vec::new();
        live.for_each_touched(|item, count| touched.push((item, count)));
        assert_eq!(touched, [(2, 3.0), (5, 0.5)]);
        let mut listed = [(5, 1.0), (0, 1.0), (99, 1.0)];
        live.add_counts(&mut listed);
        assert_eq!(listed, [(5, 1.5), (0, 1.0), (99, 1.0)]);
        let flat = LivePopularity::new(0, None);
        flat.record("x", ItemIdx(0), 123_456_789);
        assert_eq!(flat.count(ItemIdx(0)), 1.0);
        // Cleared and counted again without a (erased) person: their interaction is gone,
        // and the same events give the same counts.
        live.clear();
        assert_eq!((live.count(ItemIdx(2)), live.count(ItemIdx(5))), (0.0, 0.0));
        live.record("cookie_id:a", ItemIdx(2), 10 * day);
        live.record("cookie_id:a", ItemIdx(2), 11 * day);
        assert_eq!((live.count(ItemIdx(2)), live.count(ItemIdx(5))), (1.0, 0.0));
        let mut touched = Vec::new();
        live.for_each_touched(|item, count| touched.push((item, count)));
        assert_eq!(touched, [(2, 1.0)]);
    }
}

//! Scattered additions through 16-bit item indices, without a bounds check per addition.
//!
//! EASE's pruned rows and content's postings score a person by adding one weight per stored
//! entry into the score of the entry's item: tens of thousands of scattered additions per
//! answer, each a load, an add and a store. Into a buffer of the catalog's length every
//! addition also checks its index, about a quarter of the work. An index of 16 bits read as
//! `usize` is always below 65,536, so into a buffer of exactly that many scores the compiler
//! leaves the check out. [`spread_add`] lends such a buffer (one per thread, zeroed), then
//! copies the catalog's part out.

use std::cell::RefCell;

/// How many scores a 16-bit item index reaches.
pub const SPREAD: usize = 1 << 16;

thread_local! {
    /// Zero between calls.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `add` on a buffer of [`SPREAD`] zeroes, then sets `out` to the buffer's first
/// `out.len()` scores. `add` returns how far it wrote (one past the highest index it
/// touched), so only that prefix is zeroed again. Returns `false`, with `out` untouched,
/// when `out` is longer than [`SPREAD`] or this thread's buffer is already lent (a caller
/// inside `add`): the caller then adds with checked indices.
pub fn spread_add(out: &mut [f32], add: impl FnOnce(&mut [f32; SPREAD]) -> usize) -> bool {
    if out.len() > SPREAD {
        return false;
    }
    SCORES.with(|cell| {
        let Ok(mut scores) = cell.try_borrow_mut() else { return false };
        scores.resize(SPREAD, 0.0);
        // Should `add` unwind, the whole buffer is zeroed on the way out: the thread's next
        // caller must not start from its partial sums.
        let mut guard = Zeroed { scores: &mut scores, upto: SPREAD };
        let Ok(buffer) = <&mut [f32; SPREAD]>::try_from(&mut guard.scores[..]) else { return false };
        let written = add(buffer).min(SPREAD);
        out.copy_from_slice(&buffer[..out.len()]);
        guard.upto = written.max(out.len());
        true
    })
}

/// Zeroes the first `upto` scores when dropped.
struct Zeroed<'a> {
    scores: &'a mut Vec<f32>,
    upto: usize,
}

impl Drop for Zeroed<'_> {
    fn drop(&mut self) {
        let upto = self.upto.min(self.scores.len());
        self.scores[..upto].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_copy_out_and_leave_the_buffer_zeroed() {
        let mut out = vec![f32::NAN; 5];
        assert!(spread_add(&mut out, |s| {
            s[1] += 2.0;
            s[1] += 0.5;
            s[4] -= 1.0;
            // Beyond the catalog: not copied out, but zeroed for the next call.
            s[9] = 7.0;
            10
        }));
        assert_eq!(out, [0.0, 2.5, 0.0, 0.0, -1.0]);
        let mut again = vec![f32::NAN; 12];
        assert!(spread_add(&mut again, |_| 0));
        assert!(again.iter().all(|&s| s == 0.0), "{again:?}");
    }

    #[test]
    fn a_caller_that_unwinds_leaves_no_partial_sums() {
        let mut out = vec![0f32; 4];
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spread_add(&mut out, |s| {
                s[2] = 5.0;
                s[60_000] = 1.0;
                panic!("a failing caller");
            })
        }));
        assert!(unwound.is_err());
        let mut again = vec![f32::NAN; 4];
        assert!(spread_add(&mut again, |s| {
            assert_eq!(s[60_000], 0.0);
            0
        }));
        assert_eq!(again, [0.0; 4]);
    }

    #[test]
    fn refuses_long_outputs_and_nested_use() {
        let mut long = vec![1.0f32; SPREAD + 1];
        assert!(!spread_add(&mut long, |_| 0));
        assert!(long.iter().all(|&s| s == 1.0));
        let mut outer = vec![0f32; 3];
        let mut inner = vec![f32::NAN; 3];
        assert!(spread_add(&mut outer, |s| {
            s[0] = 1.0;
            assert!(!spread_add(&mut inner, |_| 0), "the buffer is lent");
            1
        }));
        assert_eq!(outer, [1.0, 0.0, 0.0]);
        assert!(inner.iter().all(|s| s.is_nan()));
    }
}

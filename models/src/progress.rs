//! Progress reporting from long fits, without tying models to a terminal.

use std::time::Duration;

/// Receives progress from a fit. Implementations must be cheap and thread-safe.
pub trait Progress: Sync {
    /// `done` of `total` steps of `model` are finished; `elapsed` is the time the last step took.
    fn step(&self, model: &'static str, done: usize, total: usize, elapsed: Duration);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _model: &'static str, _done: usize, _total: usize, _elapsed: Duration) {}
}

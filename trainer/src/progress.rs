//! Progress bars on a terminal (hidden otherwise), one per model, and per-model timings.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One bar per model, created on first report.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<&'static str, ProgressBar>>,
}

impl Bars {
    /// Bars drawn to standard error when it is a terminal.
    pub fn new() -> Self {
        Bars { multi: MultiProgress::new(), bars: Mutex::new(HashMap::new()) }
    }

    /// Removes every bar from the screen.
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl models::progress::Progress for Bars {
    fn step(&self, model: &'static str, done: usize, total: usize, elapsed: Duration) {
        let Ok(mut bars) = self.bars.lock() else { return };
        let bar = bars.entry(model).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(total as u64));
            let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(model);
            bar
        });
        bar.set_position(done as u64);
        if total > 1 {
            bar.set_message(format!("{:.2}s/iteration", elapsed.as_secs_f64()));
            tracing::debug!(model, iteration = done, seconds = elapsed.as_secs_f64(), "iteration done");
        }
        if done >= total {
            bar.finish();
        }
    }
}

//! Each person's own recency: how much more an interaction counts for being among the
//! person's latest.
//!
//! A person's next actions follow their last few far more than their first few, and "last"
//! is the person's own clock: someone last active a year ago still has a latest session. So
//! the age of an interaction is measured from the person's newest interaction, not from the
//! newest of the whole data set (which is what [`crate::dataset::WeightConfig`]'s
//! `half_life_days` does, and why it treats a person who paused like a stale one).
//!
//! The factor of an interaction at time `t`, for a person whose newest interaction is at
//! `t_last`, is
//!
//! `f(t) = 1 + β · exp(−(t_last − t) / τ)`
//!
//! so the newest interactions weigh up to `1 + β` times the oldest, and those more than a
//! few `τ` older weigh what they always did. The form is additive on purpose: history never
//! weighs less than it does without recency (`β = 0` is exactly the identity), so a data set
//! without sequences (plain interactions, or times all equal) is not hurt, and a long
//! history is reweighted, not forgotten. Interactions without a time (0) keep factor 1.
//!
//! One function for training and serving: offline evaluation and the tuner call it on a
//! person's stored interaction times, the server on the same times plus what the person did
//! since training, so the newest live event moves the person's clock.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-person recency (`[weights.recency]`): `β` and `τ` of the module's formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recency {
    /// How much more the newest interaction weighs than an old one (`β` ≥ 0; 0 = off).
    pub beta: f32,
    /// The time scale `τ` in days: an interaction this much older than the person's newest
    /// keeps `1/e` of the boost.
    pub days: f32,
}

impl Default for Recency {
    /// Off: `trainer train` tunes it on a validation split (`blend.tune`).
    fn default() -> Self {
        Recency { beta: 0.0, days: 1.0 }
    }
}

impl Recency {
    /// Recency switched off.
    pub const OFF: Recency = Recency { beta: 0.0, days: 1.0 };

    /// Checks `β` ≥ 0 and `τ` > 0, both finite.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |name: &str, reason: &str| Err(Error::InvalidConfig { name: name.into(), reason: reason.into() });
        if !(self.beta.is_finite() && (0.0..=1e3).contains(&self.beta)) {
            return bad("weights.recency.beta", "must be a number between 0 and 1000");
        }
        if !(self.days.is_finite() && self.days > 0.0) {
            return bad("weights.recency.days", "must be a positive number of days");
        }
        Ok(())
    }

    /// Whether the factors are all 1.
    pub fn is_off(&self) -> bool {
        self.beta == 0.0
    }

    /// The factor of an interaction `age_seconds` older than the person's newest (a negative
    /// age counts as 0).
    pub fn factor(&self, age_seconds: i64) -> f32 {
        if self.is_off() {
            return 1.0;
        }
        let tau = f64::from(self.days) * 86_400.0;
        (1.0 + f64::from(self.beta) * (-(age_seconds.max(0) as f64) / tau).exp()) as f32
    }

    /// The factors of one person's interactions, given their times (seconds since the epoch;
    /// 0 = unknown), in the same order: empty when recency is off, so callers can pass "no
    /// recency" without allocating. `newest` is the person's newest time when it is known
    /// from elsewhere (events since training), else the newest of `times`.
    pub fn factors(&self, times: &[i64], newest: Option<i64>) -> Vec<f32> {
        if self.is_off() {
            return Vec::new();
        }
        let last = times.iter().copied().filter(|&t| t != 0).chain(newest).max();
        times
            .iter()
            .map(|&t| match last {
                Some(last) if t != 0 => self.factor(last - t),
                _ => 1.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn hand_worked_factors() {
        let r = Recency { beta: 2.0, days: 1.0 };
        // Newest: 1 + 2·e⁰ = 3; one day older: 1 + 2/e; ten days: 1 + 2e⁻¹⁰.
        assert_eq!(r.factor(0), 3.0);
        assert!((r.factor(DAY) - (1.0 + 2.0 / std::f32::consts::E)).abs() < 1e-6);
        assert!((r.factor(10 * DAY) - (1.0 + 2.0 * (-10f32).exp())).abs() < 1e-6);
        // A week-long τ halves the boost after τ·ln 2.
        let week = Recency { beta: 1.0, days: 7.0 };
        let half = (7.0 * 86_400.0 * std::f64::consts::LN_2) as i64;
        assert!((week.factor(half) - 1.5).abs() < 1e-4);
        // Ages count from the person's own newest interaction, not from "now".
        let a = r.factors(&[100 * DAY, 99 * DAY], None);
        let b = r.factors(&[5 * DAY, 4 * DAY], None);
        assert_eq!(a, b);
        assert_eq!(a[0], 3.0);
        // A newer event from elsewhere moves the clock; unknown times keep 1.
        let c = r.factors(&[5 * DAY, 0], Some(6 * DAY));
        assert!((c[0] - (1.0 + 2.0 / std::f32::consts::E)).abs() < 1e-6);
        assert_eq!(c[1], 1.0);
        assert_eq!(r.factor(-DAY), 3.0);
    }

    #[test]
    fn beta_zero_is_the_identity() {
        let off = Recency { beta: 0.0, days: 3.0 };
        assert!(off.factors(&[1, 2, 3], None).is_empty());
        assert_eq!(off.factor(0), 1.0);
        assert_eq!(off.factor(1_000_000), 1.0);
        assert_eq!(Recency::default(), Recency::OFF);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let err = Recency { beta: -1.0, days: 1.0 }.validate().unwrap_err().to_string();
        assert!(err.contains("weights.recency.beta"), "{err}");
        let err = Recency { beta: 1.0, days: 0.0 }.validate().unwrap_err().to_string();
        assert!(err.contains("weights.recency.days"), "{err}");
        assert!(Recency { beta: f32::NAN, days: 1.0 }.validate().is_err());
    }
}

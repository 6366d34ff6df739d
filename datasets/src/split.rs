//! Train/test splits of a data set's interactions, deterministic by seed.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::dataset::Interaction;
use crate::error::{Error, Result};

/// How to hold out test interactions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SplitStrategy {
    /// Per person, the last `fraction` of interactions by time (rounded, at least one, and
    /// never all: persons with a single interaction stay in train).
    Temporal {
        /// Share held out, in (0, 1).
        fraction: f64,
    },
    /// Per person, the last `k` interactions by time; persons with `k` or fewer stay in train.
    LeaveLastK {
        /// How many to hold out.
        k: usize,
    },
    /// Each interaction independently, with probability `fraction`.
    Random {
        /// Share held out, in (0, 1).
        fraction: f64,
        /// The random seed.
        seed: u64,
    },
}

impl SplitStrategy {
    fn validate(&self) -> Result<()> {
        let fraction = match *self {
            SplitStrategy::Temporal { fraction } | SplitStrategy::Random { fraction, .. } => fraction,
            SplitStrategy::LeaveLastK { k: 0 } => {
                return Err(Error::InvalidConfig {
                    name: "split.k".into(),
                    reason: "must be at least 1".into(),
                });
            }
            SplitStrategy::LeaveLastK { .. } => return Ok(()),
        };
        if fraction > 0.0 && fraction < 1.0 {
            Ok(())
        } else {
            Err(Error::InvalidConfig {
                name: "split.fraction".into(),
                reason: "must be between 0 and 1".into(),
            })
        }
    }
}

/// Splits `interactions` into (train, test). Ties in time keep input order.
pub fn split(
    interactions: &[Interaction],
    strategy: SplitStrategy,
) -> Result<(Vec<Interaction>, Vec<Interaction>)> {
    strategy.validate()?;
    if let SplitStrategy::Random { fraction, seed } = strategy {
        let mut rng = StdRng::seed_from_u64(seed);
        let (test, train): (Vec<Interaction>, Vec<Interaction>) =
            interactions.iter().partition(|_| rng.gen_bool(fraction));
        return Ok((train, test));
    }
    // Group by person, in time order.
    let mut order: Vec<usize> = (0..interactions.len()).collect();
    order.sort_by_key(|&i| (interactions[i].user, interactions[i].timestamp, i));
    let mut is_test = vec![false; interactions.len()];
    for group in order.chunk_by(|&a, &b| interactions[a].user == interactions[b].user) {
        let n = group.len();
        let n_test = match strategy {
            SplitStrategy::Temporal { fraction } if n >= 2 => {
                ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
            }
            SplitStrategy::LeaveLastK { k } if n > k => k,
            _ => 0,
        };
        for &i in &group[n - n_test..] {
            is_test[i] = true;
        }
    }
    let mut train = Vec::with_capacity(interactions.len());
    let mut test = Vec::new();
    for (interaction, is_test) in interactions.iter().zip(is_test) {
        if is_test { test.push(*interaction) } else { train.push(*interaction) }
    }
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ItemIdx, UserIdx};
    use proptest::prelude::*;

    fn rec(user: u32, item: u32, ts: i64) -> Interaction {
        Interaction { user: UserIdx(user), item: ItemIdx(item), weight: 1.0, timestamp: ts, consumption: 1 }
    }

    #[test]
    fn temporal_holds_out_the_latest() {
        // Person 0 has 5 interactions: 20% of 5 = 1 held out, the newest (ts 50).
        let data: Vec<_> = (0..5).map(|i| rec(0, i, 50 - i as i64 * 10)).chain([rec(1, 9, 1)]).collect();
        let (train, test) = split(&data, SplitStrategy::Temporal { fraction: 0.2 }).unwrap();
        assert_eq!(test, vec![rec(0, 0, 50)]);
        assert_eq!(train.len(), 5, "person 1's only interaction stays in train");
    }

    #[test]
    fn leave_last_k() {
        let data: Vec<_> = (0..4).map(|i| rec(0, i, i as i64)).chain([rec(1, 0, 0), rec(1, 1, 1)]).collect();
        let (_, test) = split(&data, SplitStrategy::LeaveLastK { k: 2 }).unwrap();
        assert_eq!(test, vec![rec(0, 2, 2), rec(0, 3, 3)]);
    }

    #[test]
    fn bad_fractions_are_refused() {
        assert!(split(&[], SplitStrategy::Temporal { fraction: 1.0 }).is_err());
        assert!(split(&[], SplitStrategy::LeaveLastK { k: 0 }).is_err());
    }

    proptest! {
        #[test]
        fn splits_partition_and_are_deterministic(
            raw in proptest::collection::vec((0u32..6, 0u32..10, 0i64..100), 0..80),
            seed in 0u64..1000,
            fraction in 0.05f64..0.95,
        ) {
            let data: Vec<_> = raw.iter().map(|&(u, i, t)| rec(u, i, t)).collect();
            for strategy in [
                SplitStrategy::Temporal { fraction },
                SplitStrategy::LeaveLastK { k: 2 },
                SplitStrategy::Random { fraction, seed },
            ] {
                let (train, test) = split(&data, strategy).unwrap();
                prop_assert_eq!(train.len() + test.len(), data.len());
                let again = split(&data, strategy).unwrap();
                prop_assert_eq!(&again.0, &train);
                prop_assert_eq!(&again.1, &test);
                if !matches!(strategy, SplitStrategy::Random { .. }) {
                    // Every test interaction of a person is no older than their train ones.
                    for t in &test {
                        prop_assert!(train.iter().filter(|r| r.user == t.user).all(|r| r.timestamp <= t.timestamp));
                        prop_assert!(train.iter().any(|r| r.user == t.user), "a person is never only in test");
                    }
                }
            }
        }
    }
}

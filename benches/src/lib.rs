//! Benchmarks live in `benches/`; this library holds what the timing binaries under
//! `src/bin/` share: the persons they ask for and the figures they print.

use std::path::Path;

use datasets::UserIdx;
use models::artifact::Artifact;

/// The artifact at `path` and `persons` of its persons ([`spread_persons`]), or why not
/// (it does not load, or it knows no person).
pub fn artifact_and_persons(path: &str, persons: u32) -> Result<(Artifact, Vec<UserIdx>), String> {
    let artifact =
        models::artifact::load(Path::new(path)).map_err(|error| format!("cannot load {path}: {error}"))?;
    let n_users = artifact.body.users.len() as u32;
    if n_users == 0 {
        return Err(format!("{path} knows no person"));
    }
    let users = spread_persons(n_users, persons);
    Ok((artifact, users))
}

/// `persons` persons spread over an artifact's `n_users` (a fixed stride, so every run asks
/// for the same ones).
pub fn spread_persons(n_users: u32, persons: u32) -> Vec<UserIdx> {
    (0..persons).map(|i| UserIdx(i.wrapping_mul(7_919) % n_users.max(1))).collect()
}

/// The mean of `x` (0 for none).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// The 99th percentile of `x` (the value below which 99 % of them fall; 0 for none).
pub fn p99(x: &[f64]) -> f64 {
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_few_values() {
        let x: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(mean(&x), 100.5);
        assert_eq!(p99(&x), 199.0);
        assert_eq!((mean(&[]), p99(&[])), (0.0, 0.0));
        let persons = spread_persons(10, 25);
        assert_eq!(persons.len(), 25);
        assert!(persons.iter().all(|u| u.0 < 10));
    }
}

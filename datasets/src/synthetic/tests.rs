//! Synthetic data tests: shapes, traps, ground truth, round trips through the loaders.

use super::*;
use crate::identity::{IdentityRules, resolve, score_pairwise};

fn small() -> SyntheticData {
    SyntheticData::generate(SyntheticConfig { n_persons: 400, n_items: 200, seed: 7, ..Default::default() })
        .unwrap()
}

#[test]
fn deterministic_by_seed() {
    let a = small();
    let b = small();
    let mut out_a = Vec::new();
    let mut out_b = Vec::new();
    a.write_events(&mut out_a).unwrap();
    b.write_events(&mut out_b).unwrap();
    assert_eq!(out_a, out_b);
    assert!(a.n_events() > 400 * 5, "about 14 sessions a person: {}", a.n_events());
}

#[test]
fn written_events_load_back() {
    let data = small();
    let mut out = Vec::new();
    data.write_events(&mut out).unwrap();
    let (events, report) = crate::load::read_events(&out[..], "synthetic", &Default::default()).unwrap();
    assert_eq!(events.len(), data.n_events());
    assert_eq!(report.skipped, 0);
    let expected: Vec<Event> = data
        .events()
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.event_id = Some(format!("e{i}"));
            e
        })
        .collect();
    let first_difference = events.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "written and loaded events differ");
    let mut catalog = Vec::new();
    data.write_catalog(&mut catalog).unwrap();
    let (loaded, _) = crate::load::read_catalog(
        &catalog[..],
        "catalog.csv",
        crate::load::CatalogFormat::Delimited,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(loaded.items.len(), data.catalog.items.len());
    assert_eq!(loaded.items[3].categories, data.catalog.items[3].categories);
}

#[test]
fn identity_resolution_matches_truth_and_avoids_traps() {
    let data = small();
    let resolution = resolve(&data.events(), &IdentityRules::default());
    let score = score_pairwise(&resolution, &data.truth_by_normalised_key());
    assert!(score.precision > 0.99, "{score:?}");
    assert!(score.recall > 0.8, "{score:?}");
    // Every kiosk with more than one card holder is refused.
    let refused: Vec<String> = resolution.report.refused.iter().map(|r| r.identifier.key()).collect();
    assert!(refused.iter().any(|k| k.starts_with("device_id:kiosk")), "{refused:?}");
    // Without limits, the kiosks glue card holders together.
    let glued = resolve(&data.events(), &IdentityRules::permissive());
    let glued_score = score_pairwise(&glued, &data.truth_by_normalised_key());
    assert!(glued_score.precision < 0.5, "{glued_score:?}");
}

#[test]
fn new_arrivals_have_no_events() {
    let data = small();
    let n_new = 6; // 3% of 200
    let newest: std::collections::HashSet<u32> = (194..200).collect();
    assert!(data.events.iter().all(|e| e.item.is_none_or(|i| !newest.contains(&i))));
    assert_eq!(
        data.catalog.items.iter().filter(|i| i.available_from > Some(data.config.end - 10 * 86_400)).count(),
        n_new
    );
}

#[test]
fn plain_interactions_have_requested_shape() {
    let rows = interactions(200, 100, 4_000, 3);
    assert!((3_000..5_000).contains(&rows.len()), "{}", rows.len());
    assert_eq!(rows, interactions(200, 100, 4_000, 3));
}

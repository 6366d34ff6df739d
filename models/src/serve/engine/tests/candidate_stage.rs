//! The candidate stage against full scoring of the catalog, on data small enough to score
//! both ways: the same answers when every item is a candidate, the same rules always, and
//! the recall of the approximate ALS index measured.

use super::*;
use crate::serve::candidates::CandidateParams;
use proptest::prelude::*;

/// Every model, sparse EASE, a de-biased blend, over 400 items.
fn artifact(debias: bool) -> Artifact {
    let mut config = TrainConfig::default();
    config.als.factors = 16;
    config.ease.keep = 60;
    config.blend.tune = false;
    config.blend.weights.insert(ModelKind::Popularity, 0.3);
    if debias {
        config.blend.debias = [
            (ModelKind::Als, 0.2),
            (ModelKind::Ease, 0.3),
            (ModelKind::Popularity, 0.5),
            (ModelKind::Content, 0.4),
        ]
        .into();
    }
    super::trained_on(600, 400, 11, &config)
}

/// The stage on every catalog size, the ALS index from `ann_from` items.
fn staged(artifact: Artifact, per_member: usize, ann_from: usize) -> Engine {
    Engine::with_candidates(
        artifact,
        CandidateParams {
            per_member,
            min_items: 0,
            ann_from,
            probe: 4,
            postings: per_member,
            scan: 10 * per_member,
            recall: 0.0,
            blend_recall: 0.0,
        },
    )
}

fn exact(artifact: Artifact) -> Engine {
    Engine::with_candidates(artifact, CandidateParams { per_member: 0, ..Default::default() })
}

fn answer(engine: &Engine, view: &View, user: UserIdx, k: usize, filters: &Filters) -> Answer {
    let placement = &view.placements["p"];
    engine.answer(view, placement, request(k, filters), &engine.person(Some(user)), None).unwrap()
}

fn items(answer: &Answer) -> Vec<ItemIdx> {
    answer.items.iter().map(|a| a.item).collect()
}

#[test]
fn with_every_item_a_candidate_the_answers_are_those_of_full_scoring() {
    for debias in [false, true] {
        let artifact = artifact(debias);
        // The ALS index in use too: every list probed is the whole catalog.
        let (full, stage) = (exact(artifact.clone()), staged(artifact, 1_000, 0));
        assert!(stage.retriever.active() && !full.retriever.active());
        let config = PlacementConfig { in_stock: StockRule::Any, ..Default::default() };
        let (view_full, view_stage) = (view_of(&full, "p", &config), view_of(&stage, "p", &config));
        let filters = Filters::default();
        let mut compared = 0;
        for user in (0..full.artifact().body.users.len() as u32).map(UserIdx) {
            let (a, b) = (
                answer(&full, &view_full, user, 10, &filters),
                answer(&stage, &view_stage, user, 10, &filters),
            );
            if !a.personalized {
                continue;
            }
            compared += 1;
            // Same moments up to rounding: the same items, scores within 1e-4.
            assert_eq!(items(&a), items(&b), "person {} (debias {debias})", user.0);
            for (x, y) in a.items.iter().zip(&b.items) {
                assert!((x.score - y.score).abs() <= 1e-4 * (1.0 + x.score.abs()), "{x:?} vs {y:?}");
                assert_eq!(x.because, y.because);
                for ((kx, zx), (ky, zy)) in x.contributions.iter().zip(&y.contributions) {
                    assert!(kx == ky && (zx - zy).abs() <= 1e-4 * (1.0 + zx.abs()));
                }
            }
        }
        assert!(compared > 400, "{compared} persons compared");
    }
}

/// The share of the exact top 10 that the stage's top 10 holds, over every person, in a
/// placement of `config`.
fn recall(full: &Engine, stage: &Engine, config: &PlacementConfig) -> f64 {
    let (view_full, view_stage) = (view_of(full, "p", config), view_of(stage, "p", config));
    let filters = Filters::default();
    let (mut found, mut total) = (0, 0);
    for user in (0..full.artifact().body.users.len() as u32).map(UserIdx) {
        let a = items(&answer(full, &view_full, user, 10, &filters));
        let b = items(&answer(stage, &view_stage, user, 10, &filters));
        total += a.len();
        found += a.iter().filter(|i| b.contains(i)).count();
    }
    found as f64 / total as f64
}

/// The approximate part (ALS through 4 of its ~10 lists, 40 candidates per member): the
/// top 10 of the stage holds at least 95 % of the exact top 10; with 3 candidates per
/// member it cannot (so the stage really works on its candidates alone).
#[test]
fn few_candidates_and_the_als_index_keep_the_exact_top_ten() {
    let artifact = artifact(false);
    let full = exact(artifact.clone());
    let config = PlacementConfig { in_stock: StockRule::Any, ..Default::default() };
    let recall_40 = recall(&full, &staged(artifact.clone(), 40, 0), &config);
    assert!(recall_40 >= 0.95, "recall of the exact top 10 with 40 candidates: {recall_40:.4}");
    let recall_3 = recall(&full, &staged(artifact, 3, 0), &config);
    assert!(recall_3 < 0.95, "3 candidates per member of 400 items: recall {recall_3:.4}");
}

/// ALS through its index: scanning one list finds little of the exact top 10; asked for
/// a recall of 0.99, the index scans as many lists as its calibration says, and the
/// answers hold at least 0.95 of the exact top 10. ALS scoring alone follows `recall`,
/// ALS in a blend `blend_recall` (here with a content member too light to change the
/// order, so the lists scanned decide alike).
#[test]
fn the_lists_scanned_are_calibrated_to_the_recall_asked() {
    let artifact = artifact(false);
    let full = exact(artifact.clone());
    let params = |recall, blend_recall| CandidateParams {
        per_member: 40,
        min_items: 0,
        ann_from: 0,
        probe: 1,
        postings: 40,
        scan: 400,
        recall,
        blend_recall,
    };
    let alone = PlacementConfig {
        in_stock: StockRule::Any,
        weights: [(ModelKind::Als, 1.0)].into(),
        ..Default::default()
    };
    let blended = PlacementConfig {
        weights: [(ModelKind::Als, 1.0), (ModelKind::Content, 1e-6)].into(),
        ..alone.clone()
    };
    let for_alone = Engine::with_candidates(artifact.clone(), params(0.99, 0.0));
    let for_blends = Engine::with_candidates(artifact, params(0.0, 0.99));
    for (config, calibrated, one_list) in
        [(&alone, &for_alone, &for_blends), (&blended, &for_blends, &for_alone)]
    {
        let (one_list, calibrated) = (recall(&full, one_list, config), recall(&full, calibrated, config));
        assert!(one_list < 0.9, "one list of about 20: recall {one_list:.4}");
        assert!(calibrated >= 0.95, "calibrated to 0.99: recall {calibrated:.4} (one list: {one_list:.4})");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever the rules, the stage keeps them as full scoring does: nothing consumed,
    /// excluded, filtered out or over the diversity cap is taken, no item twice, and the
    /// answer is as long (a narrow filter leaves the candidates short: full scoring then
    /// fills the answer exactly as without the stage).
    #[test]
    fn the_rules_hold_through_the_candidate_path(
        user in 0u32..600,
        k in 1usize..40,
        cap in proptest::option::of(1usize..4),
        narrow in proptest::bool::ANY,
        excluded in proptest::collection::vec(0u32..400, 0..20),
    ) {
        let (full, stage) = fixtures();
        let user = UserIdx(user % full.artifact().body.users.len() as u32);
        let config = PlacementConfig { in_stock: StockRule::Any, max_per_category: cap, ..Default::default() };
        let (view_full, view_stage) = (view_of(full, "p", &config), view_of(stage, "p", &config));
        let catalog = &full.artifact().body.catalog;
        let category = catalog[(user.0 as usize * 7) % catalog.len()].top_category().unwrap().to_string();
        let filters = if narrow { Filters { categories: vec![category.clone()], ..Filters::default() } } else { Filters::default() };
        let exclude: Vec<ItemIdx> = excluded.into_iter().map(ItemIdx).collect();
        let ask = |engine: &Engine, view: &View| {
            let mut request = request(k, &filters);
            request.exclude = &exclude;
            engine.answer(view, &view.placements["p"], request, &engine.person(Some(user)), None).unwrap()
        };
        let (a, b) = (ask(full, &view_full), ask(stage, &view_stage));
        prop_assert_eq!(a.items.len(), b.items.len());
        let consumed = full.consumed(user);
        let mut seen = std::collections::BTreeSet::new();
        let mut per_category = BTreeMap::new();
        for answered in &b.items {
            let item = &catalog[answered.item.get()];
            prop_assert!(seen.insert(answered.item), "{:?} twice", answered.item);
            prop_assert!(!exclude.contains(&answered.item));
            prop_assert!(consumed.binary_search_by_key(&answered.item.0, |&(c, _)| c).is_err());
            prop_assert!(!narrow || item.top_category() == Some(category.as_str()));
            *per_category.entry(item.top_category().map(str::to_string)).or_insert(0) += 1;
        }
        if let Some(cap) = cap {
            prop_assert!(per_category.values().all(|&n| n <= cap), "{:?}", per_category);
        }
    }
}

/// One pair of engines for the property test (training once).
fn fixtures() -> (&'static Engine, &'static Engine) {
    static ENGINES: std::sync::OnceLock<(Engine, Engine)> = std::sync::OnceLock::new();
    let (full, stage) = ENGINES.get_or_init(|| {
        let artifact = artifact(true);
        (exact(artifact.clone()), staged(artifact, 30, 0))
    });
    (full, stage)
}

//! The engine's tests: the fallback chain, failing members, the blend's ranking, and what
//! happens since training (live purchases, new persons, caps, new and deleted items).

use super::*;
use crate::recommender::Recommender;
use crate::serve::rules::{Filters, PlacementConfig, StockRule};
use crate::train::config::TrainConfig;
use datasets::dataset::{Dataset, WeightConfig};
use datasets::identity::IdentityRules;
use datasets::synthetic::{SyntheticConfig, SyntheticData};

fn engine() -> Engine {
    Engine::new(artifact())
}

fn artifact() -> Artifact {
    let mut config = TrainConfig::default();
    config.als.factors = 8;
    config.blend.tune = false;
    trained_on(300, 80, 5, &config)
}

/// An artifact trained under `config` on seeded synthetic data of that size.
fn trained_on(n_persons: usize, n_items: usize, seed: u64, config: &TrainConfig) -> Artifact {
    let synthetic =
        SyntheticData::generate(SyntheticConfig { n_persons, n_items, seed, ..Default::default() }).unwrap();
    let dataset = synthetic.dataset(&WeightConfig::default(), &IdentityRules::default()).unwrap();
    let trained = crate::train::train(&dataset, config, &crate::progress::Silent).unwrap();
    Artifact::assemble(&dataset, trained, config, 0)
}

/// The engine's own catalog under one placement.
fn view_of(engine: &Engine, name: &str, config: &PlacementConfig) -> View {
    let configs = BTreeMap::from([(name.to_string(), config.clone())]);
    engine.view(engine.catalog().clone(), &configs).unwrap().0
}

fn request<'a>(k: usize, filters: &'a Filters) -> Request<'a> {
    let now = SyntheticConfig::default().end;
    Request::new(k, now, filters)
}

#[test]
fn answers_follow_the_fallback_chain_and_explain_themselves() {
    let engine = engine();
    let any_stock = PlacementConfig { in_stock: StockRule::Any, ..Default::default() };
    let view = view_of(&engine, "p", &any_stock);
    let placement = &view.placements["p"];
    let filters = Filters::default();
    let buyer = (0..engine.artifact().body.users.len() as u32)
        .map(UserIdx)
        .find(|&u| engine.consumed(u).len() >= 2)
        .unwrap();

    let answer =
        engine.answer(&view, placement, request(10, &filters), &engine.person(Some(buyer)), None).unwrap();
    assert!(answer.personalized && answer.fallback.is_none());
    assert_eq!(answer.items.len(), 10);
    let consumed = engine.consumed(buyer);
    assert!(answer.items.iter().all(|a| consumed.binary_search_by_key(&a.item.0, |&(c, _)| c).is_err()));
    for a in &answer.items {
        assert_eq!(a.source, Source::Personalized);
        assert!(!a.contributions.is_empty());
        assert!(a.contributions.windows(2).all(|w| w[0].1 >= w[1].1), "largest contribution first");
        // The contributions add up to the blended score (no boosts here).
        let sum: f32 = a.contributions.iter().map(|c| c.1).sum();
        assert!((sum - a.score).abs() < 1e-3 * (1.0 + a.score.abs()), "{sum} vs {}", a.score);
    }

    let unknown = engine.answer(&view, placement, request(10, &filters), &engine.person(None), None).unwrap();
    assert_eq!((unknown.personalized, unknown.fallback), (false, Some(FallbackReason::UnknownUser)));
    assert_eq!(unknown.items.len(), 10);
    assert!(unknown.items.iter().all(|a| a.source == Source::Popular && a.contributions.is_empty()));

    // With no blend member, a known person gets popular items of their favourite
    // categories first.
    let popular_only =
        PlacementConfig { weights: [(ModelKind::Popularity, 0.0)].into(), ..any_stock.clone() };
    let view = view_of(&engine, "q", &popular_only);
    let answer = engine
        .answer(&view, &view.placements["q"], request(5, &filters), &engine.person(Some(buyer)), None)
        .unwrap();
    assert_eq!((answer.personalized, answer.fallback), (false, Some(FallbackReason::NoModels)));
    assert_eq!(answer.items[0].source, Source::FavouriteCategories);
}

#[test]
fn a_member_that_fails_is_dropped_from_the_blend_not_the_answer() {
    // ALS fitted on another, 8-item catalog fails on every query of this one: it stands
    // for a model that cannot score (a failed fold-in, a corrupt state).
    let mut artifact = artifact();
    let foreign = crate::algorithms::als::AlsParams { factors: 2, iterations: 1, ..Default::default() }
        .fit_with(&crate::testing::block_train(), &crate::progress::Silent)
        .unwrap();
    for model in &mut artifact.body.models {
        if matches!(model, FittedModel::Als(_)) {
            *model = FittedModel::Als(foreign.clone());
        }
    }
    let engine = Engine::new(artifact);
    let filters = Filters::default();
    let buyer = (0..engine.artifact().body.users.len() as u32)
        .map(UserIdx)
        .find(|&u| engine.consumed(u).len() >= 2)
        .unwrap();
    let weights = |kinds: &[ModelKind]| PlacementConfig {
        in_stock: StockRule::Any,
        weights: kinds.iter().map(|&kind| (kind, 1.0)).collect(),
        ..Default::default()
    };
    let both = view_of(&engine, "both", &weights(&[ModelKind::Als, ModelKind::ItemKnn]));
    let answer = engine
        .answer(&both, &both.placements["both"], request(5, &filters), &engine.person(Some(buyer)), None)
        .unwrap();
    assert!(answer.personalized && answer.items.len() == 5);
    assert_eq!(answer.dropped.iter().map(|d| d.0).collect::<Vec<_>>(), ["als"]);
    assert!(answer.items.iter().all(|a| a.contributions.iter().any(|c| c == &(ModelKind::Als, 0.0))));
    // With no member left, the fallback chain answers.
    let alone = view_of(&engine, "alone", &weights(&[ModelKind::Als]));
    let answer = engine
        .answer(&alone, &alone.placements["alone"], request(5, &filters), &engine.person(Some(buyer)), None)
        .unwrap();
    assert!(!answer.personalized && answer.items.len() == 5 && answer.dropped.len() == 1);
    assert_eq!(answer.items[0].source, Source::FavouriteCategories);
}

#[test]
fn a_huge_k_is_capped_by_the_catalog_before_anything_is_allocated() {
    let engine = engine();
    let n_items = engine.artifact().body.items.len();
    for user in [None, Some(UserIdx(0))] {
        let answer = engine.recommend(user, 1_000_000_000_000).unwrap();
        assert!(answer.items.len() <= n_items && !answer.items.is_empty());
    }
    let huge = PlacementConfig { max_k: 1_000_000_000_000, ..Default::default() };
    assert!(huge.validate("home").unwrap_err().to_string().contains("max_k must be between 1 and 10000"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]

    /// What serves is what evaluation measures: for every known person, the engine's
    /// batch answer is the blend's ranking (`Blend`, as `trainer evaluate` scores it, with
    /// its de-bias and person recency) with the person's consumed items left out, item for
    /// item and score for score.
    #[test]
    fn the_engine_ranks_exactly_as_the_blend(
        seed in 0u64..1_000,
        weights in proptest::collection::vec(0.0f32..2.0, 3),
        gammas in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(0.0f32), 0.0f32..1.0], 3),
        beta in proptest::prop_oneof![proptest::strategy::Just(0.0f32), 0.0f32..4.0],
        days in 0.01f32..30.0,
    ) {
        let mut rows = datasets::synthetic::interactions(40, 25, 300, seed);
        // Times spread over a few weeks, so person recency has something to weigh.
        for (i, row) in rows.iter_mut().enumerate() {
            row.timestamp = Some(1_700_000_000 + ((i as u64 * 7_919 + seed) % 2_000_000) as i64);
        }
        let weighting = WeightConfig { recency: datasets::recency::Recency { beta, days }, ..WeightConfig::default() };
        let dataset = Dataset::from_interactions(&rows, None, &weighting).unwrap();
        let mut config = TrainConfig::default();
        config.models.enabled =
            vec![crate::recommender::ModelKind::Popularity, crate::recommender::ModelKind::ItemKnn, crate::recommender::ModelKind::Als];
        config.als.factors = 4;
        config.als.iterations = 2;
        config.blend.tune = false;
        config.blend.weights = config.models.enabled.iter().copied().zip(weights).collect();
        config.blend.debias = config.models.enabled.iter().copied().zip(gammas).collect();
        config.weights = weighting;
        let trained = crate::train::train(&dataset, &config, &crate::progress::Silent).unwrap();
        let train_set = trained.train_set.clone();
        let debias = trained.debias();
        let engine = Engine::new(Artifact::assemble(&dataset, trained, &config, 0));
        let body = &engine.artifact().body;
        let models = crate::train::members(&body.models);
        let blend = crate::blend::Blend::new(&models, &engine.artifact().metadata.blend_weights).debiased(&debias);
        let recency = engine.artifact().metadata.recency;
        proptest::prop_assert_eq!(recency, config.weights.recency);
        let mut scores = vec![0.0; body.items.len()];
        let mut compared = 0;
        for user in (0..body.users.len() as u32).map(UserIdx) {
            let history = engine.history(user);
            let answer = engine.recommend(Some(user), 5).unwrap();
            if history.is_empty() || answer.fallback.is_some() {
                continue;
            }
            let factors = train_set.recency(user, &recency);
            blend.score_into(&Query { user: Some(user), history: &history, recency: &factors }, &mut scores).unwrap();
            let consumed = engine.consumed(user);
            let expected = crate::rank::top_k(&scores, 5, |i| {
                consumed.binary_search_by_key(&(i as u32), |&(c, _)| c).is_err()
            });
            proptest::prop_assert_eq!(&answer.items, &expected, "person {}", user.0);
            compared += 1;
        }
        proptest::prop_assert!(compared >= 30, "only {} persons compared", compared);
    }
}

#[test]
fn fallback_stages_respect_the_filters() {
    let engine = engine();
    let view = view_of(&engine, "p", &PlacementConfig { in_stock: StockRule::Any, ..Default::default() });
    let placement = &view.placements["p"];
    let catalog = &engine.artifact().body.catalog;
    let category = catalog[0].top_category().unwrap().to_string();
    let in_category = catalog.iter().filter(|i| i.top_category() == Some(category.as_str())).count();
    let filters = Filters { categories: vec![category.clone()], ..Filters::default() };
    // More than the category holds: the answer stops short rather than leave it.
    for user in [None, Some(UserIdx(0))] {
        let answer = engine
            .answer(&view, placement, request(in_category + 5, &filters), &engine.person(user), None)
            .unwrap();
        assert!(answer.items.len() <= in_category && !answer.items.is_empty());
        assert!(answer.items.iter().all(|a| catalog[a.item.get()].top_category() == Some(category.as_str())));
    }
}

mod live;

mod candidate_stage;

/// Above 2,048 items the popular fill reads the most popular items and those with live
/// popularity instead of scoring the catalog: the same answers as the full fill (forced
/// here by a boost of factor 1, which changes no order), live purchases of items far down
/// the model's order included.
#[test]
fn the_popular_fill_of_a_large_catalog_is_the_full_fill() {
    let mut config = TrainConfig::default();
    config.models.enabled = vec![ModelKind::Popularity, ModelKind::Als];
    config.als.factors = 4;
    config.als.iterations = 2;
    config.blend.tune = false;
    let engine = Engine::new(trained_on(400, 3_000, 9, &config));
    let n = engine.popularity.len();
    assert!(n > POPULAR_PREFIX, "{n} items");
    let filters = Filters::default();
    let live = LivePopularity::new(0, None);
    for (step, cap) in [None, Some(1), Some(2)].into_iter().enumerate() {
        let plain = PlacementConfig { in_stock: StockRule::Any, max_per_category: cap, ..Default::default() };
        let boosted = PlacementConfig {
            boosts: vec![crate::serve::rules::Boost {
                brand: None,
                category: None,
                tag: Some("none".into()),
                factor: 1.0,
            }],
            ..plain.clone()
        };
        let (view, full) = (view_of(&engine, "p", &plain), view_of(&engine, "p", &boosted));
        assert!(!view.placements["p"].boosts() && full.placements["p"].boosts());
        // Live purchases lift items from the bottom of the model's order into the top.
        let order = &engine.popular_order;
        for (person, &item) in order[n - 3..].iter().enumerate() {
            for buyer in 0..(40 * (step + 1) + person) {
                live.record(&format!("p{buyer}"), ItemIdx(item), 0);
            }
        }
        for k in [1, 10, 40] {
            let ask = |view: &View| -> Vec<ItemIdx> {
                let answer = engine
                    .answer(
                        view,
                        &view.placements["p"],
                        request(k, &filters),
                        &engine.person(None),
                        Some(&live),
                    )
                    .unwrap();
                answer.items.iter().map(|a| a.item).collect()
            };
            let (got, expected) = (ask(&view), ask(&full));
            assert_eq!(got, expected, "k {k}, cap {cap:?}");
            assert!(!got.is_empty() && got.len() <= k);
            let placement = &view.placements["p"];
            let eligibility =
                Eligibility::new(placement, &view.catalog, request(k, &filters), &[], &[]).unwrap();
            let mut selection = Selection::new(&eligibility);
            // Unless the cap (one or two items per category of a few) keeps the answer short,
            // the catalog was not scored.
            let filled = engine.fill_popular(&mut selection, placement, Some(&live), n);
            assert_eq!(filled, got.len() == k, "k {k}, cap {cap:?}: {} items", got.len());
            if step == 2 && k >= 10 {
                assert!(got.contains(&ItemIdx(order[n - 1])), "a live favourite is missing");
            }
        }
    }
}

#[test]
fn a_similar_items_placement_not_personalised_answers_with_popular_items() {
    // An experiment's popular control on a product page.
    let engine = engine();
    let similar =
        PlacementConfig { kind: PlacementKind::Similar, in_stock: StockRule::Any, ..Default::default() };
    let control = PlacementConfig { personalized: false, ..similar.clone() };
    let filters = Filters::default();
    let viewed = Some(ItemIdx(0));
    let ask = |config: &PlacementConfig| {
        let view = view_of(&engine, "p", config);
        let request = Request { viewed, ..request(5, &filters) };
        engine.answer(&view, &view.placements["p"], request, &engine.person(None), None).unwrap()
    };
    let blended = ask(&similar);
    assert!(blended.personalized && blended.items.iter().all(|a| a.source == Source::Similar));
    let popular = ask(&control);
    assert_eq!((popular.personalized, popular.fallback), (false, Some(FallbackReason::NotPersonalized)));
    assert!(popular.items.iter().all(|a| a.source == Source::Popular && a.item != ItemIdx(0)), "{popular:?}");
}

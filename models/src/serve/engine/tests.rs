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

mod live {
    use std::collections::BTreeMap;

    use datasets::schema::{Channel, Event, EventType, Identifier, IdentifierKind, Item};
    use datasets::{ItemIdx, UserIdx};

    use super::*;
    use crate::serve::catalog::CatalogChange;
    use crate::serve::person::{LiveSignals, assemble};
    use crate::serve::rules::FrequencyCap;

    fn engine() -> Engine {
        super::engine()
    }

    fn event(kind: EventType, at: i64) -> Event {
        Event {
            identifiers: vec![Identifier::new(IdentifierKind::CookieId, "c").unwrap()],
            channel: Channel::Web,
            event_type: kind,
            item_id: Some("x".into()),
            timestamp: at,
            value: None,
            event_id: None,
        }
    }

    fn placement(weights: &[(ModelKind, f32)], cap: Option<FrequencyCap>) -> PlacementConfig {
        PlacementConfig {
            in_stock: StockRule::Any,
            respect_availability: false,
            weights: weights.iter().copied().collect(),
            frequency_cap: cap,
            ..PlacementConfig::default()
        }
    }

    fn ask(engine: &Engine, view: &View, person: &Person<'_>) -> Answer {
        let filters = Filters::default();
        engine
            .answer(view, &view.placements["p"], Request::new(10, 2_000_000_000, &filters), person, None)
            .unwrap()
    }

    fn views(engine: &Engine, config: PlacementConfig) -> View {
        engine.view(engine.catalog().clone(), &BTreeMap::from([("p".to_string(), config)])).unwrap().0
    }

    #[test]
    fn a_live_purchase_on_any_channel_leaves_the_next_answer_and_a_return_brings_it_back() {
        let engine = engine();
        let view = views(&engine, placement(&[], None));
        let user = (0..engine.artifact().body.users.len() as u32)
            .map(UserIdx)
            .find(|&u| engine.history(u).len() >= 3)
            .unwrap();
        let before = ask(&engine, &view, &engine.person(Some(user)));
        let top = before.items[0].item;
        let bought = LiveSignals {
            trained: vec![user],
            events: vec![(Some(top), event(EventType::Purchase, 10))],
            ledger: vec![(top, vec![(1, 10)])],
            personalization: true,
            ..LiveSignals::default()
        };
        let person = assemble(&engine, &bought);
        assert!(person.fresh && person.consumed.iter().any(|&(i, _)| i == top.0));
        let after = ask(&engine, &view, &person);
        assert!(
            after.personalized && after.items.iter().all(|a| a.item != top),
            "the purchase is never offered back"
        );
        let returned = LiveSignals { ledger: vec![(top, vec![(1, 10), (-1, 20)])], ..bought };
        assert!(assemble(&engine, &returned).consumed.iter().all(|&(i, _)| i != top.0));
        // A trained purchase returned live is no longer consumed either.
        let (old, _) = engine.consumed(user)[0];
        let back = LiveSignals {
            trained: vec![user],
            ledger: vec![(ItemIdx(old), vec![(-1, 30)])],
            personalization: true,
            ..LiveSignals::default()
        };
        assert!(assemble(&engine, &back).consumed.iter().all(|&(i, _)| i != old));
    }

    #[test]
    fn a_return_cancels_only_a_purchase_held_before_it() {
        let engine = engine();
        let item = ItemIdx(3);
        let consumed = |trained: Vec<UserIdx>, ledger: Vec<(i8, i64)>| {
            let live = LiveSignals {
                trained,
                ledger: vec![(item, ledger)],
                personalization: true,
                ..LiveSignals::default()
            };
            assemble(&engine, &live).consumed.iter().any(|&(i, _)| i == item.0)
        };
        // A gift returned, then the item bought: bought.
        assert!(consumed(Vec::new(), vec![(-1, 10), (1, 20)]));
        // The same, but the return sent after the purchase: time order, not arrival order.
        assert!(consumed(Vec::new(), vec![(1, 20), (-1, 10)]));
        assert!(!consumed(Vec::new(), vec![(-1, 30), (1, 20)]));
        // Bought twice, returned once: still held; twice: not.
        assert!(consumed(Vec::new(), vec![(1, 10), (1, 20), (-1, 30)]));
        assert!(!consumed(Vec::new(), vec![(1, 10), (1, 20), (-1, 30), (-1, 40)]));
        // Two trained persons merged live who both bought an item hold two: one return
        // leaves it consumed.
        let holders: Vec<UserIdx> = (0..engine.artifact().body.users.len() as u32)
            .map(UserIdx)
            .filter(|&u| !engine.consumed(u).is_empty())
            .collect();
        let shared = holders.iter().enumerate().find_map(|(at, &a)| {
            holders[at + 1..].iter().find_map(|&b| {
                let (first, _) = engine.consumed(a)[0];
                engine.consumed(b).iter().any(|&(i, _)| i == first).then_some((a, b, ItemIdx(first)))
            })
        });
        let (a, b, both) = shared.expect("two trained persons bought the same item");
        let merged = |ledger: Vec<(i8, i64)>| {
            let live = LiveSignals {
                trained: vec![a, b],
                ledger: vec![(both, ledger)],
                personalization: true,
                ..LiveSignals::default()
            };
            assemble(&engine, &live).consumed.iter().any(|&(i, _)| i == both.0)
        };
        assert!(merged(vec![(-1, 30)]));
        assert!(!merged(vec![(-1, 30), (-1, 40)]));
    }

    #[test]
    fn units_held_before_training_take_as_many_live_returns() {
        let mut artifact = super::artifact();
        let (user, &(item, _)) = artifact
            .body
            .consumed
            .iter()
            .enumerate()
            .find_map(|(user, items)| Some((user as u32, items.first()?)))
            .expect("a trained person consumed something");
        artifact.body.held = vec![(user, item, 2)];
        let engine = Engine::new(artifact);
        assert_eq!((engine.held(UserIdx(user), item), engine.held(UserIdx(user), u32::MAX)), (2, 0));
        let consumed = |ledger: Vec<(i8, i64)>| {
            let live = LiveSignals {
                trained: vec![UserIdx(user)],
                ledger: vec![(ItemIdx(item), ledger)],
                personalization: true,
                ..LiveSignals::default()
            };
            assemble(&engine, &live).consumed.iter().any(|&(i, _)| i == item)
        };
        // Bought twice before training: one live return leaves one held.
        assert!(consumed(vec![(-1, i64::MAX - 1)]));
        assert!(!consumed(vec![(-1, i64::MAX - 1), (-1, i64::MAX)]));
    }

    #[test]
    fn what_was_bought_while_consent_was_withheld_is_held_once_per_purchase() {
        let engine = engine();
        let item = ItemIdx(5);
        let consumed = |withheld: Vec<Vec<(ItemIdx, i64, u32)>>, ledger: Vec<(i8, i64)>| {
            let live = LiveSignals {
                withheld,
                ledger: vec![(item, ledger)],
                personalization: true,
                ..LiveSignals::default()
            };
            assemble(&engine, &live).consumed.iter().any(|&(i, _)| i == item.0)
        };
        assert!(consumed(vec![vec![(item, 10, 1)]], Vec::new()));
        // One purchase seen under two of the person's identifiers is one unit, not two.
        assert!(!consumed(vec![vec![(item, 10, 1)], vec![(item, 10, 1)]], vec![(-1, 20)]));
        // Two units under one identifier take two returns.
        assert!(consumed(vec![vec![(item, 10, 2)], vec![(item, 10, 1)]], vec![(-1, 20)]));
        assert!(!consumed(vec![vec![(item, 10, 2)]], vec![(-1, 20), (-1, 30)]));
        // Still withholding, the whole stored ledger comes too: the purchase kept by the
        // trainer and the same one in the ledger are one unit, the larger of the two.
        let withholding = |withheld: Vec<Vec<(ItemIdx, i64, u32)>>, ledger: Vec<(i8, i64)>| {
            let live = LiveSignals { withheld, ledger: vec![(item, ledger)], ..LiveSignals::default() };
            assemble(&engine, &LiveSignals { personalization: false, ..live })
                .consumed
                .iter()
                .any(|&(i, _)| i == item.0)
        };
        assert!(withholding(vec![vec![(item, 10, 1)]], vec![(1, 10)]));
        assert!(withholding(Vec::new(), vec![(1, 10)]));
        assert!(!withholding(Vec::new(), vec![(1, 10), (-1, 20)]));
        assert!(withholding(vec![vec![(item, 10, 1)]], Vec::new()));
    }

    #[test]
    fn a_person_the_model_never_saw_is_personalised_from_their_first_events() {
        let engine = engine();
        let view = views(&engine, placement(&[], None));
        let catalog = engine.catalog();
        let category = catalog.index().top_category(ItemIdx(0));
        let same: Vec<ItemIdx> = (0..catalog.len() as u32)
            .map(ItemIdx)
            .filter(|&i| catalog.index().top_category(i) == category)
            .take(3)
            .collect();
        let views_of = LiveSignals {
            events: same.iter().map(|&i| (Some(i), event(EventType::View, 5))).collect(),
            personalization: true,
            ..LiveSignals::default()
        };
        let person = assemble(&engine, &views_of);
        let answer = ask(&engine, &view, &person);
        assert!(answer.personalized && answer.fallback.is_none());
        let in_category =
            answer.items.iter().filter(|a| catalog.index().top_category(a.item) == category).count();
        assert!(in_category >= 3, "the answer follows the views: {in_category} of 10 in their category");
        // Without consent: popular items, and the reason says why.
        let withheld = assemble(&engine, &LiveSignals { personalization: false, ..views_of });
        let answer = ask(&engine, &view, &withheld);
        assert_eq!((answer.personalized, answer.fallback), (false, Some(FallbackReason::NoConsent)));
        assert!(answer.items.iter().all(|a| a.source == Source::Popular));
    }

    #[test]
    fn the_frequency_cap_holds_what_was_shown_too_often() {
        let engine = engine();
        let cap = FrequencyCap { max_impressions: 2, window_hours: 24.0 };
        let view = views(&engine, placement(&[], Some(cap)));
        let first = ask(&engine, &view, &engine.person(None));
        let (a, b) = (first.items[0].item, first.items[1].item);
        let now = 2_000_000_000;
        // a shown twice within the day, b once, and a third time long ago does not count.
        let shown = vec![(a, now - 3_600), (a, now - 60), (b, now - 60), (b, now - 90_000)];
        let person = Person { shown, ..engine.person(None) };
        let capped = ask(&engine, &view, &person);
        assert!(capped.items.iter().all(|x| x.item != a));
        assert!(capped.items.iter().any(|x| x.item == b));
        // A channel asking for items not shown within two hours gets neither.
        let filters = Filters::default();
        let request = Request { not_shown_within: Some(7_200), ..Request::new(10, now, &filters) };
        let fresh_only = engine.answer(&view, &view.placements["p"], request, &person, None).unwrap();
        assert!(fresh_only.items.iter().all(|x| x.item != a && x.item != b));
    }

    #[test]
    fn a_new_item_is_recommended_at_once_and_a_deleted_one_never() {
        let engine = engine();
        let view = views(&engine, placement(&[(ModelKind::Content, 1.0)], None));
        let user = (0..engine.artifact().body.users.len() as u32)
            .map(UserIdx)
            .find(|&u| engine.history(u).len() >= 3)
            .unwrap();
        let history = engine.history(user);
        let favourite = history.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
        let model_item = engine.catalog().item(favourite.get()).unwrap().clone();
        let twin = Item { item_id: "twin".into(), ..model_item };
        let changes = [CatalogChange { item_id: "twin".into(), item: Some(twin) }];
        let next = view.with_changes(&changes, engine.content()).unwrap();
        let twin_idx = next.catalog.get("twin").unwrap();
        assert_eq!(twin_idx.get(), engine.catalog().len());
        let answer = ask(&engine, &next, &engine.person(Some(user)));
        assert!(
            answer.items.iter().take(3).any(|a| a.item == twin_idx),
            "the new twin of a favourite ranks near the top"
        );
        // Deleted: gone from every stage, the model's items too.
        let top = answer.items.iter().find(|a| a.item != twin_idx).unwrap().item;
        let gone = next
            .with_changes(
                &[
                    CatalogChange { item_id: "twin".into(), item: None },
                    CatalogChange { item_id: engine.catalog().id(top).unwrap().to_string(), item: None },
                ],
                engine.content(),
            )
            .unwrap();
        for person in [engine.person(Some(user)), engine.person(None)] {
            let answer = ask(&engine, &gone, &person);
            assert!(answer.items.iter().all(|a| a.item != twin_idx && a.item != top));
        }
        // Live popularity lifts the new item into the popular stage.
        let live = LivePopularity::new(0, None);
        let fresh = view.with_changes(&changes, engine.content()).unwrap();
        for n in 0..500 {
            live.record(&format!("cookie_id:{n}"), twin_idx, 1);
        }
        let filters = Filters::default();
        let popular = engine
            .answer(
                &fresh,
                &fresh.placements["p"],
                Request::new(3, 2_000_000_000, &filters),
                &engine.person(None),
                Some(&live),
            )
            .unwrap();
        assert_eq!(popular.items[0].item, twin_idx);
    }
}

/// The candidate stage against full scoring of the catalog, on data small enough to score
/// both ways: the same answers when every item is a candidate, the same rules always, and
/// the recall of the approximate ALS index measured.
mod candidate_stage {
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
            assert!(
                calibrated >= 0.95,
                "calibrated to 0.99: recall {calibrated:.4} (one list: {one_list:.4})"
            );
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
}

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

//! What happens since training: live purchases and returns, new persons, consent, caps,
//! new and deleted items.

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
    // A trained purchase returned live is no longer consumed either; a return dated before
    // it (sent late) does not cancel it.
    let (old, bought_at) = engine.consumed(user)[0];
    let returns = |at: i64| vec![(-1, at); engine.held(user, old) as usize];
    let back = |at: i64| LiveSignals {
        trained: vec![user],
        ledger: vec![(ItemIdx(old), returns(at))],
        personalization: true,
        ..LiveSignals::default()
    };
    assert!(assemble(&engine, &back(bought_at + 30)).consumed.iter().all(|&(i, _)| i != old));
    assert!(assemble(&engine, &back(bought_at - 30)).consumed.iter().any(|&(i, _)| i == old));
}

#[test]
fn another_named_person_s_purchases_are_consumed_and_their_history_does_not_count() {
    let engine = engine();
    let users: Vec<UserIdx> = (0..engine.artifact().body.users.len() as u32)
        .map(UserIdx)
        .filter(|&u| !engine.consumed(u).is_empty())
        .take(2)
        .collect();
    let (me, other) = (users[0], users[1]);
    let live = LiveSignals {
        trained: vec![me],
        also_trained: vec![other],
        personalization: true,
        ..LiveSignals::default()
    };
    let person = assemble(&engine, &live);
    let mine = engine.person(Some(me));
    assert_eq!(
        (person.user, person.fresh),
        (Some(me), false),
        "answered as the first person, from stored state"
    );
    assert_eq!(person.history, mine.history);
    for &(item, _) in engine.consumed(me).iter().chain(engine.consumed(other)) {
        assert!(person.consumed.iter().any(|&(i, _)| i == item), "item {item} is consumed");
    }
    // An explanation says "you bought" of my purchases only, never of the other person's.
    let bought = person.bought.as_deref().expect("assembled");
    let mine_only = |item: u32| engine.consumed(me).iter().any(|&(i, _)| i == item);
    assert!(engine.consumed(me).iter().all(|&(item, _)| bought.contains(&item)));
    let theirs_only: Vec<u32> =
        engine.consumed(other).iter().map(|&(i, _)| i).filter(|&i| !mine_only(i)).collect();
    assert!(!theirs_only.is_empty() && theirs_only.iter().all(|i| !bought.contains(i)), "{bought:?}");
    // Nor of what another version or the withheld holdings bring (they may be theirs).
    let held_elsewhere = LiveSignals {
        elsewhere: vec![(ItemIdx(theirs_only[0]), 0, 1)],
        withheld: vec![vec![(ItemIdx(theirs_only[0]), 0, 1)]],
        also_trained: Vec::new(),
        ..live.clone()
    };
    let person = assemble(&engine, &held_elsewhere);
    assert!(person.consumed.iter().any(|&(i, _)| i == theirs_only[0]));
    assert!(!person.bought.as_deref().unwrap().contains(&theirs_only[0]));
    // Each person is netted apart. The other person's live return of what the model knew
    // they bought leaves it consumed (the safe side: which of their units it cancels is not
    // known); one of a live purchase of theirs gives it back.
    let (theirs, bought_at) = engine.consumed(other)[0];
    let held = engine.held(other, theirs) as usize;
    let returns = vec![(-1, bought_at + 50); held];
    let returned = LiveSignals { also_ledgers: vec![vec![(ItemIdx(theirs), returns)]], ..live.clone() };
    assert!(assemble(&engine, &returned).consumed.iter().any(|&(i, _)| i == theirs));
    let fresh = ItemIdx(
        (0..engine.artifact().body.items.len() as u32)
            .find(|&i| engine.consumed(me).iter().chain(engine.consumed(other)).all(|&(c, _)| c != i))
            .unwrap(),
    );
    let consumed = |live: &LiveSignals| assemble(&engine, live).consumed.iter().any(|&(i, _)| i == fresh.0);
    let bought_and_returned = vec![vec![(fresh, vec![(1, bought_at + 10), (-1, bought_at + 20)])]];
    assert!(!consumed(&LiveSignals { also_ledgers: bought_and_returned, ..live.clone() }));
    assert!(consumed(&LiveSignals {
        also_ledgers: vec![vec![(fresh, vec![(1, bought_at + 10)])]],
        ..live.clone()
    }));
    // The other person returning what they never bought does not cancel my purchase.
    let mine_and_their_return = LiveSignals {
        ledger: vec![(fresh, vec![(1, bought_at + 10)])],
        also_ledgers: vec![vec![(fresh, vec![(-1, bought_at + 20)])]],
        ..live.clone()
    };
    assert!(consumed(&mine_and_their_return), "another person's return cancelled my purchase");
    // A trained person of my own that an erasure keeps from answering (their vector learned
    // someone else's events): what they bought is consumed, their history does not count.
    let blocked = LiveSignals { trained: Vec::new(), blocked: vec![me], also_trained: Vec::new(), ..live };
    let person = assemble(&engine, &blocked);
    assert!(person.history.is_empty() && person.user.is_none());
    assert_eq!(person.bought.as_deref(), Some(&[][..]), "no purchase of theirs is mine");
    for &(item, _) in engine.consumed(me) {
        assert!(person.consumed.iter().any(|&(i, _)| i == item), "item {item} is consumed");
    }
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
    let after = engine
        .consumed(a)
        .iter()
        .chain(engine.consumed(b))
        .filter(|&&(i, _)| i == both.0)
        .map(|&(_, at)| at)
        .max()
        .unwrap_or(0);
    let units = (engine.held(a, both.0) + engine.held(b, both.0)) as usize;
    assert!(merged(vec![(-1, after + 30); units - 1]));
    assert!(!merged(vec![(-1, after + 30); units]));
    // Returns dated before the last trained purchase cancel none of the trained units.
    assert!(merged(vec![(-1, after - 30); units]));
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

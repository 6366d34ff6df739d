//! Rules tests: hand-worked answers and properties of exclusions and caps.

use std::collections::BTreeMap;

use datasets::schema::Item;
use datasets::{IdMap, ItemIdx};

use super::*;
use crate::serve::catalog::LiveCatalog;
use proptest::prelude::*;

/// Eight items: 0–3 shoes (brand A, prices 10..40), 4–7 books (brand B, prices 50..80);
/// item 3 is out of stock online; item 5 only in store `s1`.
fn catalog() -> (IdMap, Vec<Item>) {
    let mut ids = IdMap::new();
    let items = (0..8)
        .map(|i| {
            ids.get_or_insert(&format!("i{i}"));
            let shoe = i < 4;
            Item {
                item_id: format!("i{i}"),
                categories: vec![if shoe { "shoes>running".into() } else { "books".into() }],
                brand: Some(if shoe { "A" } else { "B" }.into()),
                tags: if i == 6 { vec!["sale".into()] } else { Vec::new() },
                price: Some(10.0 * (i + 1) as f32),
                in_stock: i != 3,
                store_stock: if i == 5 { BTreeMap::from([("s1".to_string(), 2)]) } else { BTreeMap::new() },
                ..Item::default()
            }
        })
        .collect();
    (ids, items)
}

/// Scores descending by item index: item 0 is best.
fn scores() -> Vec<f32> {
    (0..8).map(|i| 8.0 - i as f32).collect()
}

const NO_FILTERS: &Filters = &Filters {
    categories: Vec::new(),
    exclude_categories: Vec::new(),
    brands: Vec::new(),
    min_price: None,
    max_price: None,
};

fn answer<'a>(
    config: PlacementConfig,
    request: impl FnOnce(&mut Request<'a>),
    consumed: &[(u32, i64)],
) -> Vec<u32> {
    let (ids, items) = catalog();
    let live = LiveCatalog::of_items(ids.clone(), items.clone());
    let (placement, _) = Placement::compile("p", &config, &live).unwrap();
    let mut req = Request::new(4, 1_000_000, NO_FILTERS);
    request(&mut req);
    let eligibility = Eligibility::new(&placement, &live, req, consumed, &[]).unwrap();
    let mut scores = scores();
    eligibility.apply_boosts(&mut scores);
    let mut selection = Selection::new(&eligibility);
    selection.fill(&scores, Source::Personalized);
    selection.finish().into_iter().map(|(s, _)| s.item.0).collect()
}

#[test]
fn online_stock_is_the_default_and_purchases_are_excluded() {
    assert_eq!(answer(PlacementConfig::default(), |_| {}, &[]), [0, 1, 2, 4]);
    assert_eq!(answer(PlacementConfig::default(), |_| {}, &[(1, 0)]), [0, 2, 4, 5]);
    let keep = PlacementConfig { exclude_purchased: false, in_stock: StockRule::Any, ..Default::default() };
    assert_eq!(answer(keep, |_| {}, &[(1, 0)]), [0, 1, 2, 3]);
}

#[test]
fn repurchase_window_lets_consumables_back() {
    let config = PlacementConfig {
        repurchase_after_days: BTreeMap::from([("shoes".to_string(), 10.0)]),
        ..Default::default()
    };
    // Bought 5 days ago: still held back; 11 days ago: back.
    let now = 1_000_000;
    assert_eq!(answer(config.clone(), |_| {}, &[(0, now - 5 * 86_400)]), [1, 2, 4, 5]);
    assert_eq!(answer(config.clone(), |_| {}, &[(0, now - 11 * 86_400)]), [0, 1, 2, 4]);
    // Bought at an unknown time (0): it may be recent, so it stays held back.
    assert_eq!(answer(config, |_| {}, &[(0, 0)]), [1, 2, 4, 5]);
}

#[test]
fn cart_viewed_and_explicit_exclusions() {
    let cart = [ItemIdx(0)];
    let exclude = [ItemIdx(2)];
    let got = answer(
        PlacementConfig::default(),
        |r| {
            r.cart = &cart;
            r.exclude = &exclude;
            r.viewed = Some(ItemIdx(4));
        },
        &[],
    );
    assert_eq!(got, [1, 5, 6, 7]);
    let keep_cart = PlacementConfig { exclude_cart: false, ..Default::default() };
    assert_eq!(answer(keep_cart, |r| r.cart = &cart, &[]), [0, 1, 2, 4]);
}

#[test]
fn store_stock_category_price_and_availability() {
    let store = PlacementConfig { in_stock: StockRule::Store, ..Default::default() };
    assert_eq!(answer(store, |r| r.store_id = Some("s1"), &[]), [5]);
    let books =
        PlacementConfig { categories: vec!["books".into()], max_price: Some(70.0), ..Default::default() };
    assert_eq!(answer(books, |_| {}, &[]), [4, 5, 6]);
    let no_shoes = PlacementConfig { exclude_categories: vec!["shoes".into()], ..Default::default() };
    assert_eq!(answer(no_shoes, |_| {}, &[]), [4, 5, 6, 7]);
    // `shoe` is not a prefix of `shoes>running` at a level boundary.
    let partial = PlacementConfig { categories: vec!["shoe".into()], ..Default::default() };
    assert_eq!(answer(partial, |_| {}, &[]), Vec::<u32>::new());
    let (ids, mut items) = catalog();
    items[0].available_from = Some(2_000_000);
    items[1].available_until = Some(999_999);
    let live = LiveCatalog::of_items(ids.clone(), items.clone());
    let (placement, _) = Placement::compile("p", &PlacementConfig::default(), &live).unwrap();
    let filters = Filters { brands: vec!["A".into()], ..Default::default() };
    let request = Request::new(4, 1_000_000, &filters);
    let eligibility = Eligibility::new(&placement, &live, request, &[], &[]).unwrap();
    assert_eq!((0..8).filter(|&i| eligibility.allows(i)).collect::<Vec<_>>(), [2]);
}

#[test]
fn boosts_lift_matching_items_even_with_negative_scores() {
    let config = PlacementConfig {
        in_stock: StockRule::Any,
        boosts: vec![Boost { brand: None, category: None, tag: Some("sale".into()), factor: 100.0 }],
        ..Default::default()
    };
    assert_eq!(answer(config, |_| {}, &[]), [6, 0, 1, 2]);
    let (ids, items) = catalog();
    let config = PlacementConfig {
        boosts: vec![Boost { brand: Some("B".into()), category: None, tag: None, factor: 2.0 }],
        ..Default::default()
    };
    let live = LiveCatalog::of_items(ids.clone(), items.clone());
    let (placement, _) = Placement::compile("p", &config, &live).unwrap();
    let filters = Filters::default();
    let request = Request::new(2, 0, &filters);
    let eligibility = Eligibility::new(&placement, &live, request, &[], &[]).unwrap();
    let mut scores = vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0];
    eligibility.apply_boosts(&mut scores);
    assert!(scores.iter().all(|&s| s > 0.0));
    // Item 4 (brand B) had less than item 3 and, doubled, passes it.
    assert!(scores[4] > scores[3]);
}

#[test]
fn pins_take_their_slot_only_while_active_and_eligible() {
    let pin = |item: &str, slot, from: Option<&str>, until: Option<&str>| Pin {
        item_id: item.into(),
        slot,
        from: from.map(Into::into),
        until: until.map(Into::into),
    };
    let config = PlacementConfig {
        pins: vec![pin("i7", 1, None, None), pin("i6", 3, Some("2000000"), None), pin("i3", 2, None, None)],
        ..Default::default()
    };
    // i7 first; i6 not yet active; i3 is out of stock online.
    assert_eq!(answer(config.clone(), |_| {}, &[]), [7, 0, 1, 2]);
    assert_eq!(answer(config, |r| r.now = 2_000_000, &[]), [7, 0, 6, 1]);
    // A pinned item the ranking had first moves to its slot without shifting an earlier pin.
    let config = PlacementConfig {
        pins: vec![pin("i5", 2, None, None), pin("i0", 3, None, None)],
        ..Default::default()
    };
    assert_eq!(answer(config, |_| {}, &[]), [1, 5, 0, 2]);
    let (ids, items) = catalog();
    let missing = PlacementConfig { pins: vec![pin("nope", 1, None, None)], ..Default::default() };
    let live = LiveCatalog::of_items(ids.clone(), items.clone());
    let (_, warnings) = Placement::compile("p", &missing, &live).unwrap();
    assert_eq!(warnings.len(), 1);
}

#[test]
fn diversity_caps_items_per_top_category() {
    let config = PlacementConfig { max_per_category: Some(2), ..Default::default() };
    assert_eq!(answer(config.clone(), |_| {}, &[]), [0, 1, 4, 5]);
    assert_eq!(answer(config, |r| r.k = 6, &[]), [0, 1, 4, 5]);
}

#[test]
fn invalid_settings_and_requests_are_named() {
    let bad = |config: PlacementConfig| config.validate("home").unwrap_err().to_string();
    assert!(bad(PlacementConfig { k: 0, ..Default::default() }).contains("k must be"));
    let boost = Boost { brand: Some("A".into()), category: None, tag: Some("x".into()), factor: 2.0 };
    assert!(bad(PlacementConfig { boosts: vec![boost], ..Default::default() }).contains("exactly one"));
    // Boosts each fine but together past f32: refused, as a NaN price is.
    let huge = |brand: &str| Boost { brand: Some(brand.into()), category: None, tag: None, factor: 1e30 };
    let boosts = vec![huge("A"), huge("B")];
    assert!(bad(PlacementConfig { boosts, ..Default::default() }).contains("together multiply"));
    let nan = bad(PlacementConfig { min_price: Some(f32::NAN), ..Default::default() });
    assert!(nan.contains("not a finite price"), "{nan}");
    let pin = Pin { item_id: "i1".into(), slot: 1, from: Some("yesterday".into()), until: None };
    assert!(bad(PlacementConfig { pins: vec![pin], ..Default::default() }).contains("`from`"));
    let (ids, items) = catalog();
    let store = PlacementConfig { in_stock: StockRule::Store, ..Default::default() };
    let live = LiveCatalog::of_items(ids.clone(), items.clone());
    let (placement, _) = Placement::compile("kiosk", &store, &live).unwrap();
    let filters = Filters::default();
    let request = Request::new(4, 0, &filters);
    let err = Eligibility::new(&placement, &live, request, &[], &[]).err().unwrap();
    assert_eq!(err, RuleError::MissingStore("kiosk".into()));
    let err = Eligibility::new(&placement, &live, Request { k: 101, ..request }, &[], &[]).err().unwrap();
    assert!(err.to_string().contains("between 1 and 100"));
}

proptest! {
    /// A bounded fill from part of the catalog either gives what the full fill gives or
    /// leaves the selection as it was.
    #[test]
    fn a_bounded_fill_is_the_full_fill_or_nothing(
        scores in prop::collection::vec(prop::sample::select(vec![0.0f32, 1.0, 2.0, 2.5, 4.0, 7.0]), 8),
        listed in prop::collection::btree_set(0u32..8, 0..8),
        consumed in prop::collection::btree_set(0u32..8, 0..3),
        k in 1usize..6,
        cap in prop::option::of(1usize..3),
        first in prop::option::of(0u32..8),
    ) {
        let (ids, items) = catalog();
        let config = PlacementConfig { max_per_category: cap, in_stock: StockRule::Any, ..Default::default() };
        let live = LiveCatalog::of_items(ids.clone(), items.clone());
        let (placement, _) = Placement::compile("p", &config, &live).unwrap();
        let filters = Filters::default();
        let consumed: Vec<(u32, i64)> = consumed.into_iter().map(|i| (i, 0)).collect();
        let eligibility = Eligibility::new(&placement, &live, Request::new(k, 0, &filters), &consumed, &[]).unwrap();
        // An earlier stage may have picked one item already.
        let earlier: Vec<f32> = (0..8).map(|i| if Some(i) == first { 1.0 } else { f32::NEG_INFINITY }).collect();
        let (mut full, mut bounded) = (Selection::new(&eligibility), Selection::new(&eligibility));
        full.fill(&earlier, Source::Personalized);
        bounded.fill(&earlier, Source::Personalized);
        full.fill(&scores, Source::Popular);
        let sparse: Vec<(u32, f32)> = listed.iter().map(|&i| (i, scores[i as usize])).collect();
        let bound = (0..8u32).filter(|i| !listed.contains(i)).map(|i| scores[i as usize]).fold(f32::NEG_INFINITY, f32::max);
        let before: Vec<u32> = bounded.picked.iter().map(|(s, _)| s.item.0).collect();
        let exact = bounded.fill_bounded(&sparse, bound, Source::Popular);
        let got: Vec<u32> = bounded.finish().into_iter().map(|(s, _)| s.item.0).collect();
        if exact {
            let expected: Vec<u32> = full.finish().into_iter().map(|(s, _)| s.item.0).collect();
            prop_assert_eq!(got, expected);
        } else {
            prop_assert_eq!(got, before);
        }
    }

    /// Whatever the scores, consumed items never appear, no item repeats, the answer
    /// has min(k, eligible) items, and the cap holds.
    #[test]
    fn answers_respect_exclusions_and_caps(
        scores in prop::collection::vec(-5.0f32..5.0, 8),
        consumed in prop::collection::btree_set(0u32..8, 0..5),
        k in 1usize..8,
        cap in prop::option::of(1usize..3),
    ) {
        let (ids, items) = catalog();
        let config = PlacementConfig { max_per_category: cap, in_stock: StockRule::Any, ..Default::default() };
        let live = LiveCatalog::of_items(ids.clone(), items.clone());
        let (placement, _) = Placement::compile("p", &config, &live).unwrap();
        let filters = Filters::default();
        let request =
            Request::new(k, 0, &filters);
        let consumed: Vec<(u32, i64)> = consumed.into_iter().map(|i| (i, 0)).collect();
        let eligibility = Eligibility::new(&placement, &live, request, &consumed, &[]).unwrap();
        let mut selection = Selection::new(&eligibility);
        selection.fill(&scores, Source::Personalized);
        let got: Vec<u32> = selection.finish().into_iter().map(|(s, _)| s.item.0).collect();
        prop_assert!(got.iter().all(|i| consumed.iter().all(|(c, _)| c != i)));
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), got.len());
        let per_category = |shoes: bool| (0..8u32).filter(|&i| (i < 4) == shoes && consumed.iter().all(|(c, _)| *c != i)).count();
        let reachable = [per_category(true), per_category(false)]
            .iter()
            .map(|&n| cap.map_or(n, |c| n.min(c)))
            .sum::<usize>();
        prop_assert_eq!(got.len(), k.min(reachable));
    }
}

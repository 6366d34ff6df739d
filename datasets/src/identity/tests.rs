//! Identity resolution: hand-worked cases for the rules and the graph.

use super::*;

#[test]
fn the_identity_table_overrides_named_kinds_and_keeps_the_rest() {
    let rules: IdentityRules =
        serde_json::from_str(r#"{"limits": {"email": 2, "cookie_id": 0}, "hot_max_anchors": 3}"#).unwrap();
    let limits = &rules.limits;
    assert_eq!(limits.get(IdentifierKind::Email), Some(2));
    assert_eq!(limits.get(IdentifierKind::CookieId), None);
    assert_eq!(limits.get(IdentifierKind::Phone), IdentityLimits::default().get(IdentifierKind::Phone));
    assert_eq!(rules.hot, HotGuard { max_anchors: 3, ..HotGuard::default() });
    assert_eq!(rules.placeholders, Placeholders::default());
    let round_trip: IdentityRules = serde_json::from_value(serde_json::to_value(&rules).unwrap()).unwrap();
    assert_eq!(round_trip, rules);
    let err = serde_json::from_str::<IdentityRules>(r#"{"limits": {"shoe_size": 1}}"#).unwrap_err();
    assert!(err.to_string().starts_with("unknown identifier kind `shoe_size`"), "{err}");
    let err = serde_json::from_str::<IdentityRules>(r#"{"placeholders": [" "]}"#).unwrap_err();
    assert!(err.to_string().contains("blank"), "{err}");
    // An artifact written before placeholders and the guard existed still reads.
    let old: IdentityRules = serde_json::from_str(r#"{"limits": {"email": 5}}"#).unwrap();
    assert_eq!(old, IdentityRules::default());
}

use crate::schema::{Channel, EventType};

fn event(ts: i64, ids: &[(IdentifierKind, &str)]) -> Event {
    Event {
        identifiers: ids.iter().map(|(kind, v)| Identifier::new(*kind, v).unwrap()).collect(),
        channel: Channel::Web,
        event_type: EventType::View,
        item_id: Some("i".into()),
        timestamp: ts,
        value: None,
        event_id: None,
    }
}

use IdentifierKind::{CookieId, DeviceId, Email, LoyaltyId, UserId};

#[test]
fn overlapping_identifiers_join_one_person() {
    let events = [
        event(1, &[(CookieId, "c1")]),
        event(2, &[(CookieId, "c1"), (UserId, "u1")]),
        event(3, &[(Email, "a@x.org"), (UserId, "u1")]),
        event(4, &[(LoyaltyId, "L1"), (Email, "a@x.org")]),
        event(5, &[(CookieId, "c2")]),
    ];
    let r = resolve(&events, &IdentityRules::default());
    assert_eq!(r.persons.len(), 2);
    assert_eq!(r.person_of_event[..4], [Some(0); 4]);
    assert_eq!(r.person_of_event[4], Some(1));
    // The person is named by its account id; the cookie-only person by its cookie.
    assert_eq!(r.persons.id(0), Some("u1"));
    assert_eq!(r.persons.id(1), Some("cookie_id:c2"));
    assert_eq!(r.aliases["loyalty_id:L1"], 0);
    assert_eq!(r.report.n_merges, 3);
    assert!(r.report.refused.is_empty());
}

#[test]
fn kiosk_device_does_not_glue_card_holders() {
    // A store kiosk scanned with three loyalty cards: the device is the bridge and is refused.
    let events = [
        event(1, &[(DeviceId, "kiosk"), (LoyaltyId, "A")]),
        event(2, &[(DeviceId, "kiosk"), (LoyaltyId, "B")]),
        event(3, &[(DeviceId, "kiosk"), (LoyaltyId, "C")]),
        event(4, &[(DeviceId, "kiosk")]),
    ];
    let r = resolve(&events, &IdentityRules::default());
    let people: std::collections::HashSet<u32> = r.person_of_event[..3].iter().map(|p| p.unwrap()).collect();
    assert_eq!(people.len(), 3, "each card holder stays a person of their own");
    assert_eq!(r.report.refused.len(), 1);
    assert_eq!(r.report.refused[0].identifier.key(), "device_id:kiosk");
    assert!(r.report.refused[0].reason.contains("loyalty_id"));
    // The anonymous kiosk event goes to a profile of the kiosk alone.
    let kiosk = r.person_of_event[3].unwrap();
    assert!(!people.contains(&kiosk));
    assert_eq!(r.persons.id(kiosk), Some("device_id:kiosk"));
    // The first card holder kept nothing of the kiosk from the first round.
    assert_eq!(r.aliases["device_id:kiosk"], kiosk);
    assert_eq!(r.report.rounds, 2);
}

#[test]
fn a_family_tablet_that_joined_two_persons_is_the_one_refused() {
    // The tablet joins Ann's and Bob's cookies before either logs in; their emails and cards
    // follow. Bob's card would give the joined person two cards: the tablet, linked with two
    // cookies, is what joined them, so it is refused, not Bob's email, and each keeps their
    // own cookie.
    let events = [
        event(1, &[(DeviceId, "tablet"), (CookieId, "c-ann")]),
        event(2, &[(DeviceId, "tablet"), (CookieId, "c-bob")]),
        event(3, &[(CookieId, "c-ann"), (Email, "ann@x.org")]),
        event(4, &[(CookieId, "c-bob"), (Email, "bob@x.org")]),
        event(5, &[(LoyaltyId, "L-ann"), (Email, "ann@x.org")]),
        event(6, &[(LoyaltyId, "L-bob"), (Email, "bob@x.org")]),
        event(7, &[(DeviceId, "tablet")]),
    ];
    let r = resolve(&events, &IdentityRules::default());
    let refused: Vec<String> = r.report.refused.iter().map(|x| x.identifier.key()).collect();
    assert_eq!(refused, ["device_id:tablet"], "{:?}", r.report.refused);
    let (ann, bob) = (r.person_of_event[4].unwrap(), r.person_of_event[5].unwrap());
    assert_ne!(ann, bob);
    assert_eq!(r.person_of_event[..6], [Some(ann), Some(bob), Some(ann), Some(bob), Some(ann), Some(bob)]);
    for (key, person) in [("cookie_id:c-ann", ann), ("cookie_id:c-bob", bob), ("loyalty_id:L-bob", bob)] {
        assert_eq!(r.aliases[key], person, "{key}");
    }
    // The tablet alone is a profile of its own.
    let tablet = r.person_of_event[6].unwrap();
    assert!(tablet != ann && tablet != bob);
    // An account holds its emails by right: past the limit the new email is refused, not
    // the account that links them all.
    let mut limits = IdentityLimits::default();
    limits.set(Email, Some(1)).unwrap();
    let events =
        [event(1, &[(UserId, "u1"), (Email, "a@x.org")]), event(2, &[(UserId, "u1"), (Email, "b@x.org")])];
    let r = resolve(&events, &IdentityRules::with_limits(limits));
    let refused: Vec<String> = r.report.refused.iter().map(|x| x.identifier.key()).collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0].starts_with("email:"), "{refused:?}");
}

#[test]
fn limit_on_emails_is_configurable() {
    let events: Vec<Event> =
        (0..4).map(|i| event(i, &[(UserId, "u1"), (Email, &format!("e{i}@x.org"))])).collect();
    let r = resolve(&events, &IdentityRules::default());
    assert!(r.report.refused.is_empty());
    let mut limits = IdentityLimits::default();
    limits.set(Email, Some(2)).unwrap();
    let r = resolve(&events, &IdentityRules::with_limits(limits.clone()));
    assert_eq!(r.report.refused.len(), 2);
    // The refused emails still arrive at the account's person through the anchor.
    assert!(r.person_of_event.iter().all(|&p| p == Some(0)));
    assert!(limits.set(Email, Some(0)).is_err());
}

#[test]
fn unlimited_merges_everything_connected() {
    let events =
        [event(1, &[(DeviceId, "tab"), (UserId, "a")]), event(2, &[(DeviceId, "tab"), (UserId, "b")])];
    let r = resolve(&events, &IdentityRules::permissive());
    assert_eq!(r.persons.len(), 1);
    let r = resolve(&events, &IdentityRules::default());
    assert_eq!(r.persons.len(), 2);
}

#[test]
fn pairwise_score_counts_pairs() {
    let events = [event(1, &[(UserId, "a"), (CookieId, "c1")]), event(2, &[(UserId, "b"), (CookieId, "c2")])];
    let r = resolve(&events, &IdentityRules::default());
    // Truth: c2 belongs to a, not b. Predicted pairs: (a,c1) right, (b,c2) wrong.
    // True pairs: (a,c1), (a,c2), (c1,c2): one of three found.
    let truth: HashMap<String, String> =
        [("user_id:a", "P"), ("cookie_id:c1", "P"), ("cookie_id:c2", "P"), ("user_id:b", "Q")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let score = score_pairwise(&r, &truth);
    assert_eq!(score.n_identifiers, 4);
    assert!((score.precision - 0.5).abs() < 1e-12);
    assert!((score.recall - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn placeholders_link_nobody_and_events_of_placeholders_only_belong_to_nobody() {
    let events = [
        event(1, &[(UserId, "undefined"), (CookieId, "c1")]),
        event(2, &[(UserId, "undefined"), (CookieId, "c2")]),
        event(3, &[(Email, "Test@Test.com"), (CookieId, "c3")]),
        event(4, &[(CookieId, "00000000-0000-0000-0000-000000000000")]),
        event(5, &[(UserId, "GUEST")]),
    ];
    let r = resolve(&events, &IdentityRules::default());
    // Three cookies, three persons: the shared "undefined" account and test address link nobody.
    assert_eq!(r.persons.len(), 3);
    assert_eq!(r.person_of_event[3..], [None, None]);
    assert_eq!(r.report.n_placeholder_events, 2);
    assert!(!r.aliases.contains_key("user_id:undefined"));
    // Without the list, the placeholder glues the first two cookies.
    let glued = resolve(&events, &IdentityRules::permissive());
    assert_eq!(glued.person_of_event[0], glued.person_of_event[1]);
    // Extra values from the settings.
    let rules: IdentityRules = serde_json::from_str(r#"{"placeholders": ["c3"]}"#).unwrap();
    assert!(rules.placeholders.contains(&Identifier::new(CookieId, "C3").unwrap()));
    assert!(rules.placeholders.contains(&Identifier::new(UserId, "undefined").unwrap()));
    assert!(!rules.placeholders.contains(&Identifier::new(UserId, "u10").unwrap()));
    assert!(rules.placeholders.contains(&Identifier::new(IdentifierKind::Phone, "123-456-7890").unwrap()));
}

#[test]
fn a_hot_identifier_is_refused_like_a_broken_limit() {
    // One cookie in a shop's demo browser, signed into by five accounts' emails in an hour:
    // within the email limit of five, but hot for a guard of three persons a day.
    let mut rules = IdentityRules::default();
    rules.hot.max_anchors = 3;
    let events: Vec<Event> =
        (0..5).map(|i| event(i * 60, &[(Email, &format!("p{i}@x.org")), (CookieId, "demo")])).collect();
    let r = resolve(&events, &rules);
    assert_eq!(r.persons.len(), 5, "every email stays its own person");
    assert_eq!(r.report.refused.len(), 1);
    assert_eq!(r.report.refused[0].identifier.key(), "cookie_id:demo");
    assert!(
        r.report.refused[0].reason.contains("more than 3 persons within 24 hours"),
        "{:?}",
        r.report.refused
    );
    // Spread over weeks, the same sightings are a cookie that changed hands slowly: the
    // limit of five emails decides instead.
    let slow: Vec<Event> = (0..5)
        .map(|i| event(i * 3 * 86_400, &[(Email, &format!("p{i}@x.org")), (CookieId, "demo")]))
        .collect();
    assert_eq!(resolve(&slow, &rules).persons.len(), 1);
    // The guard off.
    rules.hot.max_anchors = 0;
    assert_eq!(resolve(&events, &rules).persons.len(), 1);
}

#[test]
fn a_separation_splits_a_person_when_its_records_are_replayed() {
    let mut graph = IdentityGraph::new(IdentityRules::default());
    let id = |kind, v: &str| Identifier::new(kind, v).unwrap();
    let records = [
        vec![id(CookieId, "c1")],
        vec![id(Email, "a@x.org"), id(CookieId, "c1")],
        vec![id(Email, "a@x.org"), id(LoyaltyId, "L1")],
        vec![id(CookieId, "c1"), id(DeviceId, "d1")],
    ];
    let nodes: Vec<Vec<u32>> = records.iter().map(|r| graph.intern_all(r)).collect();
    for (at, n) in nodes.iter().enumerate() {
        graph.link_nodes(n, at as i64);
    }
    let root = graph.find(graph.node(&id(CookieId, "c1")).unwrap());
    assert_eq!(graph.members(root).len(), 4);
    assert_eq!(graph.best(root), &id(LoyaltyId, "L1"));
    // Unlink the cookie from the email: the login that joined them no longer does.
    let (c1, email) = (graph.node(&id(CookieId, "c1")).unwrap(), graph.node(&id(Email, "a@x.org")).unwrap());
    graph.separate(c1, email);
    let scope = graph.members(root).to_vec();
    let replayed: Vec<(&[u32], i64)> =
        nodes.iter().enumerate().map(|(at, n)| (n.as_slice(), at as i64)).collect();
    graph.replay(&scope, &replayed);
    let (cookie_side, email_side) = (graph.find(c1), graph.find(email));
    assert_ne!(cookie_side, email_side);
    let names = |root| {
        let mut keys: Vec<String> = graph.members(root).iter().map(|&n| graph.identifier(n).key()).collect();
        keys.sort();
        keys
    };
    assert_eq!(names(cookie_side), ["cookie_id:c1", "device_id:d1"]);
    assert_eq!(names(email_side).len(), 2);
    // A later login with both is refused as unlinked, and says so.
    let outcome = graph.link(&[id(Email, "a@x.org"), id(CookieId, "c1")], 9);
    assert_eq!(outcome.merged, 0);
    assert_eq!(outcome.refused[0].kind, RefusalKind::Separated);
    assert_eq!(outcome.anchor, Some(id(Email, "a@x.org")));
    // The separation refuses the link, not the cookie: it still links what is its own.
    assert_eq!(graph.link(&[id(CookieId, "c1"), id(CookieId, "c9")], 10).merged, 1);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Linking events one by one as they arrive gives the batch resolution's persons whenever
    /// no identifier is refused (refusals make the batch rebuild, which the live graph does per
    /// person instead).
    #[test]
    fn incremental_links_agree_with_batch_resolution(
        raw in proptest::collection::vec(proptest::collection::vec((0usize..4, 0u8..6), 1..4), 1..40),
    ) {
        let kinds = [UserId, Email, DeviceId, CookieId];
        let events: Vec<Event> = raw
            .iter()
            .enumerate()
            .map(|(t, ids)| {
                let ids: Vec<(IdentifierKind, String)> = ids.iter().map(|&(k, v)| (kinds[k], format!("v{v}"))).collect();
                let refs: Vec<(IdentifierKind, &str)> = ids.iter().map(|(k, v)| (*k, v.as_str())).collect();
                event(t as i64, &refs)
            })
            .collect();
        let rules = IdentityRules::permissive();
        let batch = resolve(&events, &rules);
        let mut graph = IdentityGraph::new(rules);
        for e in &events {
            graph.link(&e.identifiers, e.timestamp);
        }
        for e in &events {
            for f in &events {
                let same_batch = batch.aliases[&e.identifiers[0].key()] == batch.aliases[&f.identifiers[0].key()];
                let root = |x: &Event| graph.find(graph.node(&x.identifiers[0]).unwrap());
                proptest::prop_assert_eq!(same_batch, root(e) == root(f));
            }
        }
    }
}

#[test]
fn explicit_links_and_unlinks_are_replayed_with_the_events() {
    let events = [
        event(1, &[(CookieId, "c1"), (Email, "a@x.org")]),
        event(2, &[(UserId, "u1")]),
        event(3, &[(UserId, "u2")]),
    ];
    let id = |kind, v: &str| Identifier::new(kind, v).unwrap();
    let decisions = Decisions {
        links: vec![(id(UserId, "u1"), id(Email, "a@x.org"), 5)],
        separations: vec![(id(CookieId, "c1"), id(Email, "a@x.org"))],
    };
    let r = resolve_with(&events, &IdentityRules::default(), &decisions);
    // The login no longer joins the cookie; the explicit link joins the account and the email.
    assert_eq!(r.aliases[&id(Email, "a@x.org").key()], r.aliases["user_id:u1"]);
    // The cookie's only event belongs to the email's person, so the cookie names nobody.
    assert_eq!(r.aliases.get("cookie_id:c1"), None);
    assert_ne!(r.aliases["user_id:u2"], r.aliases["user_id:u1"]);
}

//! The store end to end: ingestion, identity, consent, erasure, catalog, impressions,
//! export, and a storage backend that watches every sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datasets::schema::IdentifierKind::{CookieId, DeviceId, Email, LoyaltyId, UserId};
use datasets::schema::{Channel, Event, EventType, Identifier, IdentifierKind};

use super::*;

fn id(kind: IdentifierKind, value: &str) -> Identifier {
    Identifier::new(kind, value).unwrap()
}

fn event(
    event_id: &str,
    ids: &[&Identifier],
    channel: &str,
    kind: &str,
    item: Option<&str>,
    ts: i64,
) -> NewEvent {
    NewEvent {
        event: Event {
            identifiers: ids.iter().map(|i| (*i).clone()).collect(),
            channel: Channel::parse(channel),
            event_type: EventType::parse(kind),
            item_id: item.map(str::to_string),
            timestamp: ts,
            value: None,
            event_id: Some(event_id.to_string()),
        },
        recommendation_id: None,
        store_id: None,
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

const ALL: PersonQuery = PersonQuery { after_seq: 0, shown_since: None };

fn items_of(person: &LivePerson) -> Vec<String> {
    person.recent.iter().filter_map(|e| e.item_id.clone()).collect()
}

fn consumed(person: &LivePerson) -> Vec<(String, i32)> {
    person
        .consumed
        .iter()
        .map(|(item, entries)| (item.clone(), entries.iter().map(|e| i32::from(e.sign)).sum()))
        .collect()
}

#[test]
fn events_are_stored_once_for_ever_and_a_changed_repeat_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let cookie = id(CookieId, "c1");
    let store = open(dir.path());
    let answers = store
        .ingest(
            vec![
                event("a", &[&cookie], "web", "view", Some("i1"), 10),
                event("b", &[&cookie], "web", "view", Some("i2"), 11),
                event("a", &[&cookie], "web", "view", Some("i1"), 10),
            ],
            100,
        )
        .unwrap();
    assert!(matches!(&answers[0], Ingested::Accepted { seq: 1, anchor, .. } if anchor == "cookie_id:c1"));
    assert!(matches!(answers[1], Ingested::Accepted { seq: 2, .. }));
    assert!(matches!(answers[2], Ingested::Duplicate { seq: 1, .. }));
    drop(store);
    // After a restart: the same id with the same content is a duplicate, with other content a
    // conflict; neither changes anything.
    let store = open(dir.path());
    let answers = store
        .ingest(
            vec![
                event("a", &[&cookie], "web", "view", Some("i1"), 10),
                event("b", &[&cookie], "web", "view", Some("i9"), 11),
                event("c", &[&cookie], "web", "view", Some("i3"), 12),
            ],
            200,
        )
        .unwrap();
    assert!(matches!(answers[0], Ingested::Duplicate { seq: 1, .. }));
    assert!(matches!(answers[1], Ingested::Conflict { seq: 2, .. }));
    assert!(matches!(answers[2], Ingested::Accepted { seq: 3, .. }));
    assert_eq!(items_of(&store.person(&[cookie], ALL).unwrap()), ["i1", "i2", "i3"]);
}

#[test]
fn placeholders_alone_are_refused_and_never_link_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (guest, c1, c2) = (id(UserId, "guest"), id(CookieId, "c1"), id(CookieId, "c2"));
    let answers = store
        .ingest(
            vec![
                event("1", &[&guest], "web", "view", Some("i1"), 1),
                event("2", &[&guest, &c1], "web", "view", Some("i1"), 2),
                event("3", &[&guest, &c2], "web", "view", Some("i2"), 3),
            ],
            10,
        )
        .unwrap();
    match &answers[0] {
        Ingested::Rejected { field, reason, .. } => {
            assert_eq!(field, "identifiers.user_id");
            assert!(reason.contains("placeholder"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(answers[1], Ingested::Accepted { .. }) && matches!(answers[2], Ingested::Accepted { .. })
    );
    let first = store.person(std::slice::from_ref(&c1), ALL).unwrap();
    assert_eq!(first.ids.as_ref().unwrap().identifiers, [c1]);
    assert_eq!(items_of(&first), ["i1"]);
}

#[test]
fn a_login_and_a_till_receipt_make_one_person_across_channels() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (cookie, email, card) = (id(CookieId, "c1"), id(Email, "ann@example.com"), id(LoyaltyId, "L1"));
    let (kiosk, other_card) = (id(DeviceId, "kiosk"), id(LoyaltyId, "L2"));
    store
        .ingest(
            vec![
                event("1", &[&cookie], "web", "view", Some("shoe"), 10),
                event("2", &[&cookie, &email], "web", "login", None, 20),
                event("3", &[&card, &email], "store", "purchase", Some("shoe"), 30),
                event("4", &[&kiosk, &card], "store", "view", Some("hat"), 40),
                event("5", &[&kiosk, &other_card], "store", "purchase", Some("bag"), 50),
            ],
            60,
        )
        .unwrap();
    // Asked by email on the email channel: the web views and the store purchase are hers.
    let ann = store.person(std::slice::from_ref(&email), ALL).unwrap();
    let ids = ann.ids.clone().unwrap();
    assert_eq!(ids.key, "loyalty_id:L1");
    assert!(ids.identifiers.contains(&cookie) && !ids.identifiers.contains(&other_card));
    assert_eq!(items_of(&ann), ["shoe", "shoe", "hat"]);
    assert_eq!(consumed(&ann), [("shoe".to_string(), 1)]);
    // The kiosk is refused as a bridge: the other card's purchase is not hers.
    let other = store.person(&[other_card], ALL).unwrap();
    assert_eq!(consumed(&other), [("bag".to_string(), 1)]);
    assert!(!other.ids.unwrap().identifiers.contains(&card));
    // A return brings the item back.
    store.ingest(vec![event("6", &[&email], "email", "return", Some("shoe"), 70)], 80).unwrap();
    assert_eq!(
        consumed(&store.person(std::slice::from_ref(&cookie), ALL).unwrap()),
        [("shoe".to_string(), 0)]
    );
    // Only what came after a watermark: the model knows the rest.
    let after = store.person(&[cookie], PersonQuery { after_seq: 3, shown_since: None }).unwrap();
    assert_eq!(items_of(&after), ["hat", "shoe"]);
    assert_eq!(consumed(&after), [("shoe".to_string(), -1)]);
}

#[test]
fn a_refused_card_named_beside_the_account_brings_its_purchases_a_refused_kiosk_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (user, card, second, kiosk) =
        (id(UserId, "u1"), id(LoyaltyId, "L1"), id(LoyaltyId, "L2"), id(DeviceId, "kiosk"));
    let stranger = id(LoyaltyId, "L9");
    store
        .ingest(
            vec![
                event("1", &[&user, &card], "store", "view", Some("hat"), 10),
                // A second card: over the one-card limit, refused for merging.
                event("2", &[&user, &second], "store", "view", Some("hat"), 20),
                event("3", &[&second], "store", "purchase", Some("bag"), 30),
                // A kiosk two card holders used: refused as a bridge.
                event("4", &[&kiosk, &card], "store", "view", Some("hat"), 40),
                event("5", &[&kiosk, &stranger], "store", "view", Some("coat"), 50),
                event("6", &[&kiosk], "store", "purchase", Some("coat"), 55),
            ],
            60,
        )
        .unwrap();
    let person = store.person(std::slice::from_ref(&user), ALL).unwrap();
    assert!(!person.ids.as_ref().unwrap().identifiers.contains(&second), "the second card is refused");
    let named = store.person(&[user.clone(), second.clone()], ALL).unwrap();
    let theirs: Vec<&String> = named.also_consumed.iter().flatten().map(|(item, _)| item).collect();
    assert_eq!(theirs, ["bag"], "{named:?}");
    // The kiosk named beside the account brings nobody's purchases (what was bought through
    // it alone is filed under it).
    assert_eq!(
        consumed(&store.person(std::slice::from_ref(&kiosk), ALL).unwrap()),
        [("coat".to_string(), 1)]
    );
    let at_kiosk = store.person(&[user, kiosk.clone()], ALL).unwrap();
    assert!(at_kiosk.also_consumed.iter().flatten().all(|(item, _)| item != "coat"), "{at_kiosk:?}");
    // Beside a cookie the graph does not know, neither the kiosk nor the card refused by the
    // limit answers: the cookie does, as an event naming them would be filed under it.
    let new_cookie = id(CookieId, "c-new");
    let first = |asked: &[Identifier]| store.person_ids(asked).unwrap().identifiers[0].clone();
    assert_eq!(first(&[second.clone(), new_cookie.clone()]), new_cookie);
    assert_eq!(first(&[kiosk, new_cookie.clone()]), new_cookie);
}

#[test]
fn a_purchase_filed_under_a_tablet_refused_later_goes_to_the_person_of_its_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let (user, card, cookie, tablet, stranger) = (
        id(UserId, "ann"),
        id(LoyaltyId, "L1"),
        id(CookieId, "c-ann"),
        id(DeviceId, "tablet"),
        id(LoyaltyId, "L9"),
    );
    {
        let store = open(dir.path());
        store
            .ingest(
                vec![
                    event("1", &[&user, &card], "store", "view", Some("hat"), 10),
                    event("2", &[&user, &cookie], "web", "view", Some("hat"), 11),
                    // Bought on the family tablet, logged in by cookie: filed under the tablet.
                    event("3", &[&tablet, &cookie], "app", "purchase", Some("kettle"), 20),
                ],
                21,
            )
            .unwrap();
        assert_eq!(
            consumed(&store.person(std::slice::from_ref(&user), ALL).unwrap()),
            [("kettle".into(), 1)]
        );
        // Someone else's card on the tablet: a second card for one person, the tablet refused.
        store.ingest(vec![event("4", &[&tablet, &stranger], "app", "view", Some("coat"), 30)], 31).unwrap();
        let ann = store.person(std::slice::from_ref(&user), ALL).unwrap();
        assert!(!ann.ids.as_ref().unwrap().identifiers.contains(&tablet), "{ann:?}");
        assert_eq!(consumed(&ann), [("kettle".into(), 1)], "the purchase is still Ann's");
        assert!(consumed(&store.person(std::slice::from_ref(&tablet), ALL).unwrap()).is_empty());
    }
    // Filed again for good: the same after a restart.
    let store = open(dir.path());
    assert_eq!(consumed(&store.person(std::slice::from_ref(&user), ALL).unwrap()), [("kettle".into(), 1)]);
    // A purchase whose own event gets the tablet refused (now seen with two persons'
    // cookies) is filed under the cookie at once.
    let (bob, bob_card, bob_cookie) = (id(UserId, "bob"), id(LoyaltyId, "B1"), id(CookieId, "c-bob"));
    let (other_tablet, other_card, other_cookie) =
        (id(DeviceId, "tablet-2"), id(LoyaltyId, "B2"), id(CookieId, "c-other"));
    store
        .ingest(
            vec![
                event("5", &[&bob, &bob_card], "store", "view", Some("hat"), 40),
                event("6", &[&bob, &bob_cookie], "web", "view", Some("hat"), 41),
                event("7", &[&other_card, &other_cookie], "web", "view", Some("hat"), 42),
                event("8", &[&other_tablet, &other_cookie], "app", "view", Some("hat"), 43),
                event("9", &[&other_tablet, &bob_cookie], "app", "purchase", Some("lamp"), 44),
            ],
            45,
        )
        .unwrap();
    let bob_now = store.person(std::slice::from_ref(&bob), ALL).unwrap();
    assert!(!bob_now.ids.as_ref().unwrap().identifiers.contains(&other_tablet), "{bob_now:?}");
    assert_eq!(consumed(&bob_now), [("lamp".into(), 1)]);
}

#[test]
fn an_identifier_first_seen_alone_is_known_after_a_restart_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (till, email, cookie, user) =
        (id(LoyaltyId, "L-new"), id(Email, "new@example.com"), id(CookieId, "c1"), id(UserId, "u1"));
    let device = id(DeviceId, "d-alone");
    let whose = |store: &Store, asked: &[Identifier]| {
        let ids = store.person_ids(asked).unwrap();
        (ids.known, ids.identifiers)
    };
    let before = {
        let store = open(dir.path());
        store.ingest(vec![event("1", &[&till], "store", "purchase", Some("i1"), 10)], 11).unwrap();
        store.set_consent(email.clone(), [(PERSONALIZATION.to_string(), false)].into(), "crm", 12).unwrap();
        store.ingest(vec![event("2", &[&user, &cookie], "web", "view", Some("i2"), 13)], 14).unwrap();
        // A device seen alone is anonymous: not taken in, before a restart as after. Its
        // consent change makes it known, for good.
        store.ingest(vec![event("3", &[&device], "app", "view", Some("i3"), 15)], 16).unwrap();
        assert_eq!(
            whose(&store, &[device.clone(), cookie.clone()]),
            (true, vec![user.clone(), cookie.clone()])
        );
        store.set_consent(device.clone(), [(PERSONALIZATION.to_string(), false)].into(), "app", 17).unwrap();
        let before = [
            whose(&store, &[till.clone(), cookie.clone()]),
            whose(&store, &[email.clone(), cookie.clone()]),
            whose(&store, &[device.clone(), cookie.clone()]),
        ];
        assert_eq!(before[0], (true, vec![till.clone()]));
        assert_eq!(before[1], (true, vec![email.clone()]));
        assert_eq!(before[2], (true, vec![device.clone()]));
        before
    };
    let store = open(dir.path());
    let after = [
        whose(&store, &[till.clone(), cookie.clone()]),
        whose(&store, &[email.clone(), cookie.clone()]),
        whose(&store, &[device, cookie]),
    ];
    assert_eq!(after, before);
    // Not part of anyone's provenance: the entry only makes them known.
    assert!(store.provenance(&store.person_ids(&[till]).unwrap()).unwrap().is_empty());
}

#[test]
fn the_model_s_persons_seed_the_graph_and_an_unlink_gives_each_side_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (user, phone) = (id(UserId, "u1"), id(IdentifierKind::Phone, "+44 1234 5678"));
    let seed = Seed { groups: vec![vec![user.clone(), phone.clone()]], ..Seed::default() };
    store.reseed(seed.clone(), IdentityRules::default(), WeightConfig::default()).unwrap();
    // The call centre's event is under the phone; the person is the trained account's.
    store.ingest(vec![event("1", &[&phone], "call_center", "purchase", Some("kettle"), 10)], 11).unwrap();
    assert_eq!(
        consumed(&store.person(std::slice::from_ref(&user), ALL).unwrap()),
        [("kettle".to_string(), 1)]
    );
    // A cookie logs in with the account, then buys on the web.
    let cookie = id(CookieId, "c9");
    store
        .ingest(
            vec![
                event("2", &[&user, &cookie], "web", "login", None, 20),
                event("3", &[&cookie], "web", "purchase", Some("mug"), 21),
            ],
            22,
        )
        .unwrap();
    assert_eq!(consumed(&store.person(std::slice::from_ref(&phone), ALL).unwrap()).len(), 2);
    // A wrong merge undone: the cookie's purchase goes back to the cookie, the phone's stays.
    let unlinked = store.unlink(user.clone(), cookie.clone(), "ops", 30).unwrap();
    assert!(unlinked.were_linked && unlinked.seq.is_some());
    assert_eq!(
        consumed(&store.person(std::slice::from_ref(&user), ALL).unwrap()),
        [("kettle".to_string(), 1)]
    );
    assert_eq!(
        consumed(&store.person(std::slice::from_ref(&cookie), ALL).unwrap()),
        [("mug".to_string(), 1)]
    );
    // Unlinking what is not linked changes nothing.
    assert!(!store.unlink(user.clone(), cookie.clone(), "ops", 31).unwrap().were_linked);
    // An explicit link joins them again? No: the unlink holds, and says so.
    let link = store.link(user.clone(), cookie.clone(), "ops", 32).unwrap();
    assert_eq!(link.merged, 0);
    assert_eq!(link.refused[0].kind, datasets::identity::RefusalKind::Separated);
    // After a restart the same persons come back from the log.
    drop(store);
    let store = open(dir.path());
    store.reseed(seed, IdentityRules::default(), WeightConfig::default()).unwrap();
    assert_eq!(
        consumed(&store.person(std::slice::from_ref(&cookie), ALL).unwrap()),
        [("mug".to_string(), 1)]
    );
    let person = store.person_ids(&[phone]).unwrap();
    assert_eq!(person.identifiers, [user, id(IdentifierKind::Phone, "+44 1234 5678")]);
    // The provenance of the cookie: its login, the unlink, the refused link.
    let provenance = store.provenance(&store.person_ids(&[cookie]).unwrap()).unwrap();
    let kinds: Vec<&str> = provenance.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["event", "unlink", "link"]);
    assert_eq!(provenance[0].event_id, "2");
    assert_eq!(provenance[1].source, "ops");
}

#[test]
fn catalog_changes_merge_into_the_item_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let base = datasets::schema::Item {
        item_id: "i1".into(),
        title: "Kettle".into(),
        price: Some(30.0),
        in_stock: true,
        ..Default::default()
    };
    let patch = |json: &str| match serde_json::from_str::<Value>(json).unwrap() {
        Value::Object(map) => map,
        _ => unreachable!(),
    };
    let outcomes = store
        .change_items(
            vec![
                ItemChange::Upsert {
                    item_id: "i1".into(),
                    base: Some(Box::new(base.clone())),
                    patch: patch(r#"{"in_stock": false}"#),
                },
                ItemChange::Upsert {
                    item_id: "new".into(),
                    base: None,
                    patch: patch(r#"{"title": "Teapot", "categories": ["home>kitchen"]}"#),
                },
                ItemChange::Upsert {
                    item_id: "bad".into(),
                    base: None,
                    patch: patch(r#"{"price": "free"}"#),
                },
                ItemChange::Delete { item_id: "ghost".into(), in_model: false },
            ],
            5,
        )
        .unwrap();
    assert_eq!(outcomes[..2], [ItemOutcome::Updated, ItemOutcome::Created]);
    assert!(matches!(&outcomes[2], ItemOutcome::Rejected { field, .. } if field == "price"));
    assert_eq!(outcomes[3], ItemOutcome::NotFound);
    // A second change builds on the first, not on the model's entry.
    store
        .change_items(
            vec![ItemChange::Upsert {
                item_id: "i1".into(),
                base: Some(Box::new(base)),
                patch: patch(r#"{"price": 25}"#),
            }],
            6,
        )
        .unwrap();
    assert_eq!(
        store.change_items(vec![ItemChange::Delete { item_id: "new".into(), in_model: false }], 7).unwrap(),
        [ItemOutcome::Deleted]
    );
    drop(store);
    let store = open(dir.path());
    let changes = store.item_changes().unwrap();
    let i1 = changes.iter().find(|c| c.item_id == "i1").unwrap().item.clone().unwrap();
    assert_eq!((i1.title.as_str(), i1.price, i1.in_stock), ("Kettle", Some(25.0), false));
    assert!(changes.iter().find(|c| c.item_id == "new").unwrap().item.is_none());
    assert!(!changes.iter().any(|c| c.item_id == "bad"));
}

#[test]
fn a_request_reads_the_newest_impressions_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cookie = id(CookieId, "c1");
    store.ingest(vec![event("1", &[&cookie], "web", "view", Some("i1"), 1)], 2).unwrap();
    for n in 0..MAX_SHOWN as i64 + 5 {
        let shown = Impression {
            id: format!("r{n}"),
            person: cookie.key(),
            channel: "web".into(),
            placement: None,
            items: vec![format!("i{n}")],
            at: 100 + n,
        };
        store.record_served(shown, None);
    }
    // A commit writes what waits in memory.
    store.ingest(vec![event("2", &[&cookie], "web", "view", Some("i1"), 3)], 4).unwrap();
    let query = PersonQuery { after_seq: 0, shown_since: Some(0) };
    let shown = store.person(std::slice::from_ref(&cookie), query).unwrap().shown;
    assert_eq!(shown.len(), MAX_SHOWN);
    assert_eq!((shown[0].at, shown[MAX_SHOWN - 1].at), (105, 100 + MAX_SHOWN as i64 + 4));
}

#[test]
fn what_was_served_is_seen_at_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let cookie = id(CookieId, "c1");
    store.ingest(vec![event("1", &[&cookie], "web", "view", Some("i1"), 1)], 2).unwrap();
    let shown = |store: &Store| {
        let person = store
            .person(std::slice::from_ref(&cookie), PersonQuery { after_seq: 0, shown_since: Some(100) })
            .unwrap();
        person.shown.iter().flat_map(|s| s.items.clone()).collect::<Vec<String>>()
    };
    store.record_served(
        Impression {
            id: "r1".into(),
            person: "cookie_id:c1".into(),
            channel: "web".into(),
            placement: Some("home".into()),
            items: vec!["a".into(), "b".into()],
            at: 100,
        },
        None,
    );
    assert_eq!(shown(&store), ["a", "b"]);
    // An impression event reported by a channel counts as well.
    store.ingest(vec![event("2", &[&cookie], "app", IMPRESSION_EVENT, Some("c"), 101)], 102).unwrap();
    assert_eq!(shown(&store), ["a", "b", "c"]);
    drop(store);
    let store = open(dir.path());
    assert_eq!(shown(&store), ["a", "b", "c"]);
    assert_eq!(store.served("r1").unwrap().unwrap().placement.as_deref(), Some("home"));
}

#[test]
fn an_export_holds_consented_events_with_live_person_ids_and_the_suppression_list() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (cookie, email, shy, gone) =
        (id(CookieId, "c1"), id(Email, "a@x.org"), id(CookieId, "shy"), id(CookieId, "gone"));
    store
        .ingest(
            vec![
                // 1970-08-21: as an epoch number its 8 digits read as the date 2000-01-01,
                // which the trainer refuses.
                event("1", &[&cookie], "web", "view", Some("i1"), 20_000_101),
                event("2", &[&cookie, &email], "web", "login", None, 11),
                event("3", &[&shy], "web", "view", Some("i2"), 12),
                event("4", &[&gone], "web", "view", Some("i3"), 13),
                event("5", &[&cookie], "app", IMPRESSION_EVENT, Some("i1"), 14),
                event("6", &[&shy], "store", "purchase", Some("i2"), 14),
            ],
            15,
        )
        .unwrap();
    store.set_consent(shy.clone(), [(PERSONALIZATION.to_string(), false)].into(), "crm", 16).unwrap();
    store.link(id(UserId, "u1"), email.clone(), "crm", 17).unwrap();
    // A link the identity rules refuse (one person, two loyalty cards) joins nothing, and the
    // export does not hand it to training.
    let refused = store.link(id(LoyaltyId, "L8"), id(LoyaltyId, "L9"), "crm", 17).unwrap();
    assert!(!refused.refused.is_empty(), "{refused:?}");
    store.erase(gone.clone(), Vec::new(), "privacy", 18).unwrap();
    // A person known from the model's data alone withholds personalisation: their only
    // events here are the consent change, and they are on the suppression list all the same.
    let (member, card) = (id(UserId, "u7"), id(LoyaltyId, "L7"));
    let seed = Seed { groups: vec![vec![member.clone(), card.clone()]], ..Seed::default() };
    store.reseed(seed, IdentityRules::default(), WeightConfig::default()).unwrap();
    store.set_consent(card.clone(), [(PERSONALIZATION.to_string(), false)].into(), "crm", 19).unwrap();
    let catalog = [datasets::schema::Item {
        item_id: "i1".into(),
        title: "Kettle".into(),
        in_stock: true,
        ..Default::default()
    }];
    let manifest = store.export(out.path(), &catalog, &[], 20).unwrap();
    assert_eq!((manifest.events, manifest.persons, manifest.withheld_events, manifest.items), (2, 1, 2, 1));
    // The withholding person's purchase is kept apart, never among the events.
    assert_eq!(manifest.withheld_purchases, 1);
    let kept = std::fs::read_to_string(out.path().join("withheld.jsonl")).unwrap();
    let (kept, _) =
        datasets::load::read_events(kept.as_bytes(), "withheld.jsonl", &Default::default()).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].item_id.as_deref(), kept[0].identifiers.as_slice()),
        (Some("i2"), std::slice::from_ref(&shy))
    );
    assert_eq!(manifest.watermark, store.next_seq().unwrap());
    assert_eq!(manifest.links.len(), 1);
    let reasons: Vec<&str> = manifest.suppressed.iter().map(|s| s.reason.as_str()).collect();
    assert!(reasons.contains(&"erased") && reasons.contains(&"no_consent"));
    assert!(manifest.suppressed.iter().any(|s| s.hash == record::suppression_hash(&gone.key())));
    let member_hash = record::suppression_hash(&member.key());
    assert!(manifest.suppressed.iter().any(|s| s.hash == member_hash && s.reason == "no_consent"));
    // Their identifiers as the graph joins them, so the next model starts them joined (the
    // cookie alone is no group).
    let mut joined = manifest.withheld_persons.clone();
    joined.iter_mut().for_each(|group| group.sort());
    assert_eq!(joined, [vec![card.key(), member.key()]]);
    // The trainer's own loader reads the events, each with the live person id.
    let text = std::fs::read_to_string(out.path().join("events.jsonl")).unwrap();
    let (events, _) =
        datasets::load::read_events(text.as_bytes(), "events.jsonl", &Default::default()).unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().any(|e| e.timestamp == 20_000_101), "{events:?}");
    assert!(
        text.lines().all(|l| l.contains(r#""person_id":"user_id:u1""#) || l.contains(r#""person_id":"u1""#)),
        "{text}"
    );
    let (items, _) = datasets::load::read_catalog(
        std::fs::read_to_string(out.path().join("items.jsonl")).unwrap().as_bytes(),
        "items.jsonl",
        datasets::load::CatalogFormat::JsonLines,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(items.items, catalog);
    let read: ExportManifest =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(ExportManifest::FILE_NAME)).unwrap())
            .unwrap();
    assert_eq!(read, manifest);
}

mod durability;
mod lab;
mod privacy;

//! Consent and erasure in the store: what a person's choices and their erasure leave behind.

use super::*;

#[test]
fn consent_is_the_most_restrictive_of_a_person_s_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (cookie, email) = (id(CookieId, "c1"), id(Email, "a@x.org"));
    store.ingest(vec![event("1", &[&cookie], "web", "view", Some("i1"), 1)], 2).unwrap();
    assert!(store.person(std::slice::from_ref(&cookie), ALL).unwrap().allows(PERSONALIZATION));
    let set =
        store.set_consent(email.clone(), [(PERSONALIZATION.to_string(), false)].into(), "crm", 3).unwrap();
    assert_eq!(set.get(PERSONALIZATION), Some(&false));
    assert!(
        store.person(std::slice::from_ref(&cookie), ALL).unwrap().allows(PERSONALIZATION),
        "not linked yet"
    );
    // The login joins the cookie to a person who said no: the person says no everywhere.
    store.ingest(vec![event("2", &[&cookie, &email], "web", "login", None, 4)], 5).unwrap();
    let person = store.person(std::slice::from_ref(&cookie), ALL).unwrap();
    assert!(!person.allows(PERSONALIZATION) && person.allows(ANALYTICS));
    // Given again, for the whole person.
    store.set_consent(cookie.clone(), [(PERSONALIZATION.to_string(), true)].into(), "crm", 6).unwrap();
    assert!(store.person(&[email], ALL).unwrap().allows(PERSONALIZATION));
    // Each change is an event: the audit trail.
    let ids = store.person_ids(&[cookie]).unwrap();
    let (_, events) = store.person_events(&ids, 0, 100).unwrap();
    let changes: Vec<Option<bool>> = events
        .iter()
        .filter(|e| e.event_type == "consent")
        .map(|e| e.consent.as_ref().unwrap().get(PERSONALIZATION).copied())
        .collect();
    assert_eq!(changes, [Some(false), Some(true)]);
}

#[test]
fn a_person_who_withholds_personalisation_keeps_every_purchase_of_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let card = id(LoyaltyId, "L1");
    store.ingest(vec![event("1", &[&card], "store", "purchase", Some("i5"), 10)], 11).unwrap();
    // A model trained on an export after the purchase: only what comes after it counts.
    let after = PersonQuery { after_seq: store.next_seq().unwrap(), shown_since: None };
    assert!(consumed(&store.person(std::slice::from_ref(&card), after).unwrap()).is_empty());
    // Once the person withholds personalisation, exports leave them out and a model trained
    // on one never learned the purchase: the whole ledger counts.
    store.set_consent(card.clone(), [(PERSONALIZATION.to_string(), false)].into(), "crm", 12).unwrap();
    let withheld = store.person(std::slice::from_ref(&card), after).unwrap();
    assert_eq!(consumed(&withheld), [("i5".to_string(), 1)]);
}

#[test]
fn erasure_deletes_rows_and_refuses_the_person_s_past() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (cookie, email, kiosk) = (id(CookieId, "c1"), id(Email, "gone@x.org"), id(DeviceId, "k1"));
    let (trained, other, third) = (id(UserId, "u7"), id(LoyaltyId, "L9"), id(LoyaltyId, "L8"));
    store
        .reseed(
            Seed { groups: vec![vec![trained.clone(), email.clone()]], ..Seed::default() },
            IdentityRules::default(),
            WeightConfig::default(),
        )
        .unwrap();
    store
        .ingest(
            vec![
                event("1", &[&cookie, &email], "web", "purchase", Some("i1"), 10),
                event("2", &[&other, &kiosk], "store", "view", Some("i2"), 11),
                // A second card makes the kiosk a refused bridge: a person of its own.
                event("2b", &[&third, &kiosk], "store", "view", Some("i2"), 11),
                event("3", &[&cookie, &kiosk], "store", "view", Some("i3"), 12),
            ],
            13,
        )
        .unwrap();
    store.set_consent(email.clone(), [(ANALYTICS.to_string(), false)].into(), "crm", 14).unwrap();
    store.record_served(
        Impression {
            id: "r1".into(),
            person: "user_id:u7".into(),
            channel: "email".into(),
            placement: Some("email_weekly".into()),
            items: vec!["i4".into()],
            at: 15,
        },
        None,
    );
    let receipt = store.erase(email.clone(), Vec::new(), "privacy", 20).unwrap().unwrap();
    assert_eq!(receipt.person, "u7");
    assert_eq!(receipt.identifiers, 3, "the account, the email and the cookie");
    assert_eq!(receipt.consent_records, 3);
    assert_eq!(receipt.requested_by, "privacy");
    // Nothing of the person is left in the tables; the kiosk's events are no longer theirs.
    let mut left = Vec::new();
    store
        .scan_events(0, &mut |e| {
            left.push(e);
            Ok(())
        })
        .unwrap();
    for e in &left {
        for key in [cookie.key(), email.key(), trained.key()] {
            assert!(!e.identifiers.contains(&key) && e.anchor != key, "{e:?}");
        }
    }
    assert!(left.iter().any(|e| e.event_id == "2"), "another person's event stays");
    assert!(!store.person_ids(std::slice::from_ref(&email)).unwrap().known);
    let alone = store.person_ids(std::slice::from_ref(&trained)).unwrap();
    assert_eq!(alone.identifiers, std::slice::from_ref(&trained));
    assert_eq!(receipt.impressions, 1);
    assert!(store.served("r1").unwrap().is_none());
    let marked = store.person(std::slice::from_ref(&email), ALL).unwrap();
    assert_eq!(marked.erased, [(email.clone(), 20)]);
    // A late event from before the erasure is refused; a new one starts afresh.
    let answers = store
        .ingest(
            vec![
                event("9", &[&email], "email", "click", Some("i1"), 19),
                event("10", &[&email], "web", "view", Some("i5"), 25),
            ],
            26,
        )
        .unwrap();
    assert!(
        matches!(&answers[0], Ingested::Rejected { field, .. } if field == "identifiers.email"),
        "{answers:?}"
    );
    assert!(matches!(answers[1], Ingested::Accepted { .. }));
    assert_eq!(items_of(&store.person(std::slice::from_ref(&email), ALL).unwrap()), ["i5"]);
    // A restart keeps the erasure: the model's person stays out of the graph.
    drop(store);
    let store = open(dir.path());
    store
        .reseed(
            Seed { groups: vec![vec![trained.clone(), email.clone()]], ..Seed::default() },
            IdentityRules::default(),
            WeightConfig::default(),
        )
        .unwrap();
    assert!(!store.person_ids(&[trained]).unwrap().known);
    assert!(store.erase(id(CookieId, "never-seen"), Vec::new(), "privacy", 30).unwrap().is_none());
}

#[test]
fn an_erasure_spares_later_links_and_other_persons_links_and_what_was_served_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let seed = |data_until| Seed {
        groups: vec![vec![id(UserId, "u1"), id(Email, "back@x.org")]],
        data_until,
        ..Seed::default()
    };
    store.reseed(seed(0), IdentityRules::default(), WeightConfig::default()).unwrap();
    let (email, old_cookie, new_cookie) = (id(Email, "back@x.org"), id(CookieId, "c1"), id(CookieId, "c2"));
    let (kiosk, card_a, card_b) = (id(DeviceId, "k1"), id(LoyaltyId, "A"), id(LoyaltyId, "B"));
    let (card, cookie) = (id(LoyaltyId, "Q"), id(CookieId, "q"));
    let answers = store
        .ingest(
            vec![
                event("1", &[&email, &old_cookie], "web", "view", Some("i1"), 10),
                // Two cards on one kiosk make it a refused bridge, a person of its own; a
                // third visit's entry still joins the card Q and its cookie.
                event("2", &[&card_a, &kiosk], "store", "view", Some("i2"), 11),
                event("3", &[&card_b, &kiosk], "store", "view", Some("i2"), 11),
                event("4", &[&card, &cookie, &kiosk], "store", "view", Some("i3"), 12),
            ],
            13,
        )
        .unwrap();
    assert!(answers.iter().all(|a| matches!(a, Ingested::Accepted { .. })), "{answers:?}");
    let joined = |store: &Store, a: &Identifier, b: &Identifier| {
        store.person_ids(std::slice::from_ref(a)).is_some_and(|p| p.identifiers.contains(b))
    };
    assert!(joined(&store, &card, &cookie) && !joined(&store, &card, &kiosk));
    // The kiosk's person is erased: the entry that also joined Q's card and cookie stays,
    // without the kiosk, and those of the cards A and B keep them known, each alone.
    let receipt = store.erase(kiosk.clone(), Vec::new(), "privacy", 20).unwrap().unwrap();
    assert_eq!((receipt.links, receipt.links_redacted), (0, 3), "{receipt:?}");
    assert!(store.person_ids(std::slice::from_ref(&card_a)).is_some_and(|p| p.known));
    assert!(joined(&store, &card, &cookie));
    // The email's person is erased; the address comes back later with a new cookie.
    store.erase(email.clone(), Vec::new(), "privacy", 21).unwrap().unwrap();
    store.ingest(vec![event("5", &[&email, &new_cookie], "web", "view", Some("i4"), 30)], 31).unwrap();
    assert!(joined(&store, &new_cookie, &email));
    // An answer computed for the person before their erasure, recorded after it, is not
    // stored (nor is an exposure of that time); one for the person who came back is.
    for (id, at) in [("before", 21), ("after", 32)] {
        let shown = Impression {
            id: id.into(),
            person: email.key(),
            channel: "web".into(),
            placement: None,
            items: vec!["i1".into()],
            at,
        };
        store.record_served(shown, None);
    }
    // A rebuild of the graph (another erasure) and a restart keep the link made after the
    // erasure, and the redacted entry; the commit writes the waiting answers.
    store.erase(card_a.clone(), Vec::new(), "privacy", 40).unwrap().unwrap();
    assert!(joined(&store, &new_cookie, &email) && joined(&store, &card, &cookie));
    assert!(store.served("before").unwrap().is_none());
    assert_eq!(store.served("after").unwrap().map(|s| s.at), Some(32));
    drop(store);
    let store = open(dir.path());
    store.reseed(seed(0), IdentityRules::default(), WeightConfig::default()).unwrap();
    assert!(joined(&store, &new_cookie, &email) && joined(&store, &card, &cookie));
    // A model whose data ends before the erasure learned the erased person: its group is
    // left out. One trained on an export taken after it learned only who came back.
    assert!(!joined(&store, &id(UserId, "u1"), &email));
    store.reseed(seed(50), IdentityRules::default(), WeightConfig::default()).unwrap();
    assert!(joined(&store, &id(UserId, "u1"), &new_cookie));
}

//! The real-time loop over a real socket: events from every channel, the live identity graph,
//! profiles, consent, erasure, catalog changes, frequency caps, restarts, and the export that
//! closes the loop into training.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use datasets::schema::{Identifier, IdentifierKind};
use models::recommender::ModelKind;
use models::serve::rules::{FrequencyCap, PlacementConfig, StockRule};
use serde_json::{Value, json};
use server::client::{Connection, Reply};
use server::config::{ServerConfig, default_placements};

use super::{Running, buyers, start, trained};

pub(super) async fn send(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let text = body.map(Value::to_string);
    Connection::open(addr).await.unwrap().send(method, path, None, text.as_deref()).await.unwrap()
}

pub(super) async fn events(addr: &str, events: Value) -> Value {
    let reply = send(addr, "POST", "/v1/events", Some(&json!({ "events": events }))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.json()
}

pub(super) async fn recommend(addr: &str, body: Value) -> Value {
    let reply = send(addr, "POST", "/v1/recommendations", Some(&body)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.json()
}

pub(super) fn ids(answer: &Value) -> Vec<String> {
    answer["items"].as_array().unwrap().iter().map(|i| i["item_id"].as_str().unwrap().to_string()).collect()
}

pub(super) fn now() -> i64 {
    cli::unix_now()
}

pub(super) fn live_config(dir: &Path) -> ServerConfig {
    ServerConfig { data_dir: Some(dir.join("state")), ..ServerConfig::default() }
}

/// A profile's identifiers as (type, value).
pub(super) fn profile_identifiers(profile: &Value) -> Vec<(String, String)> {
    profile["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["type"].as_str().unwrap().to_string(), i["value"].as_str().unwrap().to_string()))
        .collect()
}

/// Items of the catalog in one top category, and that category.
pub(super) fn one_category(n: usize) -> (String, Vec<String>) {
    let body = &trained().engine.artifact().body;
    let category = body.catalog[0].top_category().unwrap().to_string();
    let items = body
        .catalog
        .iter()
        .filter(|i| i.top_category() == Some(category.as_str()) && i.in_stock)
        .take(n)
        .map(|i| i.item_id.clone())
        .collect();
    (category, items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_purchase_leaves_every_channel_s_next_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let t = now() - 3_600;
    // A new person browses on the web under a cookie...
    let (_, browsed) = one_category(3);
    let views: Vec<Value> = browsed
        .iter()
        .enumerate()
        .map(|(n, item)| {
            json!({"cookie_id": "c-ann", "channel": "web", "type": "view", "item_id": item, "timestamp": t + n as i64})
        })
        .collect();
    assert_eq!(events(addr, Value::Array(views)).await["accepted"], 3);
    // ...logs in with her email...
    let login = json!([{"cookie_id": "c-ann", "email": "Ann@Example.com", "channel": "web", "type": "login", "timestamp": t + 10}]);
    let answer = events(addr, login).await;
    assert_eq!((answer["accepted"].as_u64(), answer["results"][0]["merged"].as_u64()), (Some(1), Some(1)));
    let web = recommend(addr, json!({"identifiers": {"cookie_id": "c-ann"}, "channel": "web", "k": 5})).await;
    assert_eq!(web["personalized"], true, "{web}");
    let top = ids(&web)[0].clone();
    // ...and buys the web's top pick in the store, with her card and her email.
    let till = json!([{
        "loyalty_id": "L-ann", "email": "ann@example.com", "channel": "store", "type": "purchase",
        "item_id": top, "timestamp": t + 20, "event_id": "till-1", "store_id": "s1", "value": 59.0
    }]);
    assert_eq!(events(addr, till.clone()).await["accepted"], 1);
    // The email channel's next answer, asked by email, no longer has it; nor the web's.
    let email =
        recommend(addr, json!({"identifiers": {"email": "ann@example.com"}, "channel": "email", "k": 6}))
            .await;
    assert!(!ids(&email).contains(&top), "{email}");
    assert_eq!(email["person_id"], "loyalty_id:L-ann");
    let again =
        recommend(addr, json!({"identifiers": {"cookie_id": "c-ann"}, "channel": "web", "k": 12})).await;
    assert!(!ids(&again).contains(&top));
    // The profile found by the cookie lists the card and the email's hash, never the address.
    let profile = send(addr, "GET", "/v1/profiles/cookie_id/c-ann", None).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    let profile = profile.json();
    let listed: HashSet<(String, String)> = profile_identifiers(&profile).into_iter().collect();
    let email_hash = Identifier::new(IdentifierKind::Email, "ann@example.com").unwrap().value;
    assert!(listed.contains(&("loyalty_id".into(), "L-ann".into())), "{profile}");
    assert!(listed.contains(&("email".into(), email_hash)), "{profile}");
    assert!(!profile.to_string().contains("ann@example.com"));
    assert_eq!(profile["recent_purchases"][0]["item_id"], top.as_str());
    assert_eq!(profile["events_by_channel"]["store"], 1);
    assert_eq!(profile["event_count"], 5);
    assert_eq!(profile["person_id"], "loyalty_id:L-ann");
    assert!(profile["links"].as_array().unwrap().iter().any(|l| l["event_id"] == "till-1"));
    // A re-sent event changes nothing; the same id with another payload is a conflict.
    let resent = events(addr, till).await;
    assert_eq!((resent["accepted"].as_u64(), resent["duplicates"].as_u64()), (Some(0), Some(1)));
    let changed = json!([{"loyalty_id": "L-ann", "channel": "store", "type": "purchase", "item_id": top, "timestamp": t + 21, "event_id": "till-1"}]);
    let conflict = events(addr, changed).await;
    assert_eq!(
        (conflict["conflicts"].as_u64(), conflict["results"][0]["code"].as_u64()),
        (Some(1), Some(409))
    );
    let profile = send(addr, "GET", "/v1/profiles/email/ann@example.com", None).await.json();
    assert_eq!(profile["event_count"], 5, "nothing was counted twice");
    // One bad event in a batch: the others are accepted, the bad field is named.
    let batch = json!([
        {"cookie_id": "c-ann", "channel": "app", "type": "view", "item_id": browsed[0], "timestamp": t + 30},
        {"cookie_id": "c-ann", "channel": "app", "type": "view", "timestamp": t + 31},
        {"cookie_id": "c-ann", "channel": "app", "type": "view", "item_id": browsed[1], "timestamp": 9_999_999_999_i64},
        {"cookie_id": "guest", "channel": "app", "type": "view", "item_id": browsed[1], "timestamp": t + 32},
        {"cookie_id": "c-ann", "channel": "app", "type": "view", "item_id": "not-in-catalog", "timestamp": t + 33},
    ]);
    let answer = events(addr, batch).await;
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(2), Some(3)), "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!((results[1]["field"].as_str(), results[1]["code"].as_u64()), (Some("item_id"), Some(400)));
    assert_eq!(results[2]["field"], "timestamp");
    assert!(results[2]["message"].as_str().unwrap().contains("future"));
    assert_eq!(results[3]["field"], "identifiers.cookie_id");
    assert!(results[4]["warnings"][0].as_str().unwrap().contains("not in the catalog"));
    assert!(results[0]["event_id"].as_str().unwrap().len() == 36, "an id is assigned and returned");
    // Oversize batches are refused whole.
    let many: Vec<Value> = (0..1_001)
        .map(|n| json!({"cookie_id": "c-x", "channel": "web", "type": "view", "item_id": browsed[0], "timestamp": t + n}))
        .collect();
    let oversize = send(addr, "POST", "/v1/events", Some(&json!({ "events": many }))).await;
    assert_eq!((oversize.status, oversize.json()["error"]["field"].as_str()), (400, Some("events")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_person_is_personalised_from_a_few_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let before = recommend(&server.addr, json!({"identifiers": {"cookie_id": "c-new"}, "k": 10})).await;
    assert_eq!(
        (before["personalized"].clone(), before["reason"].clone()),
        (json!(false), json!("unknown_user"))
    );
    let (category, items) = one_category(3);
    let views: Vec<Value> = items
        .iter()
        .map(|item| json!({"cookie_id": "c-new", "channel": "app", "type": "view", "item_id": item, "timestamp": now() - 60}))
        .collect();
    events(&server.addr, Value::Array(views)).await;
    let after = recommend(&server.addr, json!({"identifiers": {"cookie_id": "c-new"}, "k": 10})).await;
    assert_eq!(after["personalized"], true, "{after}");
    let catalog = &trained().engine.artifact().body;
    let in_category = ids(&after)
        .iter()
        .filter(|id| {
            catalog.catalog[catalog.items.get(id).unwrap() as usize].top_category() == Some(category.as_str())
        })
        .count();
    assert!(in_category >= 4, "the first views shape the answer: {in_category} of 10 in {category}");
}

/// A trained person with an account, and another without one (no user id, loyalty card or
/// POS number), each with purchases: they can be linked within the merge limits.
fn two_people() -> ((String, HashSet<String>), (String, HashSet<String>)) {
    let people = buyers(2);
    let with_account = people.iter().find(|(key, _)| !key.contains(':')).unwrap().clone();
    let without = people
        .iter()
        .find(|(key, bought)| {
            (key.starts_with("email:") || key.starts_with("cookie_id:"))
                && bought.is_disjoint(&with_account.1)
        })
        .unwrap()
        .clone();
    (with_account, without)
}

pub(super) fn identifier_body(key: &str) -> Value {
    let identifier = Identifier::parse_key(key).unwrap();
    json!({"type": identifier.kind.as_str(), "value": identifier.value})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_and_its_unlink_give_each_side_back_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let ((a, bought_a), (b, bought_b)) = two_people();
    let ask = |who: &str| {
        let identifier = Identifier::parse_key(who).unwrap();
        json!({"identifiers": {identifier.kind.as_str(): identifier.value}, "k": 20, "placement": "home"})
    };
    let before_a = recommend(addr, ask(&a)).await;
    let before_b = recommend(addr, ask(&b)).await;
    let link = json!({"a": identifier_body(&format!("user_id:{a}")), "b": identifier_body(&b)});
    let linked = send(addr, "POST", "/v1/identities/link", Some(&link)).await;
    assert_eq!(linked.status, 200, "{:?}", linked.body);
    assert_eq!(linked.json()["merged"], 1);
    // One person now: both sides' purchases are excluded, asked by either.
    for who in [&a, &b] {
        let merged = recommend(addr, ask(who)).await;
        let shown: HashSet<String> = ids(&merged).into_iter().collect();
        assert!(shown.is_disjoint(&bought_a) && shown.is_disjoint(&bought_b), "{who}: {merged}");
        assert_eq!(merged["person_id"], a.as_str());
    }
    let profile = send(addr, "GET", &format!("/v1/profiles/user_id/{a}"), None).await.json();
    assert_eq!(profile["trained_persons"].as_array().unwrap().len(), 2, "{profile}");
    assert_eq!(profile["links"][0]["kind"], "link");
    // Undone: each side gets exactly its own answer back.
    let unlinked = send(addr, "POST", "/v1/identities/unlink", Some(&link)).await;
    assert_eq!(unlinked.status, 200, "{:?}", unlinked.body);
    assert_eq!(ids(&recommend(addr, ask(&a)).await), ids(&before_a));
    assert_eq!(ids(&recommend(addr, ask(&b)).await), ids(&before_b));
    let again = send(addr, "POST", "/v1/identities/unlink", Some(&link)).await;
    assert_eq!((again.status, again.json()["error"]["code"].clone()), (409, json!("not_linked")));
    // The unlink holds: linking them again is refused, and says which rule.
    let refused = send(addr, "POST", "/v1/identities/link", Some(&link)).await;
    assert_eq!((refused.status, refused.json()["error"]["code"].clone()), (409, json!("link_refused")));
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("unlinked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_several_persons_offers_none_of_what_any_of_them_bought() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let (person, _) = buyers(2).into_iter().find(|(key, _)| !key.contains(':')).unwrap();
    let ask = |identifiers: Value| json!({"identifiers": identifiers, "k": 10, "placement": "home"});
    let theirs = ids(&recommend(addr, ask(json!({"user_id": person}))).await);
    // A guest's cookie buys their top item, then the guest logs in: the request names the
    // account and the cookie, which no event has joined yet.
    let bought = json!([{"cookie_id": "c-guest", "channel": "web", "type": "purchase", "item_id": theirs[0], "timestamp": now() - 5}]);
    assert_eq!(events(addr, bought).await["accepted"], 1);
    let both = recommend(addr, ask(json!({"user_id": person, "cookie_id": "c-guest"}))).await;
    assert_eq!(both["personalized"], true, "{both}");
    assert!(!ids(&both).contains(&theirs[0]), "bought under the cookie: {both}");
    // A device refused for merging (shared) does not answer for the person beside it.
    let refused = trained().engine.artifact().body.refused.first().cloned().expect("a refused identifier");
    let shared = Identifier::parse_key(&refused).unwrap();
    let answer =
        recommend(addr, ask(json!({shared.kind.as_str(): shared.value, "cookie_id": "c-guest"}))).await;
    assert_eq!(answer["person_id"], "cookie_id:c-guest", "{answer}");
    assert!(!ids(&answer).contains(&theirs[0]), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_another_person_offers_nothing_the_model_knows_they_bought() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let people = buyers(1);
    let ask = |identifiers: Value| json!({"identifiers": identifiers, "k": 10, "placement": "home"});
    // A person, and another the model knows bought one of the items offered to the first.
    let mut found = None;
    for (person, _) in people.iter().filter(|(key, _)| !key.contains(':')).take(40) {
        let theirs = ids(&recommend(addr, ask(json!({"user_id": person}))).await);
        let other = people.iter().find(|(key, bought)| {
            key != person && !key.contains(':') && theirs.iter().any(|i| bought.contains(i))
        });
        if let Some((other, bought)) = other {
            let item = theirs.iter().find(|i| bought.contains(*i)).unwrap().clone();
            found = Some((person.clone(), other.clone(), item));
            break;
        }
    }
    let (person, other, item) = found.expect("two persons sharing an item");
    // A cookie joined live to the other person's trained identifier, then named beside the
    // first person's account: the answer is the first person's, without what the other bought.
    let login = json!([{"cookie_id": "c-other", "user_id": other, "channel": "web", "type": "login", "timestamp": now() - 5}]);
    assert_eq!(events(addr, login).await["accepted"], 1);
    let both = recommend(addr, ask(json!({"user_id": person, "cookie_id": "c-other"}))).await;
    assert_eq!(both["person_id"], person.as_str(), "{both}");
    assert!(!ids(&both).contains(&item), "{other} bought {item} before training: {both}");
    // The same with one of the other person's trained identifiers named directly. Either
    // way the answer comes from the first person's history alone: every item is explained by
    // what they did, none by what the other did.
    let engine = &trained().engine;
    let (user, other_user) = (
        engine.lookup(&format!("user_id:{person}")).unwrap(),
        engine.lookup(&format!("user_id:{other}")).unwrap(),
    );
    let body = &engine.artifact().body;
    let (kind, value) = body
        .aliases
        .iter()
        .filter(|(key, u)| **u == other_user.0 && !key.starts_with("user_id:"))
        .find_map(|(key, _)| key.split_once(':'))
        .expect("another identifier of the other person");
    let named = recommend(addr, ask(json!({"user_id": person, kind: value}))).await;
    assert_eq!(named["person_id"], person.as_str(), "{named}");
    assert!(!ids(&named).contains(&item), "{other} bought {item} before training: {named}");
    let own: HashSet<&str> =
        engine.person(Some(user)).history.iter().filter_map(|(i, _)| body.items.id(i.0)).collect();
    for answer in [&both, &named] {
        for answered in answer["items"].as_array().unwrap() {
            let explained = answered["explanation"]["because"].as_array().expect("explanations");
            for because in explained {
                let because = because["item_id"].as_str().unwrap();
                assert!(own.contains(because), "{because} is {other}'s, not {person}'s: {answer}");
            }
        }
    }
}

fn capped_placements() -> BTreeMap<String, PlacementConfig> {
    let mut placements = default_placements();
    placements.insert(
        "email_capped".into(),
        PlacementConfig {
            channel: Some("newsletter".into()),
            k: 6,
            frequency_cap: Some(FrequencyCap { max_impressions: 1, window_hours: 24.0 }),
            ..PlacementConfig::default()
        },
    );
    placements.insert(
        "content_only".into(),
        PlacementConfig {
            in_stock: StockRule::Any,
            weights: [(ModelKind::Content, 1.0)].into(),
            ..PlacementConfig::default()
        },
    );
    placements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_items_are_recommended_at_once_and_caps_hold_across_channels() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        start(ServerConfig { placements: capped_placements(), ..live_config(dir.path()) }, HashMap::new())
            .await;
    let addr = &server.addr;
    let (person, _) = buyers(3).into_iter().find(|(key, _)| !key.contains(':')).unwrap();
    let engine = &trained().engine;
    let user = engine.lookup(&person).unwrap();
    let favourite = engine.history(user).into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
    let model_item = &engine.artifact().body.catalog[favourite.get()];
    let twin = json!({"items": [{
        "item_id": "twin-1", "title": model_item.title, "categories": model_item.categories,
        "brand": model_item.brand, "tags": model_item.tags, "price": 10.0, "in_stock": true
    }, {"item_id": "bad", "price": "free"}, {"item_id": "tab\tid", "title": "t"}]});
    let put = send(addr, "PUT", "/v1/items", Some(&twin)).await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!((put.json()["created"].as_u64(), put.json()["rejected"].as_u64()), (Some(1), Some(2)));
    assert_eq!(put.json()["results"][2]["field"], "item_id", "{:?}", put.json());
    let ask = json!({"identifiers": {"user_id": person}, "placement": "content_only", "k": 5});
    let answer = recommend(addr, ask.clone()).await;
    assert!(ids(&answer).contains(&"twin-1".to_string()), "{answer}");
    let similar = send(addr, "GET", "/v1/items/twin-1/similar?k=3", None).await;
    assert_eq!(similar.status, 200, "{:?}", similar.body);
    assert_eq!(send(addr, "DELETE", "/v1/items/twin-1", None).await.status, 200);
    assert!(!ids(&recommend(addr, ask).await).contains(&"twin-1".to_string()));
    assert_eq!(send(addr, "DELETE", "/v1/items/twin-1", None).await.status, 404);
    // Out of stock now: gone from in-stock placements at once.
    let home =
        recommend(addr, json!({"identifiers": {"user_id": person}, "placement": "home", "k": 5})).await;
    let first = ids(&home)[0].clone();
    let stock = json!({"items": [{"item_id": first, "in_stock": false}]});
    assert_eq!(send(addr, "PUT", "/v1/items", Some(&stock)).await.json()["updated"], 1);
    let home =
        recommend(addr, json!({"identifiers": {"user_id": person}, "placement": "home", "k": 5})).await;
    assert!(!ids(&home).contains(&first));
    // Shown on the web: the newsletter, capped at one showing a day across channels, asked by
    // the person's other identifier, shows none of it.
    let body = &engine.artifact().body;
    let other =
        body.aliases.iter().find(|(k, p)| **p == user.0 && !k.starts_with("user_id:")).unwrap().0.clone();
    let other = Identifier::parse_key(&other).unwrap();
    let newsletter = recommend(
        addr,
        json!({"identifiers": {other.kind.as_str(): other.value}, "placement": "email_capped", "k": 6}),
    )
    .await;
    let shown_on_web: HashSet<String> = ids(&home).into_iter().collect();
    assert!(ids(&newsletter).iter().all(|i| !shown_on_web.contains(i)), "{newsletter}");
    // A channel may also ask for items not shown within some hours, uncapped placement or not.
    let fresh = recommend(
        addr,
        json!({"identifiers": {"user_id": person}, "placement": "home", "k": 5, "not_shown_within_hours": 1}),
    )
    .await;
    let shown: HashSet<String> = shown_on_web.iter().chain(ids(&newsletter).iter()).cloned().collect();
    assert!(ids(&fresh).iter().all(|i| !shown.contains(i)), "{fresh}");
    // Reported impressions count as well.
    let report = json!([{"user_id": person, "channel": "push", "type": "impression", "item_id": ids(&fresh)[0], "timestamp": now()}]);
    events(addr, report).await;
    let after = recommend(
        addr,
        json!({"identifiers": {"user_id": person}, "placement": "home", "k": 5, "not_shown_within_hours": 1}),
    )
    .await;
    assert!(!ids(&after).contains(&ids(&fresh)[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_has_stock_in_a_bounded_number_of_stores() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let known = server.state.current.load().view.catalog.index().n_stores();
    let room = datasets::load::MAX_STORES - known;
    let stock = |stores: std::ops::Range<usize>| -> serde_json::Map<String, Value> {
        stores.map(|s| (format!("new-{s}"), Value::from(2))).collect()
    };
    let put = |items: Value| async move {
        send(addr, "PUT", "/v1/items", Some(&json!({"items": items}))).await.json()
    };
    // Up to the bound, in one upload of two items sharing some stores.
    let filled = put(json!([
        {"item_id": "many-1", "store_stock": stock(0..room - 1)},
        {"item_id": "many-2", "store_stock": stock(room - 3..room)},
    ]))
    .await;
    assert_eq!(filled["created"], 2, "{filled}");
    // One store more is refused, with the field; a known store is fine.
    let over = put(json!([
        {"item_id": "more-1", "store_stock": {"new-x": 1}},
        {"item_id": "more-2", "store_stock": {"new-0": 1}},
    ]))
    .await;
    assert_eq!((over["rejected"].clone(), over["created"].clone()), (json!(1), json!(1)), "{over}");
    assert_eq!(over["results"][0]["field"], "store_stock");
    // Stock gone from stores frees them.
    let emptied = put(json!([{"item_id": "many-1", "store_stock": {}}])).await;
    assert_eq!(emptied["updated"], 1, "{emptied}");
    let again = put(json!([{"item_id": "more-1", "store_stock": {"new-x": 1}}])).await;
    assert_eq!(again["created"], 1, "{again}");
    assert!(server.state.current.load().view.catalog.index().n_stores() <= datasets::load::MAX_STORES);
}

async fn stop(server: Running) {
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_events_items_consent_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let ((a, _), (b, _)) = two_people();
    let top =
        ids(&recommend(&server.addr, json!({"identifiers": {"user_id": a}, "placement": "home", "k": 3}))
            .await)[0]
            .clone();
    events(&server.addr, json!([{"user_id": a, "channel": "call_center", "type": "purchase", "item_id": top, "timestamp": now() - 1}])).await;
    send(
        &server.addr,
        "PUT",
        "/v1/items",
        Some(&json!({"items": [{"item_id": "kept-1", "title": "Kept", "in_stock": true}]})),
    )
    .await;
    let link = json!({"a": identifier_body(&format!("user_id:{a}")), "b": identifier_body(&b)});
    assert_eq!(send(&server.addr, "POST", "/v1/identities/link", Some(&link)).await.status, 200);
    let cookie = json!({"cookie_id": "c-shy", "channel": "web", "type": "view", "item_id": top, "timestamp": now() - 1});
    events(&server.addr, json!([cookie])).await;
    send(
        &server.addr,
        "PUT",
        "/v1/profiles/cookie_id/c-shy/consent",
        Some(&json!({"personalization": false})),
    )
    .await;
    stop(server).await;

    let server = start(live_config(dir.path()), HashMap::new()).await;
    let again =
        recommend(&server.addr, json!({"identifiers": {"user_id": a}, "placement": "home", "k": 20})).await;
    assert!(!ids(&again).contains(&top), "the purchase survives the restart");
    assert_eq!(again["person_id"], a.as_str());
    let profile = send(&server.addr, "GET", &format!("/v1/profiles/user_id/{a}"), None).await.json();
    assert_eq!(profile["trained_persons"].as_array().unwrap().len(), 2, "the link survives: {profile}");
    let shy = recommend(&server.addr, json!({"identifiers": {"cookie_id": "c-shy"}, "k": 3})).await;
    assert_eq!(shy["reason"], "no_consent");
    assert_eq!(send(&server.addr, "GET", "/v1/items/kept-1/similar?k=3", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_export_train_reload_and_the_answers_reflect_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let (_, items) = one_category(6);
    // A person the model never saw buys three items and views three, on two channels.
    let mut sent = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let kind = if n < 3 { "purchase" } else { "view" };
        sent.push(json!({"cookie_id": "c-loop", "email": "loop@example.com", "channel": if n % 2 == 0 { "web" } else { "app" }, "type": kind, "item_id": item, "timestamp": now() - 600 + n as i64}));
    }
    assert_eq!(events(addr, Value::Array(sent)).await["accepted"], 6);
    // Another new person, erased after the export and before the training that reads it.
    let gone = json!([
        {"cookie_id": "c-gone", "email": "gone@example.com", "channel": "web", "type": "view", "item_id": items[0], "timestamp": now() - 500},
        {"cookie_id": "c-gone", "channel": "web", "type": "purchase", "item_id": items[1], "timestamp": now() - 499},
    ]);
    assert_eq!(events(addr, gone).await["accepted"], 2);
    // A trained person who withholds personalisation, and so is left out of the export and
    // of training; one of their purchases (in the trainer's other input, never sent to the
    // server) is among the popular items everyone else is offered.
    let ask_home = |identifiers: Value| json!({"identifiers": identifiers, "k": 50, "placement": "home"});
    let popular: HashSet<String> =
        ids(&recommend(addr, ask_home(json!({"cookie_id": "c-nobody"}))).await).into_iter().collect();
    let (shy, shy_bought) = buyers(1)
        .into_iter()
        .find(|(key, bought)| !key.contains(':') && bought.iter().any(|i| popular.contains(i)))
        .expect("a trained buyer of a popular item");
    let profile = send(addr, "GET", &format!("/v1/profiles/user_id/{shy}"), None).await.json();
    let shy_ids = profile_identifiers(&profile);
    assert!(shy_ids.len() > 1, "{profile}");
    let consent = json!({"personalization": false});
    let withdraw = send(addr, "PUT", &format!("/v1/profiles/user_id/{shy}/consent"), Some(&consent)).await;
    assert_eq!(withdraw.status, 200, "{:?}", withdraw.body);
    // A new person who withholds personalisation buys the most popular item at the till
    // (left out of the export's events), and consents again after the retrain.
    let top = ids(&recommend(addr, ask_home(json!({"cookie_id": "c-nobody"}))).await)[0].clone();
    let withdraw = send(addr, "PUT", "/v1/profiles/loyalty_id/L-shy/consent", Some(&consent)).await;
    assert_eq!(withdraw.status, 200, "{:?}", withdraw.body);
    // A popular item the training events name is deleted on the server before the export.
    let retired = ids(&recommend(addr, ask_home(json!({"cookie_id": "c-nobody"}))).await)
        .into_iter()
        .find(|i| *i != top && !items.contains(i) && !shy_bought.contains(i))
        .expect("another popular item");
    let deleted = send(addr, "DELETE", &format!("/v1/items/{retired}"), None).await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    let till = json!([{"loyalty_id": "L-shy", "channel": "store", "type": "purchase", "item_id": top, "timestamp": now() - 30}]);
    assert_eq!(events(addr, till).await["accepted"], 1);
    // A person erased before the export comes back under the same cookie and buys the top
    // item: someone new, whom the next model learns, purchase included.
    let first = json!([{"cookie_id": "c-again", "channel": "web", "type": "view", "item_id": items[3], "timestamp": now() - 400}]);
    assert_eq!(events(addr, first).await["accepted"], 1);
    assert_eq!(send(addr, "DELETE", "/v1/profiles/cookie_id/c-again", None).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let again = json!([{"cookie_id": "c-again", "channel": "store", "type": "purchase", "item_id": top, "timestamp": now()}]);
    assert_eq!(events(addr, again).await["accepted"], 1);
    let before_models = send(addr, "GET", "/v1/models", None).await.json();
    let manifest = send(addr, "POST", "/v1/admin/export", None).await;
    assert_eq!(manifest.status, 200, "{:?}", manifest.body);
    let out = std::path::PathBuf::from(manifest.json()["dir"].as_str().unwrap());
    let refused = send(addr, "POST", "/v1/admin/export", Some(&json!({"name": "../elsewhere"}))).await;
    assert_eq!((refused.status, refused.json()["error"]["field"].clone()), (400, json!("name")));
    // After the export, the person returns one of the purchases: the live ledger has it, the
    // next model must not count the purchase twice.
    events(addr, json!([{"email": "loop@example.com", "channel": "store", "type": "return", "item_id": items[0], "timestamp": now()}])).await;
    assert_eq!(send(addr, "DELETE", "/v1/profiles/cookie_id/c-gone", None).await.status, 200);
    // The model is made in a later second than the erasure (it used to be what erasures were
    // compared with: the person came back).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    // Train on the base events and the export, as a data scientist would.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, super::common::CONFIG).unwrap();
    let model = dir.path().join("retrained.omr");
    let base = trained().model.parent().unwrap().join("events.jsonl");
    let metadata = trainer::commands::train(&trainer::TrainArgs {
        data: trainer::DataArgs { interactions: None, events: Some(base) },
        from_export: Some(out.clone()),
        items: None,
        config: Some(config),
        out: model.clone(),
        skip_invalid: false,
    })
    .unwrap();
    let mark = metadata.store.clone().unwrap();
    assert_eq!(mark.watermark, manifest.json()["manifest"]["watermark"].as_u64().unwrap());
    let reload = send(addr, "POST", "/v1/admin/models/reload", Some(&json!({"path": model}))).await;
    assert_eq!(reload.status, 200, "{:?}", reload.body);
    assert_ne!(before_models["model_version"], reload.json()["model_version"]);
    // The new model knows the person; the returned item is back, the others stay excluded.
    let retrained = models::artifact::load(&model).unwrap();
    let engine = models::serve::engine::Engine::new(retrained);
    assert!(engine.lookup("cookie_id:c-loop").is_some(), "the export's person is in the model");
    // The model learned the person erased after the export; serving it does not bring them
    // back: no profile, no trained vector, by either identifier.
    assert!(engine.lookup("cookie_id:c-gone").is_some() && engine.lookup("email:gone@example.com").is_some());
    for path in ["/v1/profiles/cookie_id/c-gone", "/v1/profiles/email/gone@example.com"] {
        assert_eq!(send(addr, "GET", path, None).await.status, 404, "{path}");
    }
    // The person who withheld consent was not trained on, but what they bought outside the
    // server is still never offered back.
    assert!(engine.lookup(&format!("user_id:{shy}")).is_none(), "not trained on");
    assert!(!engine.artifact().body.withheld.is_empty());
    let answer = recommend(addr, ask_home(json!({"user_id": shy}))).await;
    assert_eq!(answer["reason"], "no_consent", "{answer}");
    assert!(ids(&answer).iter().all(|i| !shy_bought.contains(i)), "{shy_bought:?} in {answer}");
    // The live graph still joins their identifiers, though the model never learned them.
    let profile = send(addr, "GET", &format!("/v1/profiles/user_id/{shy}"), None).await.json();
    assert_eq!(profile_identifiers(&profile).len(), shy_ids.len(), "{profile}");
    // Consenting again, not trained on: under every identifier of theirs (the consent reaches
    // them all), nothing they bought under any of them.
    let consent = json!({"personalization": true});
    let again = send(addr, "PUT", &format!("/v1/profiles/user_id/{shy}/consent"), Some(&consent)).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    for (kind, value) in &shy_ids {
        let answer = recommend(addr, ask_home(json!({ kind.as_str(): value }))).await;
        assert_ne!(answer["reason"], "no_consent", "{kind}:{value}: {answer}");
        let offered: Vec<String> = ids(&answer).into_iter().filter(|i| shy_bought.contains(i)).collect();
        assert!(offered.is_empty(), "{kind}:{value} offered {offered:?} of {shy_bought:?}: {answer}");
    }
    // A server without a data directory serving that model: what the model's inputs show they
    // bought while withholding is not offered either.
    let storeless =
        start(ServerConfig { model: Some(model.clone()), ..ServerConfig::default() }, HashMap::new()).await;
    let answer = recommend(&storeless.addr, ask_home(json!({"user_id": shy}))).await;
    assert!(ids(&answer).iter().all(|i| !shy_bought.contains(i)), "{shy_bought:?} in {answer}");
    // The item deleted on the server is trained on, and served by no server loading the
    // model, though the new data directory knows nothing of the deletion.
    assert_eq!(mark.deleted_items, std::slice::from_ref(&retired));
    let index = engine.catalog().get(&retired).expect("trained on").get();
    assert!(engine.catalog().is_deleted(index));
    let answer = recommend(&storeless.addr, ask_home(json!({"cookie_id": "c-nobody"}))).await;
    assert!(!ids(&answer).contains(&retired), "{retired} deleted, in {answer}");
    let similar = send(&storeless.addr, "GET", &format!("/v1/items/{}/similar?k=50", items[0]), None).await;
    assert!(!ids(&similar.json()).contains(&retired), "{retired} deleted, in {:?}", similar.body);
    storeless.shutdown().await;
    // The till purchase made while withholding: still excluded once they consent again.
    let consent = json!({"personalization": true});
    let again = send(addr, "PUT", "/v1/profiles/loyalty_id/L-shy/consent", Some(&consent)).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let answer = recommend(addr, ask_home(json!({"loyalty_id": "L-shy"}))).await;
    assert_ne!(answer["reason"], "no_consent", "{answer}");
    assert!(!ids(&answer).contains(&top), "{top} bought while withholding, in {answer}");
    let answer = recommend(addr, ask_home(json!({"cookie_id": "c-again"}))).await;
    assert!(!ids(&answer).contains(&top), "{top} bought after coming back, in {answer}");
    let stranger = recommend(addr, json!({"identifiers": {"email": "gone@example.com"}, "k": 5})).await;
    assert_eq!(stranger["personalized"], false, "{stranger}");
    // The address comes back: a new person, not joined to the erased one's cookie.
    let back = json!([{"email": "gone@example.com", "cookie_id": "c-back", "channel": "web", "type": "view", "item_id": items[2], "timestamp": now() + 2}]);
    let answer = events(addr, back).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    let profile = send(addr, "GET", "/v1/profiles/email/gone@example.com", None).await.json();
    let known: Vec<&str> =
        profile["identifiers"].as_array().unwrap().iter().filter_map(|i| i["value"].as_str()).collect();
    assert!(known.contains(&"c-back") && !known.contains(&"c-gone"), "{profile}");
    assert_eq!(profile["trained_persons"].as_array().map(Vec::len), Some(0), "{profile}");
    let answer =
        recommend(addr, json!({"identifiers": {"cookie_id": "c-loop"}, "k": 30, "placement": "home"})).await;
    assert_eq!(answer["personalized"], true);
    let shown: Vec<String> = ids(&answer);
    assert!(!shown.contains(&items[1]) && !shown.contains(&items[2]), "{answer}");
    let consumed: Vec<String> = engine
        .consumed(engine.lookup("cookie_id:c-loop").unwrap())
        .iter()
        .map(|&(i, _)| engine.artifact().body.items.id(i).unwrap().to_string())
        .collect();
    assert!(consumed.contains(&items[0]), "the model learned the purchase before the export");
    // Live after the watermark: the return brings it back despite the model.
    let person = server.state.store.as_ref().unwrap().person(
        &[Identifier::parse_key("cookie_id:c-loop").unwrap()],
        store::PersonQuery { after_seq: mark.watermark - 1, shown_since: None },
    );
    assert_eq!(person.unwrap().consumed.len(), 1, "only the return is after the watermark");
    let category =
        trained().engine.catalog().item(trained().engine.catalog().get(&items[0]).unwrap().get()).unwrap();
    let in_category = json!({
        "identifiers": {"cookie_id": "c-loop"}, "k": 100, "placement": "home",
        "filters": {"categories": [category.top_category().unwrap()]}
    });
    let with_return = recommend(addr, in_category).await;
    assert!(ids(&with_return).contains(&items[0]), "{with_return}");
    assert!(!ids(&with_return).contains(&items[1]));
}

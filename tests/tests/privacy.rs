//! Erasure and consent over a real socket: who an erasure takes (the live graph's person,
//! not someone who took over a trained cookie since), a person erased while an export was
//! read, and consent withdrawal and erasure reaching every channel, batch sends and exports.

use std::collections::{HashMap, HashSet};

use datasets::schema::Identifier;
use serde_json::json;

use super::batch::batch_send;
use super::live::{events, identifier_body, ids, live_config, now, one_category, recommend, send};
use super::{buyers, start, trained};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_who_took_over_a_trained_cookie_leaves_its_first_owner_and_their_purchases() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let body = &trained().engine.artifact().body;
    // A trained account holder whose cookie the model learned with them.
    let (owner, bought, cookie) = buyers(3)
        .into_iter()
        .filter(|(key, _)| !key.contains(':'))
        .find_map(|(key, bought)| {
            let user = body.users.get(&key)?;
            let cookie = body.aliases.iter().find(|(k, p)| **p == user && k.starts_with("cookie_id:"))?;
            Some((key, bought, cookie.0.clone()))
        })
        .unwrap();
    let account = format!("user_id:{owner}");
    // The cookie was a family browser: unlinked from the owner, then another person logs in
    // on it, and that person asks to be erased.
    let link = json!({"a": identifier_body(&account), "b": identifier_body(&cookie)});
    let unlinked = send(addr, "POST", "/v1/identities/unlink", Some(&link)).await;
    assert_eq!(unlinked.status, 200, "{:?}", unlinked.body);
    let cookie_value = Identifier::parse_key(&cookie).unwrap().value;
    let item = body.items.id(0).unwrap();
    events(
        addr,
        json!([{"user_id": "the-other", "cookie_id": cookie_value, "channel": "web", "type": "view", "item_id": item, "timestamp": now() - 5}]),
    )
    .await;
    // The cookie's new person is not answered with the owner's trained history, asked by
    // the cookie or by their own account; the owner keeps it.
    for path in [
        "/v1/profiles/user_id/the-other".to_string(),
        format!("/v1/profiles/{}", cookie.replacen(':', "/", 1)),
    ] {
        let theirs = send(addr, "GET", &path, None).await.json();
        assert_eq!(theirs["trained_persons"], json!([]), "{path}: {theirs}");
    }
    let owners = send(addr, "GET", &format!("/v1/profiles/user_id/{owner}"), None).await.json();
    assert_eq!(owners["trained_persons"].as_array().map(Vec::len), Some(1), "{owners}");
    let erased = send(addr, "DELETE", "/v1/profiles/user_id/the-other", None).await;
    assert_eq!(erased.status, 200, "{:?}", erased.body);
    // Their account and the cookie, not the owner's account nor anything else the model knew
    // of the owner.
    assert_eq!(erased.json()["identifiers"], 2, "{:?}", erased.body);
    // The owner is still someone, and nothing they bought is offered to them on any channel;
    // also when they come back on that browser, its cookie beside their login (the model's
    // person learned with the erased cookie is not used for what they like then, but what
    // it knows they bought still counts).
    for channel in ["web", "email", "app"] {
        let alone = json!({"identifiers": {"user_id": owner}, "k": 100, "channel": channel});
        let on_that_browser = json!({"identifiers": {"user_id": owner, "cookie_id": cookie_value}, "k": 100, "channel": channel});
        for ask in [alone, on_that_browser] {
            let answer = recommend(addr, ask).await;
            let shown: HashSet<String> = ids(&answer).into_iter().collect();
            assert!(shown.is_disjoint(&bought), "{channel}: {answer}");
        }
    }
    let profile = send(addr, "GET", &format!("/v1/profiles/user_id/{owner}"), None).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_erased_while_an_export_was_read_stays_erased_in_the_model_trained_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let (_, items) = one_category(3);
    let visits = json!([
        {"cookie_id": "c-race", "email": "race@example.com", "channel": "web", "type": "view", "item_id": items[0], "timestamp": now() - 100},
        {"cookie_id": "c-race", "channel": "web", "type": "purchase", "item_id": items[1], "timestamp": now() - 99},
    ]);
    assert_eq!(events(addr, visits).await["accepted"], 2);
    // The export's snapshot is taken before the erasure commits, but the erasure's time is
    // earlier than the export's (stamped when asked, then waiting behind a long commit): the
    // export holds the person, and times alone say the model cannot have learned them.
    let store = server.state.store.clone().unwrap();
    let out = dir.path().join("export-race");
    let catalog = server.state.current.load().view.catalog.live_items();
    let later = now() + 100;
    store.export(&out, &catalog, &[], later).unwrap();
    let cookie = Identifier::parse_key("cookie_id:c-race").unwrap();
    store.erase(cookie, Vec::new(), "privacy", now()).unwrap().expect("erased");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, super::common::CONFIG).unwrap();
    let model = dir.path().join("race.omr");
    let base = trained().model.parent().unwrap().join("events.jsonl");
    trainer::commands::train(&trainer::TrainArgs {
        data: trainer::DataArgs { interactions: None, events: Some(base) },
        from_export: Some(out),
        items: None,
        config: Some(config),
        out: model.clone(),
        skip_invalid: false,
    })
    .unwrap();
    let engine = models::serve::engine::Engine::new(models::artifact::load(&model).unwrap());
    assert!(engine.lookup("cookie_id:c-race").is_some(), "the model learned the person");
    let reload = send(addr, "POST", "/v1/admin/models/reload", Some(&json!({"path": model}))).await;
    assert_eq!(reload.status, 200, "{:?}", reload.body);
    // Not brought back: no profile, no trained vector, by either identifier.
    for path in ["/v1/profiles/cookie_id/c-race", "/v1/profiles/email/race@example.com"] {
        assert_eq!(send(addr, "GET", path, None).await.status, 404, "{path}");
    }
    let answer = recommend(addr, json!({"identifiers": {"email": "race@example.com"}, "k": 5})).await;
    assert_eq!(answer["personalized"], false, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_withdrawal_and_erasure_reach_every_channel_and_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let (person, _) = buyers(3).into_iter().find(|(key, _)| !key.contains(':')).unwrap();
    let body = &trained().engine.artifact().body;
    let user = body.users.get(&person).unwrap();
    let aliases: Vec<String> =
        body.aliases.iter().filter(|(_, p)| **p == user).map(|(k, _)| k.clone()).collect();
    let other_key = aliases.iter().find(|k| !k.starts_with("user_id:")).unwrap().clone();
    let by = |key: &str| {
        let identifier = Identifier::parse_key(key).unwrap();
        json!({"identifiers": {identifier.kind.as_str(): identifier.value}, "k": 5, "channel": "email"})
    };
    events(addr, json!([{"user_id": person, "channel": "web", "type": "view", "item_id": body.items.id(0).unwrap(), "timestamp": now() - 5}])).await;
    assert_eq!(recommend(addr, by(&other_key)).await["personalized"], true);
    let withdraw = send(
        addr,
        "PUT",
        &format!("/v1/profiles/user_id/{person}/consent"),
        Some(&json!({"personalization": false})),
    )
    .await;
    assert_eq!(withdraw.status, 200, "{:?}", withdraw.body);
    let answer = recommend(addr, by(&other_key)).await;
    assert_eq!(
        (answer["personalized"].clone(), answer["reason"].clone()),
        (json!(false), json!("no_consent"))
    );
    send(
        addr,
        "PUT",
        &format!("/v1/profiles/user_id/{person}/consent"),
        Some(&json!({"personalization": true})),
    )
    .await;
    assert_eq!(recommend(addr, by(&other_key)).await["personalized"], true);
    // Erasure: a receipt, then nobody by any of the identifiers, in the profile, the answers
    // and the export.
    let viewed = models::serve::catalog::LiveCatalog::get(
        &server.state.current.load().view.catalog,
        body.items.id(0).unwrap(),
    )
    .unwrap();
    assert!(server.state.current.load().model.live.count(viewed) > 0.0, "the view counts in live popularity");
    let erased = send(addr, "DELETE", &format!("/v1/profiles/user_id/{person}"), None).await;
    assert_eq!(erased.status, 200, "{:?}", erased.body);
    // Live popularity is counted again without them.
    let mut waited = 0;
    while server.state.current.load().model.live.count(viewed) > 0.0 && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(
        server.state.current.load().model.live.count(viewed),
        0.0,
        "the erased person's view stops counting"
    );
    let receipt = erased.json();
    assert!(receipt["identifiers"].as_u64().unwrap() >= aliases.len() as u64, "{receipt}");
    assert!(receipt["events_deleted"].as_u64().unwrap() >= 3, "the view and two consent changes");
    for key in &aliases {
        let identifier = Identifier::parse_key(key).unwrap();
        let path = format!("/v1/profiles/{}/{}", identifier.kind.as_str(), identifier.value);
        assert_eq!(send(addr, "GET", &path, None).await.status, 404, "{key}");
        let answer = recommend(addr, by(key)).await;
        assert_eq!(answer["personalized"], false, "no trained vector is used for {key}");
    }
    let manifest = send(addr, "POST", "/v1/admin/export", Some(&json!({"name": "after-erasure"}))).await;
    assert_eq!(manifest.status, 200, "{:?}", manifest.body);
    let out = std::path::PathBuf::from(manifest.json()["dir"].as_str().unwrap());
    assert_eq!(out, dir.path().join("state/exports/after-erasure"));
    // An export is never rewritten under a training run that may be reading it.
    let again = send(addr, "POST", "/v1/admin/export", Some(&json!({"name": "after-erasure"}))).await;
    assert_eq!((again.status, again.json()["error"]["code"].clone()), (409, json!("export_exists")));
    let exported = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(!exported.contains(&person));
    let hashes: HashSet<String> = manifest.json()["manifest"]["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hash"].as_str().unwrap().to_string())
        .collect();
    for key in &aliases {
        assert!(hashes.contains(&store::record::suppression_hash(key)), "{key} is on the suppression list");
    }
    // A batch send from the model trained before the erasure, with the export's suppression
    // list: the erased person gets no answer; without it they would.
    let other = (0..body.users.len() as u32)
        .find(|&u| u != user)
        .map(|u| body.users.id(u).unwrap().to_string())
        .unwrap();
    let send_batch = |suppressed_from: Option<std::path::PathBuf>| {
        let (rows, fallback) = batch_send(dir.path(), &[&person, &other], suppressed_from);
        let answered = |id: &str| rows.lines().filter(|l| l.split('\t').next() == Some(id)).count();
        (answered(&person), answered(&other), fallback)
    };
    assert_eq!(send_batch(None).0, 5, "the model still holds the erased person");
    let (theirs, others, fallback) = send_batch(Some(out.clone()));
    assert_eq!((theirs, others), (0, 5));
    assert!(fallback.lines().any(|l| l == format!("{person}\terased")), "{fallback}");
    // Late events of the erased person, dated before the erasure, are refused.
    let late = events(addr, json!([{"user_id": person, "channel": "web", "type": "view", "item_id": body.items.id(1).unwrap(), "timestamp": now() - 100}])).await;
    assert_eq!(late["rejected"], 1, "{late}");
    let result = &late["results"][0];
    assert_eq!(result["field"], "identifiers.user_id", "{late}");
    assert!(result["message"].as_str().is_some_and(|m| m.contains("erased at")), "{late}");
}

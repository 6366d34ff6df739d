//! The model registry with experiments: versions loaded beside production answer their
//! variants, are promoted, retired and kept across restarts; what any loaded version knows of
//! a person (their purchases, their identifiers) and of an item counts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use server::config::ServerConfig;

use super::experiments::{item_ids, ok, send};
use super::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_versions_answer_their_variants_are_promoted_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let (_, second) = super::common::setup_seeded(&dir.path().join("second"), 12);
    let second_version = models::artifact::load_metadata(&second).unwrap().model_version;
    let config = || ServerConfig { data_dir: Some(state_dir.clone()), ..ServerConfig::default() };
    let server = start(config(), HashMap::new()).await;
    let addr = &server.addr;
    let production = ok(addr, "GET", "/v1/models", None).await["model_version"].as_str().unwrap().to_string();
    assert_ne!(production, second_version);
    let loaded = ok(addr, "POST", "/v1/admin/models", Some(&json!({ "path": second }))).await;
    assert_eq!(loaded["model_version"], second_version.as_str());
    let states: Vec<(String, String)> = loaded["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["model_version"].as_str().unwrap().into(), v["state"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        states,
        [(production.clone(), "production".into()), (second_version.clone(), "loaded".into())]
    );
    // A variant answered by the second version.
    ok(
        addr,
        "PUT",
        "/v1/experiments/new-model",
        Some(&json!({ "placements": ["home"], "variants": [
            { "name": "current", "share": 1 },
            { "name": "candidate", "share": 1, "model": second_version }
        ]})),
    )
    .await;
    let mut answered: HashSet<(String, String)> = HashSet::new();
    for n in 0..40 {
        let answer = ok(
            addr,
            "POST",
            "/v1/recommendations",
            Some(&json!({ "identifiers": { "cookie_id": format!("r{n}") }, "channel": "web" })),
        )
        .await;
        let variant = answer["experiment"]["variant"].as_str().unwrap().to_string();
        answered.insert((variant, answer["model_version"].as_str().unwrap().to_string()));
    }
    assert_eq!(
        answered,
        [("current".to_string(), production.clone()), ("candidate".to_string(), second_version.clone())]
            .into()
    );
    // In use by a running experiment: not retired; stopped, it is, unless a scheduled one
    // names it too.
    let refused = send(addr, "POST", &format!("/v1/admin/models/{second_version}/retire"), None).await;
    assert_eq!(refused.status, 409);
    ok(addr, "POST", "/v1/experiments/new-model/stop", None).await;
    let next_week = datasets::schema::format_timestamp(cli::unix_now() + 7 * 86_400);
    let scheduled = json!({ "placements": ["home"], "start": next_week, "variants": [
        { "name": "current", "share": 1 }, { "name": "candidate", "share": 1, "model": second_version }
    ]});
    ok(addr, "PUT", "/v1/experiments/next-week", Some(&scheduled)).await;
    let refused = send(addr, "POST", &format!("/v1/admin/models/{second_version}/retire"), None).await;
    assert_eq!(refused.status, 409, "{}", String::from_utf8_lossy(&refused.body));
    ok(addr, "POST", "/v1/experiments/next-week/stop", None).await;
    ok(addr, "POST", &format!("/v1/admin/models/{second_version}/retire"), None).await;
    let models = ok(addr, "GET", "/v1/models", None).await;
    assert!(
        models["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["model_version"] == second_version.as_str() && v["state"] == "retired")
    );
    // Published into the inbox, it is loaded again within a few seconds; then promoted.
    let typo = trainer::PublishArgs { model: second.clone(), data_dir: state_dir.join("typo") };
    let refused = trainer::experiments::publish(&typo).unwrap_err().to_string();
    assert!(refused.contains("is not a server's data directory"), "{refused}");
    assert!(!state_dir.join("typo").exists());
    trainer::experiments::publish(&trainer::PublishArgs {
        model: second.clone(),
        data_dir: state_dir.clone(),
    })
    .unwrap();
    let mut back = false;
    for _ in 0..100 {
        let models = ok(addr, "GET", "/v1/models", None).await;
        if models["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["model_version"] == second_version.as_str() && v["state"] == "loaded")
        {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "the published artifact was not loaded");
    assert!(state_dir.join("models").join(format!("{second_version}.omr")).is_file());
    ok(addr, "POST", &format!("/v1/admin/models/{second_version}/promote"), None).await;
    let models = ok(addr, "GET", "/v1/models", None).await;
    assert_eq!(models["model_version"], second_version.as_str());
    let answer =
        ok(addr, "POST", "/v1/recommendations", Some(&json!({ "identifiers": { "cookie_id": "r1" } }))).await;
    assert_eq!(answer["model_version"], second_version.as_str());
    server.shutdown().await;
    // A restart with the first model given again: the registry loads the second beside it.
    let server = start(config(), HashMap::new()).await;
    let models = ok(&server.addr, "GET", "/v1/models", None).await;
    assert_eq!(models["model_version"], production.as_str());
    assert!(
        models["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["model_version"] == second_version.as_str() && v["state"] == "loaded"),
        "{models}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_trained_on_less_data_offers_nothing_production_knows_was_bought() {
    let dir = tempfile::tempdir().unwrap();
    // The production model's events without what some of its buyers bought under their user
    // id: a version that never saw those purchases (an older model, say).
    let production = &super::trained().engine;
    let data = super::trained().model.parent().unwrap().to_path_buf();
    let buyers: Vec<(String, HashSet<String>)> =
        super::buyers(3).into_iter().filter(|(key, _)| !key.contains(':')).take(80).collect();
    let cut: HashSet<&str> = buyers.iter().map(|(key, _)| key.as_str()).collect();
    let base = std::fs::read_to_string(data.join("events.jsonl")).unwrap();
    let kept: Vec<&str> = base
        .lines()
        .filter(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            let user = event["identifiers"]["user_id"].as_str().or(event["user_id"].as_str());
            !(event["type"] == "purchase" && user.is_some_and(|u| cut.contains(u)))
        })
        .collect();
    assert!(kept.len() < base.lines().count());
    let events = dir.path().join("older.jsonl");
    std::fs::write(&events, kept.join("\n") + "\n").unwrap();
    let older = train_version(dir.path(), "older", events, data.join("catalog.csv"));
    let older_engine = models::serve::engine::Engine::new(models::artifact::load(&older).unwrap());
    let version = older_engine.artifact().metadata.model_version.clone();
    // What only production knows each buyer holds.
    let unknown_to_older = |key: &str| -> HashSet<String> {
        let known = |engine: &models::serve::engine::Engine| -> HashSet<String> {
            engine.lookup(key).map_or_else(HashSet::new, |user| {
                let items = &engine.artifact().body.items;
                engine.consumed(user).iter().filter_map(|&(i, _)| items.id(i)).map(str::to_string).collect()
            })
        };
        known(production).difference(&known(&older_engine)).cloned().collect()
    };
    let (server, _) = serving_beside(dir.path(), &older).await;
    let addr = &server.addr;
    let experiment = json!({ "placements": ["home"], "variants": [
        { "name": "current", "share": 1 },
        { "name": "older", "share": 1, "model": version }
    ]});
    ok(addr, "PUT", "/v1/experiments/older-model", Some(&experiment)).await;
    // Another experiment on the same placement at the same time would get none of its
    // requests; one that ended before it was defined would never run.
    let rival = send(addr, "PUT", "/v1/experiments/rival", Some(&experiment)).await;
    assert_eq!(rival.status, 409, "{}", String::from_utf8_lossy(&rival.body));
    assert_eq!(rival.json()["error"]["field"], "placements[0]");
    let past = json!({ "placements": ["email_weekly"], "start": "2019-01-01T00:00:00Z", "end": "2020-01-01T00:00:00Z", "variants": [
        { "name": "a", "share": 1 }, { "name": "b", "share": 1, "popular": true }
    ]});
    let ended = send(addr, "PUT", "/v1/experiments/ended", Some(&past)).await;
    assert_eq!((ended.status, ended.json()["error"]["field"].clone()), (400, json!("end")));
    let ask = |key: &str| json!({ "identifiers": { "user_id": key }, "placement": "home", "k": 30 });
    let mut asked_older = 0;
    for (key, _) in &buyers {
        let answer = ok(addr, "POST", "/v1/recommendations", Some(&ask(key))).await;
        let only_production_knows = unknown_to_older(key);
        if answer["experiment"]["variant"] == "older" && !only_production_knows.is_empty() {
            asked_older += 1;
        }
        let offered: HashSet<String> = item_ids(&answer).into_iter().collect();
        let bought: Vec<&String> = offered.intersection(&only_production_knows).collect();
        assert!(bought.is_empty(), "{key} bought {bought:?} (production knows): {answer}");
    }
    assert!(asked_older >= 10, "{asked_older} buyers answered by the older version");
    // Promoted back (a rollback), the older version answers everyone; production stays
    // loaded, and what it knows still counts.
    ok(addr, "POST", "/v1/experiments/older-model/stop", None).await;
    ok(addr, "POST", &format!("/v1/admin/models/{version}/promote"), None).await;
    for (key, _) in &buyers {
        let answer = ok(addr, "POST", "/v1/recommendations", Some(&ask(key))).await;
        assert_eq!(answer["model_version"], version.as_str());
        let offered: HashSet<String> = item_ids(&answer).into_iter().collect();
        let bought: Vec<String> = offered.intersection(&unknown_to_older(key)).cloned().collect();
        assert!(bought.is_empty(), "{key} bought {bought:?} (the demoted version knows): {answer}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_reaches_what_a_version_beside_production_knows_of_the_person() {
    let dir = tempfile::tempdir().unwrap();
    // A version trained on more: the production model's events plus a device the person
    // used that production never saw.
    let data = super::trained().model.parent().unwrap().to_path_buf();
    let (person, _) = super::buyers(3).into_iter().find(|(key, _)| !key.contains(':')).unwrap();
    let item = super::trained().engine.artifact().body.items.id(0).unwrap().to_string();
    let mut events = std::fs::read_to_string(data.join("events.jsonl")).unwrap();
    for n in 0..3 {
        let seen = json!({"identifiers": {"user_id": person, "device_id": "tablet-only-v2-knows"},
            "channel": "app", "type": "view", "item_id": item, "timestamp": 1_700_000_000 + n});
        events.push_str(&format!("{seen}\n"));
    }
    let path = dir.path().join("wider.jsonl");
    std::fs::write(&path, events).unwrap();
    let wider = train_version(dir.path(), "wider", path, data.join("catalog.csv"));
    let (server, _) = serving_beside(dir.path(), &wider).await;
    let addr = &server.addr;
    let erased = ok(addr, "DELETE", &format!("/v1/profiles/user_id/{person}"), None).await;
    assert!(erased["identifiers"].as_u64().unwrap() >= 2, "{erased}");
    // The device only the other version knows is erased with the person: its late events
    // are refused like any other of theirs.
    let late = json!({"events": [{"device_id": "tablet-only-v2-knows", "channel": "app", "type": "view",
        "item_id": item, "timestamp": 1_700_000_100}]});
    let answer = ok(addr, "POST", "/v1/events", Some(&late)).await;
    assert_eq!(answer["accepted"], 0, "{answer}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_only_a_version_beside_production_knows_is_changed_and_deleted_as_that_item() {
    let dir = tempfile::tempdir().unwrap();
    // A version trained with one more item than production: a copy of the first catalog row
    // under a new id, viewed by a few persons.
    let data = super::trained().model.parent().unwrap().to_path_buf();
    let catalog = std::fs::read_to_string(data.join("catalog.csv")).unwrap();
    let first = catalog.lines().nth(1).unwrap();
    let id = first.split(',').next().unwrap();
    let extra = first.replacen(id, "only-v2", 1);
    std::fs::write(dir.path().join("catalog.csv"), format!("{}{extra}\n", catalog)).unwrap();
    let mut events = std::fs::read_to_string(data.join("events.jsonl")).unwrap();
    let accounts = super::buyers(1).into_iter().filter(|(key, _)| !key.contains(':'));
    for (n, (person, _)) in accounts.take(20).enumerate() {
        let seen = json!({"identifiers": {"user_id": person}, "channel": "web", "type": "view",
            "item_id": "only-v2", "timestamp": 1_700_000_000 + n as i64});
        events.push_str(&format!("{seen}\n"));
    }
    std::fs::write(dir.path().join("wider.jsonl"), events).unwrap();
    let wider =
        train_version(dir.path(), "wider", dir.path().join("wider.jsonl"), dir.path().join("catalog.csv"));
    assert!(super::trained().engine.catalog().get("only-v2").is_none());
    let (server, version) = serving_beside(dir.path(), &wider).await;
    let addr = &server.addr;
    let item_of = |state: &server::state::AppState| {
        let versions = state.versions.load();
        let catalog = &versions[&version].view.catalog;
        catalog.get("only-v2").and_then(|i| catalog.item(i.get())).cloned()
    };
    let categories = item_of(&server.state).unwrap().categories;
    assert!(!categories.is_empty());
    // A price change keeps what the version knows of it (not a blank new item's fields).
    let priced =
        ok(addr, "PUT", "/v1/items", Some(&json!({ "items": [{ "item_id": "only-v2", "price": 20 }] })))
            .await;
    assert_eq!(priced["updated"], 1, "{priced}");
    let item = item_of(&server.state).unwrap();
    assert_eq!((item.price, item.categories), (Some(20.0), categories));
    // And it can be deleted.
    let deleted = ok(addr, "DELETE", "/v1/items/only-v2", None).await;
    assert_eq!(deleted["status"], "deleted");
    server.shutdown().await;
}

/// A model version trained with the tests' config on `events` and `items`, written as
/// `dir/NAME.omr`.
fn train_version(dir: &Path, name: &str, events: PathBuf, items: PathBuf) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(&config, super::common::CONFIG).unwrap();
    let out = dir.join(format!("{name}.omr"));
    trainer::commands::train(&trainer::TrainArgs {
        data: trainer::DataArgs { interactions: None, events: Some(events) },
        from_export: None,
        items: Some(items),
        config: Some(config),
        out: out.clone(),
        skip_invalid: false,
    })
    .unwrap();
    out
}

/// A server on the test model with a data directory in `dir`, and the version at `path`
/// loaded beside production; the loaded version's name.
async fn serving_beside(dir: &Path, path: &Path) -> (super::Running, String) {
    let server = start(super::live::live_config(dir), HashMap::new()).await;
    let loaded = ok(&server.addr, "POST", "/v1/admin/models", Some(&json!({ "path": path }))).await;
    let version = loaded["model_version"].as_str().unwrap().to_string();
    (server, version)
}

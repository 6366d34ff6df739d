//! A/B experiments end to end over a real socket: a model trained without each person's
//! future, a trained blend against a popular-items control on live traffic from several
//! channels, outcomes sent back (some on another channel than the exposure), and the report;
//! a skewed split; the same person across channels and through a login; the registry; the
//! dashboard.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use datasets::schema::{Event, EventType, Identifier, IdentifierKind};
use datasets::synthetic::{SyntheticConfig, SyntheticData};
use serde_json::{Value, json};
use server::client::{Connection, Reply};
use server::config::ServerConfig;

use super::start;

pub(super) async fn send(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Reply {
    let text = body.map(Value::to_string);
    Connection::open(addr).await.unwrap().send(method, path, None, text.as_deref()).await.unwrap()
}

pub(super) async fn ok(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let reply = send(addr, method, path, body).await;
    assert_eq!(reply.status, 200, "{method} {path}: {}", String::from_utf8_lossy(&reply.body));
    reply.json()
}

/// One true person of the synthetic data: their identifiers by kind (raw values), and the
/// items they will buy or look at after training (their future).
struct Person {
    ids: BTreeMap<IdentifierKind, String>,
    future: HashSet<String>,
}

/// Synthetic omnichannel data with each person's last third of item events held out as their
/// future; a model trained on the rest, saved in `dir`.
fn trained_without_the_future(dir: &Path) -> (PathBuf, Vec<Person>) {
    let synthetic = SyntheticData::generate(SyntheticConfig {
        n_persons: 3_000,
        n_items: 500,
        seed: 23,
        ..Default::default()
    })
    .unwrap();
    // Hashed identifier key -> true person, and raw identifiers per true person.
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut ids: BTreeMap<String, BTreeMap<IdentifierKind, String>> = BTreeMap::new();
    for (raw, person) in synthetic.truth() {
        let Some((kind, value)) = raw.split_once(':') else { continue };
        let (Some(kind), true) = (IdentifierKind::parse(kind), person != "shared") else { continue };
        let Some(identifier) = Identifier::new(kind, value) else { continue };
        owner.insert(identifier.key(), person.clone());
        ids.entry(person.clone()).or_default().entry(kind).or_insert_with(|| value.to_string());
    }
    let events = synthetic.events();
    let person_of = |e: &Event| e.identifiers.iter().find_map(|i| owner.get(&i.key()).cloned());
    let mut item_events: BTreeMap<String, Vec<(i64, usize)>> = BTreeMap::new();
    for (n, e) in events.iter().enumerate() {
        if let (Some(person), Some(_)) = (person_of(e), &e.item_id) {
            item_events.entry(person).or_default().push((e.timestamp, n));
        }
    }
    let mut held_out: HashSet<usize> = HashSet::new();
    let mut future: HashMap<String, HashSet<String>> = HashMap::new();
    for (person, mut list) in item_events {
        list.sort();
        let keep = list.len() - list.len() / 3;
        for &(_, n) in &list[keep..] {
            held_out.insert(n);
            let event = &events[n];
            if event.event_type == EventType::Purchase {
                future.entry(person.clone()).or_default().insert(event.item_id.clone().unwrap());
            }
        }
    }
    let past: Vec<Event> =
        events.iter().enumerate().filter(|(n, _)| !held_out.contains(n)).map(|(_, e)| e.clone()).collect();
    let config = models::train::config::TrainConfig::default();
    let dataset = datasets::dataset::Dataset::from_events(
        &past,
        Some(synthetic.catalog.clone()),
        &config.weights,
        &config.identity,
    )
    .unwrap();
    let mut quick = config.clone();
    quick.als.factors = 16;
    quick.blend.max_tuning_users = 300;
    let trained = models::train::train(&dataset, &quick, &models::progress::Silent).unwrap();
    let artifact = models::artifact::Artifact::assemble(&dataset, trained, &quick, cli::unix_now());
    let path = dir.join("future-blind.omr");
    models::artifact::save(&artifact, &path).unwrap();
    let persons = ids
        .into_iter()
        .filter_map(|(person, ids)| {
            let future = future.remove(&person)?;
            Some(Person { ids, future })
        })
        .collect();
    (path, persons)
}

fn identifiers(person: &Person, kind: IdentifierKind) -> Option<Value> {
    person.ids.get(&kind).map(|value| json!({ kind.as_str(): value }))
}

pub(super) fn item_ids(answer: &Value) -> Vec<String> {
    answer["items"].as_array().unwrap().iter().map(|i| i["item_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trained_blend_beats_the_popular_control_across_channels() {
    let dir = tempfile::tempdir().unwrap();
    let (model, persons) = trained_without_the_future(dir.path());
    let config = ServerConfig {
        model: Some(model),
        data_dir: Some(dir.path().join("state")),
        ..ServerConfig::default()
    };
    let server = start(config, HashMap::new()).await;
    let addr = &server.addr;
    let start_at = cli::unix_now() - 5;
    let defined = ok(
        addr,
        "PUT",
        "/v1/experiments/blend-vs-popular",
        Some(&json!({
            "placements": ["home", "app_home", "email_weekly"],
            "variants": [
                { "name": "popular", "share": 1, "popular": true },
                { "name": "blend", "share": 1 }
            ],
            "start": start_at.to_string(),
            "guardrails": ["click_through_rate", "revenue_per_person"]
        })),
    )
    .await;
    assert_eq!(defined["state"], "running", "{defined}");
    // A running experiment's shares cannot change.
    let changed = send(
        addr,
        "PUT",
        "/v1/experiments/blend-vs-popular",
        Some(&json!({
            "placements": ["home"],
            "variants": [{ "name": "popular", "share": 3, "popular": true }, { "name": "blend", "share": 1 }],
            "start": start_at.to_string()
        })),
    )
    .await;
    assert_eq!(changed.status, 409, "{:?}", changed.body);

    // Every person asks on one channel under that channel's identifier; what they will buy
    // anyway (their future) and are shown, they click and buy: on the same channel naming
    // the recommendation, or in the store with their card (cross-channel, by the window).
    let channels = [
        ("home", "web", IdentifierKind::CookieId),
        ("app_home", "app", IdentifierKind::DeviceId),
        ("email_weekly", "email", IdentifierKind::Email),
    ];
    let mut variant_of: HashMap<usize, String> = HashMap::new();
    let mut person_of: HashMap<usize, Value> = HashMap::new();
    let mut outcomes = Vec::new();
    let mut shown_future = HashMap::<String, usize>::new();
    for (n, person) in persons.iter().enumerate() {
        let (placement, channel, kind) = channels[n % channels.len()];
        let Some(ids) = identifiers(person, kind).or_else(|| identifiers(person, IdentifierKind::Email))
        else {
            continue;
        };
        let answer = ok(
            addr,
            "POST",
            "/v1/recommendations",
            Some(&json!({ "identifiers": ids, "placement": placement, "channel": channel, "k": 4 })),
        )
        .await;
        let variant =
            answer["experiment"]["variant"].as_str().unwrap_or_else(|| panic!("{answer}")).to_string();
        assert_eq!(answer["experiment"]["name"], "blend-vs-popular");
        variant_of.insert(n, variant.clone());
        person_of.insert(n, answer["person_id"].clone());
        let recommendation = answer["recommendation_id"].as_str().unwrap().to_string();
        for item in item_ids(&answer).into_iter().filter(|i| person.future.contains(i)) {
            *shown_future.entry(variant.clone()).or_default() += 1;
            let t = cli::unix_now();
            outcomes.push(json!({ "identifiers": ids, "channel": channel, "type": "click", "item_id": item,
                "timestamp": t, "recommendation_id": recommendation }));
            let in_store = n % 2 == 0 && person.ids.contains_key(&IdentifierKind::LoyaltyId);
            if in_store {
                let card = identifiers(person, IdentifierKind::LoyaltyId).unwrap();
                outcomes.push(json!({ "identifiers": card, "channel": "store", "type": "purchase",
                    "item_id": item, "timestamp": t, "value": 25.0, "store_id": "s1" }));
            } else {
                outcomes.push(
                    json!({ "identifiers": ids, "channel": channel, "type": "purchase", "item_id": item,
                    "timestamp": t, "value": 25.0, "recommendation_id": recommendation }),
                );
            }
        }
    }
    assert!(variant_of.len() >= 400, "{} persons asked", variant_of.len());
    // The events API takes identifiers flat, by kind.
    let flat: Vec<Value> = outcomes
        .into_iter()
        .map(|mut o| {
            let ids = o["identifiers"].take();
            let object = o.as_object_mut().unwrap();
            object.remove("identifiers");
            for (kind, value) in ids.as_object().unwrap() {
                object.insert(kind.clone(), value.clone());
            }
            o
        })
        .collect();
    for chunk in flat.chunks(500) {
        let answer = ok(addr, "POST", "/v1/events", Some(&json!({ "events": chunk }))).await;
        assert_eq!(answer["accepted"].as_u64(), Some(chunk.len() as u64), "{answer}");
    }

    let report = ok(addr, "GET", "/v1/experiments/blend-vs-popular/report", None).await;
    let text = server::report::render(&report);
    eprintln!("{text}");
    if let Some(out) = std::env::var_os("OMNIREC_REPORT_OUT") {
        std::fs::write(out, &text).unwrap();
    }
    assert_eq!(report["srm_warning"], false, "{report}");
    let variants = report["variants"].as_array().unwrap();
    let (popular, blend) = (&variants[0], &variants[1]);
    assert_eq!((popular["name"].as_str(), popular["control"].as_bool()), (Some("popular"), Some(true)));
    let persons_in = popular["persons"].as_u64().unwrap() + blend["persons"].as_u64().unwrap();
    assert_eq!(persons_in, variant_of.len() as u64);
    assert!(blend["conversion_rate"].as_f64() > popular["conversion_rate"].as_f64(), "{report}");
    let primary = &report["comparisons"][0];
    assert_eq!(
        (primary["metric"].as_str(), primary["variant"].as_str()),
        (Some("conversion_rate"), Some("blend"))
    );
    assert!(primary["relative"]["lower"].as_f64().unwrap() > 0.0, "{primary}");
    assert_eq!(primary["significant"], true, "{primary}");
    // Purchases in the store of items shown on the web, the app or by email: cross-channel.
    assert!(report["cross_channel"].as_u64().unwrap() > 0, "{report}");
    assert!(blend["cross_channel_purchases"].as_u64().unwrap() > 0, "{report}");
    assert!(blend["channels"]["email"]["persons"].as_u64().unwrap() > 0);

    // The same person asks again on every channel they have: the same variant each time,
    // whenever the identity graph knows the channel's identifier to be theirs.
    let mut checked = 0;
    for (n, person) in persons.iter().enumerate().take(150) {
        let (Some(variant), Some(person_id)) = (variant_of.get(&n), person_of.get(&n)) else { continue };
        for (placement, channel, kind) in channels {
            let Some(ids) = identifiers(person, kind) else { continue };
            let answer = ok(
                addr,
                "POST",
                "/v1/recommendations",
                Some(&json!({ "identifiers": ids, "placement": placement, "channel": channel })),
            )
            .await;
            if &answer["person_id"] == person_id {
                assert_eq!(answer["experiment"]["variant"].as_str(), Some(variant.as_str()), "{answer}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 150, "only {checked} answers on a person's other channels");
    // An anonymous visitor keeps their variant through a login under a new account.
    let mut anonymous = HashMap::new();
    for visitor in 0..40 {
        let cookie = format!("c-new-{visitor}");
        let answer = ok(
            addr,
            "POST",
            "/v1/recommendations",
            Some(&json!({ "identifiers": { "cookie_id": cookie }, "channel": "web" })),
        )
        .await;
        anonymous.insert(cookie, answer["experiment"]["variant"].as_str().unwrap().to_string());
    }
    let logins: Vec<Value> = anonymous
        .keys()
        .map(|cookie| {
            json!({ "cookie_id": cookie, "user_id": format!("u-new-{cookie}"), "channel": "web",
            "type": "login", "timestamp": cli::unix_now() })
        })
        .collect();
    ok(addr, "POST", "/v1/events", Some(&json!({ "events": logins }))).await;
    let mut seen = HashSet::new();
    for (cookie, variant) in &anonymous {
        seen.insert(variant.clone());
        let answer = ok(
            addr,
            "POST",
            "/v1/recommendations",
            Some(&json!({ "identifiers": { "user_id": format!("u-new-{cookie}") }, "channel": "app", "placement": "app_home" })),
        )
        .await;
        assert_eq!(answer["person_id"], format!("u-new-{cookie}"));
        assert_eq!(answer["experiment"]["variant"].as_str(), Some(variant.as_str()), "{answer}");
    }
    assert_eq!(seen.len(), 2, "40 visitors all in one variant");

    // The dashboard shows each experiment (their rows from one scan of the event log): this
    // one with a chart of one mark per variant, and a second one on another placement that
    // nobody was exposed to yet.
    let second = json!({
        "placements": ["product_page"],
        "variants": [{ "name": "a", "share": 1 }, { "name": "b", "share": 1 }]
    });
    ok(addr, "PUT", "/v1/experiments/similar-test", Some(&second)).await;
    let page = send(addr, "GET", "/dashboard", None).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(html.contains(r#"data-experiment="blend-vs-popular""#));
    assert!(html.contains(r#"data-experiment="similar-test""#), "{html}");
    let first = &html[..html.find(r#"data-experiment="similar-test""#).unwrap()];
    assert_eq!(first.matches(r#"class="variant-mark""#).count(), 2, "{html}");
    assert!(html.contains("Sample ratio OK"));
    if let Some(out) = std::env::var_os("OMNIREC_DASHBOARD_OUT") {
        std::fs::write(out, &html).unwrap();
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_split_raises_the_sample_ratio_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { data_dir: Some(dir.path().join("state")), ..ServerConfig::default() };
    let server = start(config, HashMap::new()).await;
    let addr = &server.addr;
    let definition = json!({
        "placements": ["email_weekly"],
        "variants": [{ "name": "a", "share": 1 }, { "name": "b", "share": 1 }]
    });
    ok(addr, "PUT", "/v1/experiments/skewed", Some(&definition)).await;
    // Placeholder values identify nobody: answered outside the experiment (unrecorded, every
    // such visitor would share one variant).
    let guest = json!({ "identifiers": { "user_id": "guest" }, "placement": "email_weekly" });
    let guest = ok(addr, "POST", "/v1/recommendations", Some(&guest)).await;
    assert!(guest.get("experiment").is_none(), "{guest}");
    // An email sender that drops a fifth of variant b's sends: 500 against 400 persons.
    let exposures: Vec<Value> = (0..900)
        .map(|n| {
            json!({ "recommendation_id": format!("batch-{n}"), "experiment": "skewed",
                "variant": if n < 500 { "a" } else { "b" }, "identifiers": { "email": format!("p{n}@example.com") },
                "channel": "email", "items": ["i1"] })
        })
        .collect();
    let recorded = ok(addr, "POST", "/v1/exposures", Some(&json!({ "exposures": exposures }))).await;
    assert_eq!(recorded["results"].as_array().unwrap().len(), 900);
    let again = ok(addr, "POST", "/v1/exposures", Some(&json!({ "exposures": [exposures[0]] }))).await;
    assert_eq!(again["results"][0], "duplicate");
    // Nothing is kept about an erased person, nor measured of one who refused analytics.
    let t = cli::unix_now();
    let known = json!([{ "email": "gone@example.com", "channel": "web", "type": "view", "item_id": "i1", "timestamp": t },
        { "email": "private@example.com", "channel": "web", "type": "view", "item_id": "i1", "timestamp": t }]);
    ok(addr, "POST", "/v1/events", Some(&json!({ "events": known }))).await;
    ok(addr, "DELETE", "/v1/profiles/email/gone@example.com", None).await;
    ok(addr, "PUT", "/v1/profiles/email/private@example.com/consent", Some(&json!({ "analytics": false })))
        .await;
    let refused: Vec<Value> = ["gone@example.com", "private@example.com"]
        .iter()
        .map(|email| {
            json!({ "recommendation_id": format!("batch-{email}"), "experiment": "skewed", "variant": "a",
            "identifiers": { "email": email }, "channel": "email", "items": ["i1"] })
        })
        .collect();
    let answer = ok(addr, "POST", "/v1/exposures", Some(&json!({ "exposures": refused }))).await;
    assert_eq!(answer["results"], json!(["erased", "no_consent"]));
    // The address comes back as someone new: a send after that is theirs, one dated before
    // the erasure stays the erased person's.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let back = json!([{ "email": "gone@example.com", "channel": "web", "type": "view", "item_id": "i1", "timestamp": cli::unix_now() }]);
    ok(addr, "POST", "/v1/events", Some(&json!({ "events": back }))).await;
    let exposure = |id: &str, at: i64| {
        json!({ "recommendation_id": id, "experiment": "skewed", "variant": "a", "channel": "email",
            "identifiers": { "email": "gone@example.com" }, "items": ["i1"],
            "at": datasets::schema::format_timestamp(at) })
    };
    let sent = json!({ "exposures": [exposure("late-before", t), exposure("after", cli::unix_now())] });
    let answer = ok(addr, "POST", "/v1/exposures", Some(&sent)).await;
    assert_eq!(answer["results"], json!(["erased", "recorded"]));
    // A consent change is no coming back; nor is another person named beside the address.
    ok(addr, "DELETE", "/v1/profiles/email/private@example.com", None).await;
    ok(addr, "PUT", "/v1/profiles/email/private@example.com/consent", Some(&json!({ "analytics": true })))
        .await;
    let beside = json!({ "recommendation_id": "beside", "experiment": "skewed", "variant": "a", "channel": "email",
        "identifiers": { "email": "private@example.com", "cookie_id": "c-other" }, "items": ["i1"] });
    ok(addr, "POST", "/v1/events", Some(&json!({ "events": [{ "cookie_id": "c-other", "channel": "web", "type": "view", "item_id": "i1", "timestamp": cli::unix_now() }] }))).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let consented = json!({ "recommendation_id": "consented", "experiment": "skewed", "variant": "a",
        "channel": "email", "identifiers": { "email": "private@example.com" }, "items": ["i1"] });
    let sent = json!({ "exposures": [consented, beside] });
    let answer = ok(addr, "POST", "/v1/exposures", Some(&sent)).await;
    assert_eq!(answer["results"], json!(["erased", "erased"]));
    // Sends to nobody (placeholder values), or dated before the experiment or in the future,
    // are refused naming the field.
    let placeholder = json!({ "exposures": [{ "recommendation_id": "p", "experiment": "skewed", "variant": "a",
        "channel": "email", "identifiers": { "user_id": "guest" }, "items": ["i1"] }] });
    let refused = send(addr, "POST", "/v1/exposures", Some(&placeholder)).await;
    assert_eq!(
        (refused.status, refused.json()["error"]["field"].clone()),
        (400, json!("exposures[0].identifiers"))
    );
    for at in [t - 100 * 86_400, t + 365 * 86_400] {
        let refused =
            send(addr, "POST", "/v1/exposures", Some(&json!({ "exposures": [exposure("odd", at)] }))).await;
        assert_eq!(
            (refused.status, refused.json()["error"]["field"].clone()),
            (400, json!("exposures[0].at"))
        );
    }
    let report = ok(addr, "GET", "/v1/experiments/skewed/report", None).await;
    assert_eq!(report["srm_warning"], true, "{report}");
    // A person who withdraws analytics after being exposed is no longer measured.
    let persons = |r: &Value| r["variants"][0]["persons"].as_u64().unwrap();
    let withdrawn = json!({ "analytics": false });
    ok(addr, "PUT", "/v1/profiles/email/p0@example.com/consent", Some(&withdrawn)).await;
    let without = ok(addr, "GET", "/v1/experiments/skewed/report", None).await;
    assert_eq!(persons(&without), persons(&report) - 1, "{without}");
    assert!(report["srm"]["p_value"].as_f64().unwrap() < 0.001);
    assert!(report["notes"][0].as_str().unwrap().starts_with("sample-ratio mismatch"));
    let page = send(addr, "GET", "/dashboard", None).await;
    assert!(String::from_utf8_lossy(&page.body).contains("srm-warning"));
    // Stopped, the placement answers without the experiment; the name is not reused.
    ok(addr, "POST", "/v1/experiments/skewed/stop", None).await;
    // A send made before the stop and reported late is part of it; one made after is not.
    let late = |id: &str, at: i64| {
        json!({ "exposures": [{ "recommendation_id": id, "experiment": "skewed", "variant": "b", "channel": "email",
            "identifiers": { "email": "late@example.com" }, "items": ["i1"], "at": datasets::schema::format_timestamp(at) }] })
    };
    let before_stop = ok(addr, "POST", "/v1/exposures", Some(&late("before-stop", t))).await;
    assert_eq!(before_stop["results"][0], "recorded", "{before_stop}");
    let after_stop =
        send(addr, "POST", "/v1/exposures", Some(&late("after-stop", cli::unix_now() + 1))).await;
    assert_eq!(
        (after_stop.status, after_stop.json()["error"]["field"].clone()),
        (400, json!("exposures[0].at")),
        "{}",
        String::from_utf8_lossy(&after_stop.body)
    );
    let answer = ok(
        addr,
        "POST",
        "/v1/recommendations",
        Some(&json!({ "identifiers": { "email": "p1@example.com" }, "placement": "email_weekly" })),
    )
    .await;
    assert!(answer.get("experiment").is_none(), "{answer}");
    let reused = send(addr, "PUT", "/v1/experiments/skewed", Some(&definition)).await;
    assert_eq!(reused.status, 409);
    server.shutdown().await;
}

#[test]
fn compare_and_batch_recommendations_take_part_in_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let model = &super::trained().model;
    let (_, second) = super::common::setup_seeded(&dir.path().join("second"), 12);
    let engine = &super::trained().engine;
    let body = &engine.artifact().body;
    // Held-out purchases: three items outside each of 200 persons' histories.
    let mut test = String::new();
    let mut users = String::from("user_id\n");
    for u in 0..200u32 {
        let key = body.users.id(u).unwrap();
        let history: HashSet<u32> = engine.history(datasets::UserIdx(u)).iter().map(|(i, _)| i.0).collect();
        let identifier = match key.split_once(':') {
            Some((kind, value)) => format!("\"{kind}\":\"{value}\""),
            None => format!("\"user_id\":\"{key}\""),
        };
        for item in (0..body.items.len() as u32)
            .filter(|i| !history.contains(i))
            .skip(u as usize % 7)
            .step_by(11)
            .take(3)
        {
            let item = body.items.id(item).unwrap();
            test.push_str(&format!("{{{identifier},\"channel\":\"web\",\"type\":\"purchase\",\"item_id\":\"{item}\",\"timestamp\":1700000000}}\n"));
        }
        users.push_str(key);
        users.push('\n');
    }
    let test_path = dir.path().join("test.jsonl");
    std::fs::write(&test_path, test).unwrap();
    let args = |a: &Path, b: &Path| trainer::CompareArgs {
        a: a.to_path_buf(),
        b: b.to_path_buf(),
        test: test_path.clone(),
        items: None,
        k: 10,
        exact: None,
        json: false,
        skip_invalid: false,
    };
    let same = trainer::experiments::compare(&args(model, model)).unwrap();
    assert!(same.persons >= 150, "{} persons", same.persons);
    assert_eq!(same.overlap, 1.0);
    for m in &same.metrics {
        assert_eq!((m.difference, m.lower, m.upper), (0.0, 0.0, 0.0), "{}", m.metric);
    }
    let other = trainer::experiments::compare(&args(model, &second)).unwrap();
    assert!(other.overlap < 1.0, "another version, the same lists");
    let ndcg = other.metrics.iter().find(|m| m.metric == "ndcg").unwrap();
    assert!(ndcg.lower <= ndcg.difference && ndcg.difference <= ndcg.upper);
    assert!((ndcg.b - ndcg.a - ndcg.difference).abs() < 1e-9);

    // The batch: variants by the server's hash, the popular control answered by popularity.
    let experiment = dir.path().join("experiment.json");
    std::fs::write(
        &experiment,
        json!({ "definition": { "name": "email-test", "placements": ["email_weekly"], "start": "1970-01-01T00:00:00Z", "variants": [
            { "name": "popular", "share": 1, "popular": true }, { "name": "blend", "share": 1 }
        ]}})
        .to_string(),
    )
    .unwrap();
    let users_path = dir.path().join("users.txt");
    std::fs::write(&users_path, users).unwrap();
    let out = dir.path().join("batch.tsv");
    trainer::commands::recommend(&trainer::RecommendArgs {
        model: model.clone(),
        users: users_path,
        k: 5,
        out: out.clone(),
        experiment: Some(experiment.clone()),
        variant_model: Vec::new(),
        suppressed_from: None,
    })
    .unwrap();
    // The server's form dates the start in RFC 3339.
    let definition = trainer::experiments::read_experiment(&experiment).unwrap();
    assert_eq!(definition.start, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut distinct: HashMap<String, HashSet<String>> = HashMap::new();
    let mut rows: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<String> = line.split('\t').map(String::from).collect();
        assert_eq!(cols.len(), 7, "{line}");
        rows.entry(cols[0].clone()).or_default().push(cols);
    }
    for (user, lines) in &rows {
        let key = body.users.id(engine.lookup(user).unwrap().0).unwrap();
        let variant = &definition.variants[models::experiment::assign::assign(&definition, key)].name;
        assert!(lines.iter().all(|l| &l[5] == variant && l[4] == "email-test"), "{user}");
        let recommendation: HashSet<&String> = lines.iter().map(|l| &l[6]).collect();
        assert_eq!(recommendation.len(), 1);
        distinct.entry(variant.clone()).or_default().extend(lines.iter().map(|l| l[1].clone()));
    }
    assert!(rows.values().any(|l| l[0][5] == "blend") && rows.values().any(|l| l[0][5] == "popular"));
    // Popular answers differ only by what each person bought: far fewer distinct items.
    let (popular, blend) = (distinct["popular"].len(), distinct["blend"].len());
    assert!(popular * 2 < blend, "{popular} distinct popular items, {blend} blended");
    let exposures = std::fs::read_to_string(format!("{}.exposures.jsonl", out.display())).unwrap();
    assert_eq!(exposures.lines().count(), rows.len());
    let first: Value = serde_json::from_str(exposures.lines().next().unwrap()).unwrap();
    assert_eq!(first["experiment"], "email-test");
    assert_eq!(first["channel"], "email");

    // A variant answered by another model (trained on other data, so it never saw what the
    // production model knows these persons bought): the production model's purchases are
    // never offered either.
    let second_version = models::artifact::load_metadata(&second).unwrap().model_version;
    std::fs::write(
        &experiment,
        json!({ "definition": { "name": "model-test", "placements": ["email_weekly"], "start": 0, "variants": [
            { "name": "a", "share": 1 }, { "name": "b", "share": 1, "model": second_version }
        ]}})
        .to_string(),
    )
    .unwrap();
    trainer::commands::recommend(&trainer::RecommendArgs {
        model: model.clone(),
        users: dir.path().join("users.txt"),
        k: 20,
        out: out.clone(),
        experiment: Some(experiment.clone()),
        variant_model: vec![format!("{second_version}={}", second.display())],
        suppressed_from: None,
    })
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut by_second = 0;
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let user = engine.lookup(cols[0]).unwrap();
        let bought: HashSet<&str> =
            engine.consumed(user).iter().map(|&(i, _)| body.items.id(i).unwrap()).collect();
        assert!(!bought.contains(cols[1]), "{line}: bought, as the production model knows");
        by_second += usize::from(cols[5] == "b");
    }
    assert!(by_second > 0, "some persons were answered by the second model");
}

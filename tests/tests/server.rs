//! End to end over a real socket: synthetic data → trainer → artifact → server on an
//! ephemeral port → HTTP requests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use models::artifact;
use models::serve::engine::Engine;
use models::serve::rules::{Boost, Pin, PlacementConfig, PlacementKind, StockRule};
use serde_json::Value;
use server::client::{Connection, Reply};
use server::config::{KeyConfig, ServerConfig, default_placements};
use server::state::AppState;

#[path = "batch.rs"]
mod batch;
mod common;
#[path = "crash.rs"]
mod crash;
#[path = "experiments.rs"]
mod experiments;
#[path = "hardening.rs"]
mod hardening;
#[path = "live.rs"]
mod live;
#[path = "privacy.rs"]
mod privacy;
#[path = "registry.rs"]
mod registry;

/// One trained artifact shared by every test of this file.
struct Trained {
    _dir: tempfile::TempDir,
    model: PathBuf,
    engine: Engine,
}

fn trained() -> &'static Trained {
    static TRAINED: OnceLock<Trained> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (_, model) = common::setup(dir.path());
        let engine = Engine::new(artifact::load(&model).unwrap());
        Trained { _dir: dir, model, engine }
    })
}

/// A running server; dropped, it shuts down.
struct Running {
    addr: String,
    state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<server::Result<()>>>,
}

impl Running {
    /// Stops the server and waits until its state (and so its store) is gone, as a process
    /// that exits would leave it.
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        let state = Arc::downgrade(&self.state);
        drop(self);
        for _ in 0..200 {
            if state.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the server's state outlived its shutdown");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(mut config: ServerConfig, env: HashMap<String, String>) -> Running {
    config.model.get_or_insert_with(|| trained().model.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let state = AppState::new(config, move |name| env.get(name).cloned()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, Arc::clone(&state), async move {
        let _ = stopped.await;
    }));
    Running { addr, state, stop: Some(stop), task: Some(task) }
}

async fn get(addr: &str, path: &str) -> Reply {
    Connection::open(addr).await.unwrap().send("GET", path, None, None).await.unwrap()
}

async fn post(addr: &str, path: &str, body: &str) -> Reply {
    Connection::open(addr).await.unwrap().send("POST", path, None, Some(body)).await.unwrap()
}

fn item_ids(reply: &Reply) -> Vec<String> {
    let json = reply.json();
    json["items"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_string())
        .collect()
}

/// Persons with at least `min` consumed items, with their keys and consumed item ids.
fn buyers(min: usize) -> Vec<(String, HashSet<String>)> {
    let body = &trained().engine.artifact().body;
    (0..body.users.len())
        .filter_map(|u| {
            let consumed = trained().engine.consumed(datasets::UserIdx(u as u32));
            (consumed.len() >= min).then(|| {
                let key = body.users.id(u as u32).unwrap().to_string();
                let items = consumed.iter().map(|&(i, _)| body.items.id(i).unwrap().to_string()).collect();
                (key, items)
            })
        })
        .collect()
}

fn catalog_item(id: &str) -> &'static datasets::schema::Item {
    let body = &trained().engine.artifact().body;
    &body.catalog[body.items.get(id).unwrap() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_what_every_trained_person_a_request_names_bought_is_excluded() {
    let server = start(ServerConfig::default(), HashMap::new()).await;
    let body = &trained().engine.artifact().body;
    let all = buyers(1);
    let (account, bought) = all.iter().find(|(key, _)| !key.contains(':')).unwrap();
    // Another trained person, named by a card or a cookie, who bought what the account did not.
    let (other, theirs) = body
        .aliases
        .iter()
        .filter_map(|(key, &person)| {
            use datasets::schema::{Identifier, IdentifierKind};
            let identifier = Identifier::parse_key(key)?;
            let kind_ok = !matches!(
                identifier.kind,
                IdentifierKind::UserId | IdentifierKind::Email | IdentifierKind::Phone
            );
            let name = body.users.id(person)?;
            let (_, held) = all.iter().find(|(k, _)| k == name)?;
            let theirs: Vec<String> = held.iter().filter(|i| !bought.contains(*i)).cloned().collect();
            (kind_ok && name != account && !theirs.is_empty()).then_some((identifier, theirs))
        })
        .next()
        .expect("another trained buyer named by a card or cookie");
    let ask =
        serde_json::json!({"identifiers": {"user_id": account, other.kind.as_str(): other.value}, "k": 100});
    let answer = live::recommend(&server.addr, ask).await;
    let offered: Vec<String> = live::ids(&answer).into_iter().filter(|i| theirs.contains(i)).collect();
    assert!(offered.is_empty(), "{other:?} bought {offered:?}: {answer}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_persons_get_personalized_items_they_never_bought() {
    let server = start(ServerConfig::default(), HashMap::new()).await;
    let people = buyers(2);
    assert!(people.len() > 50);
    for (key, bought) in people.iter().take(60) {
        let reply = get(&server.addr, &format!("/v1/users/{key}/recommendations?placement=home&k=10")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let json = reply.json();
        assert_eq!(json["personalized"], true);
        assert_eq!(json["placement"], "home");
        assert!(json["recommendation_id"].as_str().is_some_and(|id| id.len() == 36));
        let items = item_ids(&reply);
        assert_eq!(items.len(), 10);
        assert!(items.iter().all(|i| !bought.contains(i)), "{key} was offered something they bought");
        let first = &json["items"][0]["explanation"];
        assert!(first["models"].as_array().is_some_and(|m| !m.is_empty()));
        assert!(!first["text"].as_str().unwrap().is_empty());
    }
    // Any identifier of the person works, through POST too.
    let body = &trained().engine.artifact().body;
    let (alias, &person) = body.aliases.iter().find(|(k, _)| k.starts_with("loyalty_id:")).unwrap();
    let card = alias.trim_start_matches("loyalty_id:");
    let by_post = post(
        &server.addr,
        "/v1/recommendations",
        &format!(r#"{{"identifiers": {{"loyalty_id": "{card}"}}, "placement": "home", "k": 5}}"#),
    )
    .await;
    let by_get = get(
        &server.addr,
        &format!("/v1/users/{}/recommendations?placement=home&k=5", body.users.id(person).unwrap()),
    )
    .await;
    assert_eq!(item_ids(&by_post), item_ids(&by_get));
    assert_eq!(by_post.json()["personalized"], true);

    // Cross-channel: asked by a browser cookie, the web never offers what the same person
    // bought anywhere (in store with a card, by email, in the app).
    let mut checked = 0;
    for (alias, &person) in body.aliases.iter().filter(|(k, _)| k.starts_with("cookie_id:")) {
        let consumed = trained().engine.consumed(datasets::UserIdx(person));
        if consumed.len() < 2 || checked == 25 {
            continue;
        }
        let cookie = alias.trim_start_matches("cookie_id:");
        let reply = post(
            &server.addr,
            "/v1/recommendations",
            &format!(r#"{{"identifiers": {{"cookie_id": "{cookie}"}}, "channel": "web", "k": 12}}"#),
        )
        .await;
        let bought: HashSet<String> =
            consumed.iter().map(|&(i, _)| body.items.id(i).unwrap().to_string()).collect();
        let items = item_ids(&reply);
        assert_eq!(items.len(), 12);
        assert!(items.iter().all(|i| !bought.contains(i)), "cookie {cookie} was offered a purchase");
        checked += 1;
    }
    assert_eq!(checked, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_persons_get_a_non_empty_fallback() {
    let server = start(ServerConfig::default(), HashMap::new()).await;
    let reply = get(&server.addr, "/v1/users/nobody-at-all/recommendations?k=7").await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    assert_eq!(
        (json["personalized"].clone(), json["reason"].clone()),
        (Value::Bool(false), "unknown_user".into())
    );
    assert_eq!(item_ids(&reply).len(), 7);
    assert_eq!(json["items"][0]["explanation"]["source"], "popular");
    // An anonymous session with a cart is personalised from the cart, which is excluded.
    let cart = item_ids(&reply)[0].clone();
    let reply =
        post(&server.addr, "/v1/recommendations", &format!(r#"{{"cart": ["{cart}"], "k": 5}}"#)).await;
    assert_eq!(reply.json()["personalized"], true);
    assert!(!item_ids(&reply).contains(&cart));
    // Similar items never include the item itself.
    let similar = get(&server.addr, &format!("/v1/items/{cart}/similar?k=5")).await;
    assert_eq!(similar.status, 200, "{:?}", similar.body);
    assert_eq!(similar.json()["placement"], "product_page");
    let items = item_ids(&similar);
    assert_eq!(items.len(), 5);
    assert!(!items.contains(&cart));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_changes_the_answer() {
    let (person, _) = buyers(2).into_iter().next().unwrap();
    let base = |k| PlacementConfig { k, in_stock: StockRule::Any, ..Default::default() };
    // The person's unrestricted answer decides the rules' targets.
    let plain = start(
        ServerConfig {
            placements: BTreeMap::from([("plain".into(), base(8))]),
            default_placement: "plain".into(),
            ..Default::default()
        },
        HashMap::new(),
    )
    .await;
    let baseline =
        item_ids(&get(&plain.addr, &format!("/v1/users/{person}/recommendations?placement=plain")).await);
    assert_eq!(baseline.len(), 8);
    let top_categories: Vec<&str> =
        baseline.iter().map(|i| catalog_item(i).top_category().unwrap()).collect();
    let unseen_brand = {
        let body = &trained().engine.artifact().body;
        let shown: HashSet<_> = baseline.iter().map(|i| catalog_item(i).brand.clone()).collect();
        body.catalog
            .iter()
            .filter_map(|i| i.brand.clone())
            .find(|b| !shown.contains(&Some(b.clone())))
            .unwrap()
    };
    let pinned = {
        let body = &trained().engine.artifact().body;
        let bought = trained().engine.consumed(trained().engine.lookup(&person).unwrap());
        (0..body.items.len() as u32)
            .find(|i| {
                bought.binary_search_by_key(i, |&(c, _)| c).is_err()
                    && !baseline.contains(&body.items.id(*i).unwrap().to_string())
            })
            .map(|i| body.items.id(i).unwrap().to_string())
            .unwrap()
    };
    let stores: std::collections::BTreeSet<String> = trained()
        .engine
        .artifact()
        .body
        .catalog
        .iter()
        .flat_map(|i| i.store_stock.iter().filter(|(_, n)| **n > 0).map(|(s, _)| s.clone()))
        .collect();
    let stocked = |item: &str, store: &str| catalog_item(item).store_stock.get(store).is_some_and(|&n| n > 0);
    // A store without the baseline's best item, so the stock rule must change the answer.
    let store = stores.iter().find(|s| !stocked(&baseline[0], s)).expect("some store lacks the item").clone();
    let placements = BTreeMap::from([
        ("plain".to_string(), base(8)),
        (
            "boosted".into(),
            PlacementConfig {
                boosts: vec![Boost {
                    brand: Some(unseen_brand.clone()),
                    category: None,
                    tag: None,
                    factor: 1000.0,
                }],
                ..base(8)
            },
        ),
        (
            "pinned".into(),
            PlacementConfig {
                pins: vec![Pin { item_id: pinned.clone(), slot: 2, from: None, until: None }],
                ..base(8)
            },
        ),
        ("diverse".into(), PlacementConfig { max_per_category: Some(1), ..base(8) }),
        ("kiosk".into(), PlacementConfig { in_stock: StockRule::Store, ..base(8) }),
    ]);
    let server = start(
        ServerConfig { placements, default_placement: "plain".into(), ..Default::default() },
        HashMap::new(),
    )
    .await;
    let ask = |query: String| {
        let addr = server.addr.clone();
        let person = person.clone();
        async move { get(&addr, &format!("/v1/users/{person}/recommendations?{query}")).await }
    };

    // Cart: the best item, put in the cart, is no longer offered.
    let identifier = datasets::schema::Identifier::parse_key(&person).unwrap();
    let cart = post(
        &server.addr,
        "/v1/recommendations",
        &format!(
            r#"{{"identifiers": {{"{}": "{}"}}, "cart": ["{}"]}}"#,
            identifier.kind.as_str(),
            identifier.value,
            baseline[0]
        ),
    )
    .await;
    assert_eq!(cart.status, 200, "{:?}", cart.body);
    assert!(!item_ids(&cart).contains(&baseline[0]));

    // Category: only the asked category, which the baseline did not fill.
    let category = top_categories[0];
    let only = item_ids(&ask(format!("placement=plain&category={category}")).await);
    assert_eq!(only.len(), 8);
    assert!(only.iter().all(|i| catalog_item(i).top_category() == Some(category)));
    assert_ne!(only, baseline);

    // Price: below the baseline's cheapest price… halved.
    let cheapest = baseline.iter().filter_map(|i| catalog_item(i).price).fold(f32::INFINITY, f32::min);
    let max_price = cheapest / 2.0;
    let cheap = post(
        &server.addr,
        "/v1/recommendations",
        &format!(
            r#"{{"identifiers": {{"{}": "{}"}}, "filters": {{"max_price": {max_price}}}}}"#,
            identifier.kind.as_str(),
            identifier.value,
        ),
    )
    .await;
    let cheap = item_ids(&cheap);
    assert!(!cheap.is_empty());
    assert!(cheap.iter().all(|i| catalog_item(i).price.is_none_or(|p| p <= max_price)));

    // Boost: a brand absent from the baseline takes the top.
    let boosted = item_ids(&ask("placement=boosted".into()).await);
    assert_eq!(catalog_item(&boosted[0]).brand.as_deref(), Some(unseen_brand.as_str()));

    // Pin: the pinned item sits at slot 2.
    let with_pin = ask("placement=pinned".into()).await;
    assert_eq!(item_ids(&with_pin)[1], pinned);
    assert_eq!(with_pin.json()["items"][1]["explanation"]["source"], "pinned");

    // Diversity: one item per top category.
    let diverse = ask("placement=diverse".into()).await;
    assert_eq!(diverse.status, 200, "{:?}", diverse.body);
    let diverse = item_ids(&diverse);
    let categories: HashSet<_> = diverse.iter().map(|i| catalog_item(i).top_category()).collect();
    assert!(diverse.len() >= 2, "{diverse:?}");
    assert_eq!(categories.len(), diverse.len());
    assert!(
        top_categories.iter().collect::<HashSet<_>>().len() < top_categories.len(),
        "baseline repeats a category"
    );

    // In stock at a store: the baseline's best item is not stocked there, and never offered.
    let kiosk = item_ids(&ask(format!("placement=kiosk&store_id={store}")).await);
    assert!(!kiosk.is_empty());
    assert!(!kiosk.contains(&baseline[0]));
    assert!(kiosk.iter().all(|i| stocked(i, &store)));
    let no_store = ask("placement=kiosk".into()).await;
    assert_eq!((no_store.status, no_store.json()["error"]["field"].clone()), (400, "store_id".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_without_failed_requests_and_refuses_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_, second) = common::setup_seeded(dir.path(), 12);
    let server = start(
        ServerConfig { data_dir: Some(dir.path().join("state")), ..Default::default() },
        HashMap::new(),
    )
    .await;
    let before = server.state.current.load().model.version().to_string();
    let after = artifact::load(&second).unwrap().metadata.model_version;
    assert_ne!(before, after);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    // Known persons of both models (ids are the same synthetic persons), so the load
    // exercises the personalised path across the swap, not the fallback.
    let people: Vec<String> = buyers(2).into_iter().take(4).map(|(key, _)| key).collect();
    assert_eq!(people.len(), 4);
    for person in people {
        let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
        load.push(tokio::spawn(async move {
            let mut connection = Connection::open(&addr).await.unwrap();
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let path = format!("/v1/users/{person}/recommendations?k=5");
                match connection.send("GET", &path, None, None).await {
                    Ok(r)
                        if r.status == 200
                            && !item_ids(&r).is_empty()
                            && r.json()["personalized"] == true =>
                    {
                        ok += 1
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let reload =
        post(&server.addr, "/v1/admin/models/reload", &format!(r#"{{"path": "{}"}}"#, second.display()))
            .await;
    assert_eq!(reload.status, 200, "{:?}", reload.body);
    assert_eq!(reload.json()["model_version"], after.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // A corrupt artifact is refused and the new model keeps serving.
    let corrupt = dir.path().join("corrupt.omr");
    let mut bytes = std::fs::read(&second).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    let refused =
        post(&server.addr, "/v1/admin/models/reload", &format!(r#"{{"path": "{}"}}"#, corrupt.display()))
            .await;
    assert_eq!(refused.status, 422);
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains(&after));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        let (ok, failed) = task.await.unwrap();
        assert!(ok > 0);
        assert_eq!(failed, 0, "requests failed during the swap");
    }
    let models = get(&server.addr, "/v1/models").await.json();
    assert_eq!(models["model_version"], after.as_str());
    // The swap is recorded: a restart without --model serves the new artifact. (A second
    // server on the same data directory is refused while this one holds it.)
    let record = std::fs::read_to_string(dir.path().join("state/active-model")).unwrap();
    assert_eq!(std::path::PathBuf::from(record.trim()), std::path::absolute(&second).unwrap());
    let second_server = AppState::new(
        ServerConfig { data_dir: Some(dir.path().join("state")), ..Default::default() },
        |_| None,
    );
    assert!(second_server.err().unwrap().to_string().contains("already open"));
    let metrics = String::from_utf8(get(&server.addr, "/metrics").await.body.to_vec()).unwrap();
    assert!(metrics.contains("omnirec_model_reloads_total"), "{metrics}");
    assert!(metrics.contains("omnirec_http_requests_total"));
    assert!(metrics.contains("omnirec_http_request_duration_seconds_bucket"));
}

/// A key entry named `name` with one role, its secret in the variable `var`.
fn key(name: &str, role: &str, var: &str) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        roles: vec![serde_json::from_value(Value::String(role.into())).unwrap()],
        env: Some(var.into()),
        sha256: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_key_is_enforced() {
    let env = HashMap::from([
        ("READ_KEY".to_string(), "read-key-0123456789".to_string()),
        ("INGEST_KEY".to_string(), "ingest-key-0123456789".to_string()),
        ("ADMIN_KEY".to_string(), "admin-key-0123456789".to_string()),
    ]);
    let config = ServerConfig {
        keys: vec![
            key("shop", "read", "READ_KEY"),
            key("feed", "ingest", "INGEST_KEY"),
            key("ops", "admin", "ADMIN_KEY"),
        ],
        ..Default::default()
    };
    let server = start(config, env).await;
    let mut c = Connection::open(&server.addr).await.unwrap();
    let recs = "/v1/users/x/recommendations";
    assert_eq!(c.send("GET", recs, None, None).await.unwrap().status, 401);
    assert_eq!(c.send("GET", recs, Some("wrong-key-0123456789"), None).await.unwrap().status, 401);
    assert_eq!(c.send("GET", recs, Some("read-key-0123456789"), None).await.unwrap().status, 200);
    assert_eq!(c.send("GET", recs, Some("ingest-key-0123456789"), None).await.unwrap().status, 403);
    assert_eq!(c.send("GET", recs, Some("admin-key-0123456789"), None).await.unwrap().status, 200);
    let reload = "/v1/admin/models/reload";
    assert_eq!(c.send("POST", reload, Some("read-key-0123456789"), None).await.unwrap().status, 403);
    assert_eq!(c.send("POST", reload, Some("admin-key-0123456789"), None).await.unwrap().status, 200);
    // Probes stay open.
    assert_eq!(c.send("GET", "/health/ready", None, None).await.unwrap().status, 200);
    assert_eq!(c.send("GET", "/metrics", None, None).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_documented_status_and_field() {
    let mut placements = default_placements();
    placements.insert(
        "similar_only".into(),
        PlacementConfig { kind: PlacementKind::Similar, ..Default::default() },
    );
    let server =
        start(ServerConfig { placements, max_body_bytes: 1024, ..Default::default() }, HashMap::new()).await;
    let error = |reply: &Reply| {
        (
            reply.status,
            reply.json()["error"]["code"].as_str().unwrap_or("").to_string(),
            reply.json()["error"]["field"].as_str().unwrap_or("").to_string(),
        )
    };
    let a = &server.addr;
    assert_eq!(
        error(&get(a, "/v1/users/x/recommendations?k=0").await),
        (400, "invalid_field".into(), "k".into())
    );
    let too_many = get(a, "/v1/users/x/recommendations?k=1000").await;
    assert_eq!(error(&too_many).2, "k");
    assert!(too_many.json()["error"]["message"].as_str().unwrap().contains("between 1 and 100"));
    assert_eq!(
        error(&get(a, "/v1/users/x/recommendations?k=abc").await),
        (400, "invalid_field".into(), "k".into())
    );
    assert_eq!(error(&get(a, "/v1/items/x/similar?k=many").await).2, "k");
    assert_eq!(
        error(&get(a, "/v1/users/x/recommendations?placement=nope").await),
        (404, "unknown_placement".into(), "placement".into())
    );
    assert_eq!(error(&get(a, "/v1/users/x/recommendations?placement=home&channel=email").await).2, "channel");
    assert_eq!(
        error(&get(a, "/v1/items/no-such-item/similar").await),
        (404, "unknown_item".into(), "item_id".into())
    );
    assert_eq!(error(&get(a, "/v1/items/x/similar?placement=home").await).2, "placement");
    assert_eq!(error(&post(a, "/v1/recommendations", "{not json").await).1, "malformed_json");
    let wrong_type = post(a, "/v1/recommendations", r#"{"k": "ten"}"#).await;
    assert_eq!(wrong_type.status, 422);
    assert!(wrong_type.json()["error"]["message"].as_str().unwrap().contains('k'));
    let unknown_field = post(a, "/v1/recommendations", r#"{"kk": 3}"#).await;
    assert_eq!(unknown_field.status, 422);
    assert!(unknown_field.json()["error"]["message"].as_str().unwrap().contains("kk"));
    assert_eq!(
        error(&post(a, "/v1/recommendations", r#"{"identifiers": {"shoe_size": "42"}}"#).await).2,
        "identifiers.shoe_size"
    );
    assert_eq!(error(&post(a, "/v1/recommendations", r#"{"placement": "similar_only"}"#).await).2, "item_id");
    assert_eq!(
        error(&post(a, "/v1/recommendations", r#"{"filters": {"min_price": 5, "max_price": 1}}"#).await).2,
        "filters.min_price"
    );
    let big = format!(r#"{{"exclude": ["{}"]}}"#, "x".repeat(4096));
    assert_eq!(post(a, "/v1/recommendations", &big).await.status, 413);
    assert_eq!(error(&get(a, "/v2/nothing").await).0, 404);
    let doc = get(a, "/openapi.json").await.json();
    for path in [
        "/v1/users/{user_id}/recommendations",
        "/v1/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/models",
        "/v1/admin/models/reload",
        "/health/ready",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_503_loading_until_the_model_is_loaded_then_serves() {
    let mut config = ServerConfig { model: Some(trained().model.clone()), ..Default::default() };
    config.listen = "127.0.0.1:0".parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (finish_loading, loaded) = tokio::sync::oneshot::channel::<()>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let load = {
        let config = config.clone();
        async move {
            let _ = loaded.await;
            tokio::task::spawn_blocking(move || AppState::new(config, |_| None)).await.unwrap()
        }
    };
    let task = tokio::spawn(async move {
        server::serve_while_loading(listener, &config, load, async move {
            let _ = stopped.await;
        })
        .await
    });
    // One connection opened during the load keeps working after it.
    let mut early = Connection::open(&addr).await.unwrap();
    let ready = early.send("GET", "/health/ready", None, None).await.unwrap();
    assert_eq!((ready.status, ready.json()["status"].as_str()), (503, Some("loading")));
    let live = get(&addr, "/health/live").await;
    assert_eq!((live.status, live.json()["status"].as_str()), (200, Some("loading")));
    let recommendations = get(&addr, "/v1/users/u1/recommendations").await;
    assert_eq!(
        (recommendations.status, recommendations.json()["error"]["code"].as_str()),
        (503, Some("loading"))
    );
    finish_loading.send(()).unwrap();
    let mut status = 0;
    for _ in 0..500 {
        status = early.send("GET", "/health/ready", None, None).await.unwrap().status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, 200, "ready once loaded, on the connection opened before");
    let person = trained().engine.artifact().body.users.id(0).unwrap().to_string();
    let answer = get(&addr, &format!("/v1/users/{person}/recommendations")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_ends_serving_with_its_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ServerConfig { model: Some("/nonexistent/model.omr".into()), ..Default::default() };
    let load = {
        let config = config.clone();
        async move { tokio::task::spawn_blocking(move || AppState::new(config, |_| None)).await.unwrap() }
    };
    let error =
        server::serve_while_loading(listener, &config, load, std::future::pending()).await.unwrap_err();
    assert!(error.to_string().contains("/nonexistent/model.omr"), "{error}");
}

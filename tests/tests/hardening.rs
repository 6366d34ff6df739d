//! Regression tests for the hardening issue (#7): each guards one way a client, a file or an
//! operator could crash, hang or silently poison the server.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A server whose `serve` future can be watched: `stop` begins shutdown, `done` completes
/// when `serve` returns.
struct Watched {
    addr: String,
    state: Arc<AppState>,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<server::Result<()>>,
}

async fn start_watched(mut config: ServerConfig) -> Watched {
    config.model.get_or_insert_with(|| trained().model.clone());
    let state = AppState::new(config, |_| None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(server::serve(listener, Arc::clone(&state), async move {
        let _ = stopped.await;
    }));
    Watched { addr, state, stop, done }
}

/// Sends `request` as raw bytes and reads until the server closes the connection (or 5 s).
async fn raw(addr: &str, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_head_is_dropped_and_shutdown_still_completes() {
    let config = ServerConfig { header_read_timeout_ms: 300, ..Default::default() };
    let server = start_watched(config).await;
    // Half a request head, then silence: the server closes the connection on its own.
    let mut stalled = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    stalled.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a stalled head kept its connection open");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Another stalled client does not hold up shutdown.
    let mut second = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    second.write_all(b"GET /health/live HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = server.stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(5), server.done).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "serve did not return after shutdown: {finished:?}");
    assert!(!server.state.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_shutdown_begins_is_answered() {
    let server = start_watched(ServerConfig::default()).await;
    // The head and half the body are in: the request is in flight when the signal comes.
    let mut client = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let head = "POST /v1/recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 8\r\n\r\n{\"k\"";
    client.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = server.stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.state.is_ready(), "readiness turns false as shutdown begins");
    client.write_all(b": 3}").await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let finished = tokio::time::timeout(Duration::from_secs(5), server.done).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "serve did not return: {finished:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_has_a_deadline_even_when_a_connection_never_finishes() {
    // Heads may take a minute here, but shutdown waits at most 300 ms for them.
    let config =
        ServerConfig { header_read_timeout_ms: 60_000, shutdown_timeout_ms: 300, ..Default::default() };
    let server = start_watched(config).await;
    let mut stalled = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    stalled.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let _ = server.stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(5), server.done).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "serve did not return by its deadline: {finished:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_not_cut_short_by_the_request_timeout() {
    // Every read request may take 1 ms at most; reading an artifact takes longer.
    let server = start(ServerConfig { request_timeout_ms: 1, ..Default::default() }, HashMap::new()).await;
    let reply = post(&server.addr, "/v1/admin/models/reload", "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_answers_once_durable_not_when_the_request_timeout_says() {
    // Reads may take 1 ms at most; a commit takes a disk sync. A write cut short by the
    // timeout was still stored, and its client, told 408, would send it again.
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { request_timeout_ms: 1, ..super::live::live_config(dir.path()) };
    let server = start(config, HashMap::new()).await;
    let purchases: Vec<String> = (0..200)
        .map(|n| {
            format!(
                r#"{{"user_id": "u{n}", "channel": "store", "type": "purchase", "item_id": "i{n}", "timestamp": "2026-01-01T00:00:00Z"}}"#
            )
        })
        .collect();
    let reply =
        post(&server.addr, "/v1/events", &format!(r#"{{"events": [{}]}}"#, purchases.join(","))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["accepted"], 200, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_devices_fifos_and_files_of_the_wrong_size_at_once() {
    let server = start(ServerConfig::default(), HashMap::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.omr");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let liar = dir.path().join("liar.omr");
    let mut bytes = std::fs::read(&trained().model).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&liar, bytes).unwrap();
    for (path, why) in [
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (fifo, "not a regular file"),
        (dir.path().to_path_buf(), "not a regular file"),
        (liar, "but its header announces"),
    ] {
        let body = format!(r#"{{"path": "{}"}}"#, path.display());
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            post(&server.addr, "/v1/admin/models/reload", &body),
        )
        .await
        .unwrap_or_else(|_| panic!("reloading {} hung", path.display()));
        assert_eq!(reply.status, 422, "{}: {:?}", path.display(), reply.body);
        let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(why) && message.contains("still serving"), "{message}");
    }
    let metrics = String::from_utf8(get(&server.addr, "/metrics").await.body.to_vec()).unwrap();
    assert!(metrics.contains(r#"omnirec_model_reloads_total{outcome="refused"}"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_cannot_be_recorded_is_not_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let (_, second) = common::setup_seeded(dir.path(), 13);
    let state_dir = dir.path().join("state");
    let server =
        start(ServerConfig { data_dir: Some(state_dir.clone()), ..Default::default() }, HashMap::new()).await;
    let before = server.state.current.load().model.version().to_string();
    // The data directory becomes a plain file: the record cannot be written.
    std::fs::remove_dir_all(&state_dir).unwrap();
    std::fs::write(&state_dir, "not a directory").unwrap();
    let body = format!(r#"{{"path": "{}"}}"#, second.display());
    let reply = post(&server.addr, "/v1/admin/models/reload", &body).await;
    assert_eq!(reply.status, 500, "{:?}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "state_write_failed");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("active-model") && message.contains(&format!("still serving {before}")),
        "{message}"
    );
    assert_eq!(get(&server.addr, "/v1/models").await.json()["model_version"], before.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_accept_any_case_of_bearer_and_paths_are_shown_to_admins_only() {
    let env = HashMap::from([
        // As read from a secret file: with a trailing newline.
        ("READ_KEY".to_string(), "read-key-0123456789\n".to_string()),
        ("ADMIN_KEY".to_string(), "admin-key-0123456789".to_string()),
    ]);
    let config = ServerConfig {
        keys: vec![key("shop", "read", "READ_KEY"), key("ops", "admin", "ADMIN_KEY")],
        ..Default::default()
    };
    let server = start(config, env).await;
    let models = |scheme: &str, secret: &str| {
        format!(
            "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} {secret}\r\nConnection: close\r\n\r\n"
        )
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = raw(&server.addr, &models(scheme, "read-key-0123456789")).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{scheme}: {reply}");
        assert!(!reply.contains("\"path\""), "a read key saw the artifact path: {reply}");
    }
    let admin = raw(&server.addr, &models("bearer", "admin-key-0123456789")).await;
    assert!(admin.starts_with("HTTP/1.1 200") && admin.contains("\"path\""), "{admin}");
    assert!(raw(&server.addr, &models("Basic", "read-key-0123456789")).await.starts_with("HTTP/1.1 401"));
    // The keyed server's document declares the key; an open one does not.
    let keyed = Connection::open(&server.addr).await.unwrap().send("GET", "/openapi.json", None, None).await;
    let keyed = keyed.unwrap().json();
    assert!(keyed["components"]["securitySchemes"].get("api_key").is_some());
    assert!(keyed["paths"]["/v1/models"]["get"]["responses"].get("401").is_some());
    let open = start(ServerConfig::default(), HashMap::new()).await;
    let doc = get(&open.addr, "/openapi.json").await.json();
    let schemes = &doc["components"]["securitySchemes"];
    assert!(schemes.is_null() || schemes.as_object().is_some_and(|s| s.is_empty()), "{schemes}");
    assert!(doc["paths"]["/v1/models"]["get"].get("security").is_none());
    assert!(doc["paths"]["/v1/models"]["get"]["responses"].get("401").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_what_the_server_enforces() {
    let server = start(ServerConfig::default(), HashMap::new()).await;
    let doc = get(&server.addr, "/openapi.json").await.json();
    let params = doc["paths"]["/v1/users/{user_id}/recommendations"]["get"]["parameters"].as_array().unwrap();
    let k = params.iter().find(|p| p["name"] == "k").unwrap();
    assert_eq!((k["schema"]["minimum"].as_f64(), k["schema"]["maximum"].as_f64()), (Some(1.0), Some(100.0)));
    let reload = &doc["paths"]["/v1/admin/models/reload"]["post"];
    assert_ne!(reload["requestBody"]["required"], true, "the reload body is optional");
    let post = &doc["paths"]["/v1/recommendations"]["post"]["responses"];
    for status in ["400", "404", "413", "415", "422"] {
        assert!(post.get(status).is_some(), "POST /v1/recommendations does not document {status}");
    }
    let identifiers = &doc["components"]["schemas"]["Identifiers"];
    assert_eq!(identifiers["additionalProperties"], false, "{identifiers}");
    assert!(identifiers["properties"].get("loyalty_id").is_some());
    // Placement and channel name what this server has (k's ceiling, above, is the largest
    // max_k of its placements).
    let placement = params.iter().find(|p| p["name"] == "placement").unwrap();
    assert!(placement["schema"]["enum"].as_array().unwrap().contains(&"store_kiosk".into()));
    let channel = params.iter().find(|p| p["name"] == "channel").unwrap();
    assert!(channel["schema"]["enum"].as_array().unwrap().contains(&"call_center".into()));
    let body = &doc["components"]["schemas"]["RecommendBody"]["properties"];
    assert!(body["channel"]["enum"].as_array().unwrap().contains(&Value::Null));
    // Operations without parameters gain none.
    assert!(doc["paths"]["/health/live"]["get"].get("parameters").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_objects_and_counts_may_be_written_as_whole_floats() {
    let server = start(ServerConfig::default(), HashMap::new()).await;
    for path in ["/v1/recommendations", "/v1/admin/models/reload"] {
        let reply = post(&server.addr, path, "[]").await;
        assert_eq!(reply.status, 422, "{path}: {:?}", reply.body);
        assert_eq!(reply.json()["error"]["code"], "invalid_body");
    }
    assert_eq!(post(&server.addr, "/v1/admin/models/reload", "null").await.status, 200);
    let whole = post(&server.addr, "/v1/recommendations", r#"{"k": 5.0}"#).await;
    assert_eq!((whole.status, item_ids(&whole).len()), (200, 5), "{:?}", whole.body);
    assert_eq!(post(&server.addr, "/v1/recommendations", r#"{"k": 2.5}"#).await.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_names_count_in_any_case_the_store_s_own_types_are_refused_and_consent_in_either_spelling() {
    use super::live::{events, ids, live_config, now, recommend, send};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let ask = json!({"identifiers": {"cookie_id": "c-case"}, "k": 20});
    let top = ids(&recommend(addr, ask.clone()).await)[0].clone();
    // A till that capitalises its names: still a purchase, never offered back.
    let bought = json!([{"cookie_id": "c-case", "channel": "Store", "type": "Purchase", "item_id": top, "timestamp": now() - 5}]);
    assert_eq!(events(addr, bought).await["accepted"], 1);
    let answer = recommend(addr, ask).await;
    assert!(!ids(&answer).contains(&top), "{top} bought as `Purchase`: {answer}");
    // Consent and links have endpoints of their own; events of their record types would be
    // acknowledged and then never exported.
    for kind in ["consent", "Identity_Link", "identity_unlink"] {
        let sent = json!([{"cookie_id": "c-case", "channel": "web", "type": kind, "timestamp": now()}]);
        let answer = events(addr, sent).await;
        assert_eq!(
            (answer["accepted"].clone(), answer["results"][0]["field"].clone()),
            (json!(0), json!("type"))
        );
    }
    // Both spellings with different values contradict each other.
    let both = json!({"personalisation": false, "personalization": true});
    let put = send(addr, "PUT", "/v1/profiles/cookie_id/c-case/consent", Some(&both)).await;
    assert_eq!(put.status, 400, "{:?}", put.body);
    // Consent withdrawn in British spelling is the same purpose.
    let withdrawn = json!({"personalisation": false});
    let put = send(addr, "PUT", "/v1/profiles/cookie_id/c-case/consent", Some(&withdrawn)).await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let answer = recommend(addr, json!({"identifiers": {"cookie_id": "c-case"}, "k": 5})).await;
    assert_eq!(answer["reason"], "no_consent", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_in_checks_ids_as_the_events_do() {
    use super::live::{events, live_config, now, send};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    // The path form of a request names nobody when it names nothing usable: refused as the
    // body's identifiers are, not answered anonymously.
    for path in [
        "/v1/users/%20/recommendations",
        "/v1/users/email:/recommendations",
        "/v1/items/i1/similar?user_id=%20",
    ] {
        let reply = send(addr, "GET", path, None).await;
        assert_eq!((reply.status, reply.json()["error"]["field"].clone()), (400, json!("user_id")), "{path}");
    }
    // Control characters in an event id or a linked value, an item id no catalog item can
    // have, and a known field in another case.
    let sent = json!([
        {"event_id": "a\u{0}b", "cookie_id": "c-ids", "channel": "web", "type": "view", "item_id": "i1", "timestamp": now()},
        {"cookie_id": "c-ids", "channel": "web", "type": "view", "item_id": "x".repeat(datasets::schema::MAX_ID_BYTES + 1), "timestamp": now()},
        {"cookie_id": "c-ids", "Loyalty_ID": "L1", "channel": "web", "type": "view", "item_id": "i1", "timestamp": now()},
    ]);
    let answer = events(addr, sent).await;
    let fields: Vec<&str> =
        answer["results"].as_array().unwrap().iter().map(|r| r["field"].as_str().unwrap_or("")).collect();
    assert_eq!(fields, ["event_id", "item_id", "Loyalty_ID"], "{answer}");
    // A link naming `value` beside an address: refused, naming the value's field.
    let refused_link = |value: String| async move {
        let link = json!({"a": {"type": "cookie_id", "value": value}, "b": {"type": "email", "value": "x@example.com"}});
        let reply = send(addr, "POST", "/v1/identities/link", Some(&link)).await;
        assert_eq!(
            (reply.status, reply.json()["error"]["field"].clone()),
            (400, json!("a.value")),
            "{:?}",
            reply.body
        );
    };
    refused_link("a\tb".to_string()).await;
    // Ids beyond the server's bound, wherever a new one would be stored: a link, a consent
    // change on an identifier nobody knows, a request (what is served is kept under it), an
    // event's nested identifiers beside a short one of its kind. (Profiles, erasure and
    // consent changes of identifiers already known take any length.)
    let long = "c".repeat(datasets::schema::MAX_ID_BYTES + 1);
    refused_link(long.clone()).await;
    let consent = json!({"personalization": false});
    let reply = send(addr, "PUT", &format!("/v1/profiles/cookie_id/{long}/consent"), Some(&consent)).await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    let ask = json!({"identifiers": {"cookie_id": long}});
    let reply = send(addr, "POST", "/v1/recommendations", Some(&ask)).await;
    assert_eq!((reply.status, reply.json()["error"]["field"].clone()), (400, json!("identifiers.cookie_id")));
    let nested = json!([{"cookie_id": "short", "identifiers": {"cookie_id": long}, "channel": "web", "type": "view", "item_id": "i1", "timestamp": now()}]);
    let answer = events(addr, nested).await;
    assert_eq!(answer["results"][0]["field"], "identifiers.cookie_id", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_person_known_by_one_identifier_answers_beside_a_shared_device() {
    use super::live::{live_config, recommend};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let body = &trained().engine.artifact().body;
    let mut identifiers_of: BTreeMap<u32, Vec<&String>> = BTreeMap::new();
    for (key, &user) in &body.aliases {
        identifiers_of.entry(user).or_default().push(key);
    }
    let engine = &trained().engine;
    let has_history = |user: u32| !engine.person(Some(datasets::UserIdx(user))).history.is_empty();
    let alone = (0..body.users.len() as u32)
        .filter_map(|user| identifiers_of.get(&user).filter(|keys| keys.len() == 1 && has_history(user)))
        .next()
        .expect("a person with one identifier and a history")[0];
    let alone = datasets::schema::Identifier::parse_key(alone).unwrap();
    let shared =
        datasets::schema::Identifier::parse_key(body.refused.first().expect("a refused identifier")).unwrap();
    assert_ne!(alone.kind, shared.kind);
    let ask = json!({"identifiers": {alone.kind.as_str(): alone.value, shared.kind.as_str(): shared.value}, "k": 5});
    let answer = recommend(&server.addr, ask).await;
    assert_eq!(answer["person_id"], datasets::identity::canonical_key(&alone), "{answer}");
    assert_eq!(answer["personalized"], true, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_parsed_apart_answer_as_small_ones_do() {
    use super::live::{events, live_config, now};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    // Over 16 KiB each: parsed on the blocking pool, not on the runtime's worker.
    let padding = "x".repeat(20 * 1024);
    let cut = format!(r#"{{"events": [{{"cookie_id": "{padding}""#);
    let reply = post(addr, "/v1/events", &cut).await;
    assert_eq!((reply.status, reply.json()["error"]["code"].clone()), (400, json!("malformed_json")));
    let array = format!(r#"[{{"cookie_id": "{padding}"}}]"#);
    let reply = post(addr, "/v1/events", &array).await;
    assert_eq!((reply.status, reply.json()["error"]["code"].clone()), (422, json!("invalid_body")));
    // A hundred events, one of them bad: each answered in order, the bad one by its field.
    let mut batch: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            json!({"cookie_id": format!("c-large-{i}"), "channel": "web", "type": "view",
                   "item_id": "i1", "timestamp": now() - 10, "value": 1.0,
                   "event_id": format!("large-{i}-{}", "p".repeat(150))})
        })
        .collect();
    batch[37]["timestamp"] = json!("yesterday");
    assert!(serde_json::to_string(&batch).unwrap().len() > 16 * 1024);
    let answer = events(addr, json!(batch)).await;
    let counts = (answer["accepted"].clone(), answer["rejected"].clone());
    assert_eq!(counts, (json!(99), json!(1)), "{}", answer["results"][37]);
    assert_eq!(answer["results"][37]["field"], "timestamp", "{}", answer["results"][37]);
    assert_eq!(answer["results"][38]["status"], "accepted");
    // A key given twice (which one was meant is a guess) refuses the body, naming it, at
    // any size.
    for padding in ["", &padding[..]] {
        let twice = format!(
            r#"{{"events": [{{"cookie_id": "c-twice", "channel": "web", "type": "view", "item_id": "i1",
                 "timestamp": {}, "padding": "{padding}"}},
                {{"cookie_id": "c-twice", "channel": "web", "type": "view", "type": "purchase",
                 "item_id": "i1", "timestamp": {}}}]}}"#,
            now() - 5,
            now() - 5
        );
        let reply = post(addr, "/v1/events", &twice).await;
        assert_eq!(reply.status, 400, "{:?}", reply.body);
        assert_eq!(reply.json()["error"]["field"], "events[1].type", "{:?}", reply.body);
    }
}

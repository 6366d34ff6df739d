//! The error table, in process: every code a request can provoke comes with its one status
//! and the JSON error shape (no socket; `tests/` covers what needs one).

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::config::{KeyConfig, ServerConfig};
use crate::error::ErrorCode;
use crate::state::AppState;

/// A tiny model trained once, saved in a directory that lives as long as the tests.
fn model() -> &'static std::path::Path {
    static MODEL: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        use datasets::synthetic::{SyntheticConfig, SyntheticData};
        let synthetic = SyntheticData::generate(SyntheticConfig {
            n_persons: 100,
            n_items: 30,
            seed: 4,
            ..Default::default()
        })
        .unwrap();
        let mut config = models::train::config::TrainConfig::default();
        config.als.factors = 4;
        config.blend.tune = false;
        let dataset = synthetic.dataset(&config.weights, &config.identity).unwrap();
        let trained = models::train::train(&dataset, &config, &models::progress::Silent).unwrap();
        let artifact = models::artifact::Artifact::assemble(&dataset, trained, &config, 1_700_000_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.omr");
        models::artifact::save(&artifact, &path).unwrap();
        (dir, path)
    });
    path
}

fn router(keys: Vec<KeyConfig>, env: &'static [(&'static str, &'static str)]) -> axum::Router {
    let config =
        ServerConfig { model: Some(model().to_path_buf()), keys, max_body_bytes: 1024, ..Default::default() };
    let state =
        AppState::new(config, |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
    super::router(Arc::clone(&state.unwrap()))
}

async fn code_of(router: &axum::Router, request: Request<Body>) -> (u16, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(json["error"]["status"], status, "the body repeats the status");
    (status, json["error"]["code"].as_str().unwrap_or_default().to_string())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, content_type: &str, body: &str) -> Request<Body> {
    Request::post(uri).header("content-type", content_type).body(Body::from(body.to_string())).unwrap()
}

/// The app of a server with a data directory in `dir`.
fn live_router(dir: &std::path::Path) -> axum::Router {
    let config = ServerConfig {
        model: Some(model().to_path_buf()),
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    super::router(AppState::new(config, |_| None).unwrap())
}

/// The codes of the live API, from a server with a data directory.
#[tokio::test]
async fn the_live_codes_answer_with_their_one_status() {
    let dir = tempfile::tempdir().unwrap();
    let live = live_router(dir.path());
    let json = "application/json";
    let many_purposes: serde_json::Map<String, serde_json::Value> =
        (0..17).map(|n| (format!("p{n}"), serde_json::Value::Bool(true))).collect();
    let pair = |a: &str, b: &str| {
        format!(
            r#"{{"a": {{"type": "user_id", "value": "{a}"}}, "b": {{"type": "user_id", "value": "{b}"}}}}"#
        )
    };
    let cases = [
        (get("/v1/profiles/cookie_id/nobody"), ErrorCode::UnknownIdentifier),
        (post("/v1/identities/unlink", json, &pair("x1", "x2")), ErrorCode::NotLinked),
        // Two accounts are never one person: the user id limit is one.
        (post("/v1/identities/link", json, &pair("x1", "x2")), ErrorCode::LinkRefused),
        (post("/v1/events", json, r#"{"events": []}"#), ErrorCode::InvalidField),
        (Request::delete("/v1/items/never").body(Body::empty()).unwrap(), ErrorCode::UnknownItem),
        (post("/v1/admin/export", json, r#"{"name": "../up"}"#), ErrorCode::InvalidField),
        (
            Request::put("/v1/profiles/user_id/x1/consent")
                .header("content-type", json)
                .body(Body::from(serde_json::to_string(&many_purposes).unwrap()))
                .unwrap(),
            ErrorCode::InvalidField,
        ),
        // A purpose is allowed or not: a string is neither.
        (
            Request::put("/v1/profiles/user_id/x1/consent")
                .header("content-type", json)
                .body(Body::from(r#"{"email": "yes"}"#))
                .unwrap(),
            ErrorCode::InvalidField,
        ),
    ];
    for (request, expected) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, code) = code_of(&live, request).await;
        assert_eq!((status, code.as_str()), (expected.status().as_u16(), expected.as_str()), "{what}");
    }
}

#[tokio::test]
async fn each_error_code_answers_with_its_one_status() {
    let open = router(Vec::new(), &[]);
    let json = "application/json";
    let cases = [
        (get("/v1/users/x/recommendations?k=0"), ErrorCode::InvalidField),
        (get("/v1/users/x/recommendations?k=abc"), ErrorCode::InvalidField),
        (get(&format!("/v1/users/x/recommendations?channel={}", "w".repeat(65))), ErrorCode::InvalidField),
        // Each filter entry is checked against every item a page considers.
        (
            get(&format!("/v1/users/x/recommendations?category={}", ["zz"; 101].join(","))),
            ErrorCode::InvalidField,
        ),
        (
            post("/v1/recommendations", json, &format!(r#"{{"filters": {{"brands": {:?}}}}}"#, ["b"; 101])),
            ErrorCode::InvalidField,
        ),
        (post("/v1/recommendations", json, "{not json"), ErrorCode::MalformedJson),
        (post("/v1/recommendations", json, r#"{"k": "ten"}"#), ErrorCode::InvalidBody),
        (post("/v1/recommendations", json, "[]"), ErrorCode::InvalidBody),
        (post("/v1/recommendations", "text/plain", "{}"), ErrorCode::ContentType),
        (
            post("/v1/recommendations", json, &format!(r#"{{"exclude": ["{}"]}}"#, "x".repeat(2048))),
            ErrorCode::PayloadTooLarge,
        ),
        (get("/v1/users/x/recommendations?placement=nope"), ErrorCode::UnknownPlacement),
        (get("/v1/items/no-such-item/similar"), ErrorCode::UnknownItem),
        (get("/v2/nothing"), ErrorCode::NotFound),
        (
            post("/v1/admin/models/reload", json, r#"{"path": "/no/such/model.omr"}"#),
            ErrorCode::ModelRejected,
        ),
        (post("/v1/admin/models/reload", json, "{oops"), ErrorCode::MalformedJson),
        (post("/v1/events", json, r#"{"events": []}"#), ErrorCode::NoStore),
    ];
    for (request, expected) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, code) = code_of(&open, request).await;
        assert_eq!((status, code.as_str()), (expected.status().as_u16(), expected.as_str()), "{what}");
    }
    let key = KeyConfig {
        name: "shop".into(),
        roles: vec![crate::auth::Role::Read],
        env: Some("K".into()),
        sha256: None,
    };
    let keyed = router(vec![key], &[("K", "shop-secret-0123456789")]);
    let (status, code) = code_of(&keyed, get("/v1/models")).await;
    assert_eq!((status, code.as_str()), (401, ErrorCode::Unauthenticated.as_str()));
    let reload = Request::post("/v1/admin/models/reload")
        .header("authorization", "Bearer shop-secret-0123456789")
        .body(Body::empty())
        .unwrap();
    let (status, code) = code_of(&keyed, reload).await;
    assert_eq!((status, code.as_str()), (403, ErrorCode::Forbidden.as_str()));
}

#[tokio::test]
async fn an_answer_is_json_and_says_so() {
    let open = router(Vec::new(), &[]);
    let cases = [
        (get("/v1/users/nobody/recommendations?k=3"), 3),
        (post("/v1/recommendations", "application/json", r#"{"k": 4}"#), 4),
    ];
    for (request, items) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let response = open.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(response.headers()["content-type"], "application/json", "{what}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["items"].as_array().map(Vec::len), Some(items), "{what}");
        assert!(json["recommendation_id"].is_string(), "{what}");
    }
}

/// Events a channel may not send: the server's own channel, names that are no names.
#[tokio::test]
async fn events_of_the_server_s_own_channel_or_with_unbounded_names_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let live = live_router(dir.path());
    let event = |channel: &str, kind: &str, cookie: &str| serde_json::json!({"cookie_id": cookie, "channel": channel, "type": kind, "item_id": "i1", "timestamp": 1_700_000_000});
    let long = "c".repeat(datasets::schema::MAX_ID_BYTES + 1);
    let body = serde_json::json!({"events": [
        event("API", "view", "c1"),
        event(&"x".repeat(65), "view", "c1"),
        event("web", "vi\new", "c1"),
        event("web", "view", &long),
        event("web", "view", "c1"),
    ]});
    let request = Request::post("/v1/events")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = live.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let fields: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|r| r["field"].as_str().unwrap_or("")).collect();
    assert_eq!(fields, ["channel", "channel", "type", "cookie_id", ""], "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
}

//! Batch sends (`trainer recommend --suppressed-from EXPORT`) against a live server's export:
//! what was bought on any channel since training, under any identifier, is not pushed.

use std::collections::HashMap;
use std::path::Path;

use datasets::schema::{Identifier, IdentifierKind};
use serde_json::json;

use super::live::{events, live_config, now, send};
use super::{buyers, start, trained};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_send_excludes_what_the_export_shows_bought_since_training() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(live_config(dir.path()), HashMap::new()).await;
    let addr = &server.addr;
    let (person, _) = buyers(2).into_iter().find(|(key, _)| !key.contains(':')).unwrap();
    let body = &trained().engine.artifact().body;
    let user = body.users.get(&person).unwrap();
    let card =
        body.aliases.iter().find(|(k, p)| **p == user && !k.starts_with("user_id:")).unwrap().0.clone();
    let card = Identifier::parse_key(&card).unwrap();
    let send_batch = |export: Option<std::path::PathBuf>| {
        let (rows, _) = batch_send(dir.path(), &[&person], export);
        rows.lines().skip(1).map(|l| l.split('\t').nth(1).unwrap().to_string()).collect::<Vec<_>>()
    };
    let before = send_batch(None);
    assert_eq!(before.len(), 5);
    // Bought at the till under another identifier of theirs, after training; and one bought
    // and returned.
    let bought = json!([
        {card.kind.as_str(): card.value, "channel": "store", "type": "purchase", "item_id": before[0], "timestamp": now() - 60},
        {card.kind.as_str(): card.value, "channel": "store", "type": "purchase", "item_id": before[1], "timestamp": now() - 50},
        {"user_id": person, "channel": "web", "type": "return", "item_id": before[1], "timestamp": now() - 40},
    ]);
    assert_eq!(events(addr, bought).await["accepted"], 3);
    let manifest = send(addr, "POST", "/v1/admin/export", Some(&json!({"name": "before-send"}))).await;
    assert_eq!(manifest.status, 200, "{:?}", manifest.body);
    let export = std::path::PathBuf::from(manifest.json()["dir"].as_str().unwrap());
    let after = send_batch(Some(export));
    assert!(!after.contains(&before[0]), "bought in store, not pushed by email: {after:?}");
    assert!(after.contains(&before[1]), "returned: offered again: {after:?}");
    assert_eq!(after.len(), 5);
    // An item deleted from the catalog on the server is in no batch send after the export.
    let deleted = send(addr, "DELETE", &format!("/v1/items/{}", before[1]), None).await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    let manifest = send(addr, "POST", "/v1/admin/export", Some(&json!({"name": "after-delete"}))).await;
    assert_eq!(manifest.status, 200, "{:?}", manifest.body);
    let export = std::path::PathBuf::from(manifest.json()["dir"].as_str().unwrap());
    let without = send_batch(Some(export));
    assert!(!without.contains(&before[1]), "deleted, still sent: {without:?}");
    assert_eq!(without.len(), 5);
    // A guest cookie linked to the person and unlinked again buys the most popular item; the
    // last event carrying the cookie is filed under the person (it names both). The batch
    // takes the export's persons as training would: the cookie is not the person's.
    let batch_of = |id: &str, export: Option<std::path::PathBuf>| {
        let (rows, _) = batch_send(dir.path(), &[id], export);
        rows.lines().skip(1).map(|l| l.split('\t').nth(1).unwrap().to_string()).collect::<Vec<_>>()
    };
    let popular = batch_of("cookie_id:c-batch", None);
    let pair =
        json!({"a": {"type": "user_id", "value": person}, "b": {"type": "cookie_id", "value": "c-batch"}});
    assert_eq!(send(addr, "POST", "/v1/identities/link", Some(&pair)).await.status, 200);
    assert_eq!(send(addr, "POST", "/v1/identities/unlink", Some(&pair)).await.status, 200);
    let guest = json!([
        {"cookie_id": "c-batch", "channel": "web", "type": "purchase", "item_id": popular[0], "timestamp": now() - 20},
        {"user_id": person, "cookie_id": "c-batch", "channel": "web", "type": "view", "item_id": popular[1], "timestamp": now() - 10},
    ]);
    assert_eq!(events(addr, guest).await["accepted"], 2);
    // An email linked since training to another trained buyer of a popular item: what the
    // model knows that buyer bought is theirs too.
    let (other, other_bought) = buyers(1)
        .into_iter()
        .find(|(key, bought)| {
            key != &person && !key.contains(':') && popular.iter().any(|i| bought.contains(i))
        })
        .expect("a trained buyer of a popular item");
    let linked = json!({"a": {"type": "user_id", "value": other}, "b": {"type": "email", "value": "linked@example.com"}});
    assert_eq!(send(addr, "POST", "/v1/identities/link", Some(&linked)).await.status, 200);
    let manifest = send(addr, "POST", "/v1/admin/export", Some(&json!({"name": "after-unlink"}))).await;
    assert_eq!(manifest.status, 200, "{:?}", manifest.body);
    let export = std::path::PathBuf::from(manifest.json()["dir"].as_str().unwrap());
    let guest_send = batch_of("cookie_id:c-batch", Some(export.clone()));
    assert!(!guest_send.contains(&popular[0]), "the guest bought {}: {guest_send:?}", popular[0]);
    let email = Identifier::new(IdentifierKind::Email, "linked@example.com").unwrap().key();
    let email_send = batch_of(&email, Some(export));
    let pushed: Vec<&String> = email_send.iter().filter(|i| other_bought.contains(*i)).collect();
    assert!(pushed.is_empty(), "{other} bought {pushed:?}: {email_send:?}");
}

/// `trainer recommend` of the test model, 5 items for each of `ids`, with `export` applied:
/// the rows it wrote and its fallback list.
pub(super) fn batch_send(dir: &Path, ids: &[&str], export: Option<std::path::PathBuf>) -> (String, String) {
    let users = dir.join("batch-users.txt");
    std::fs::write(&users, ids.join("\n") + "\n").unwrap();
    let batch = dir.join("batch.tsv");
    trainer::commands::recommend(&trainer::RecommendArgs {
        model: trained().model.clone(),
        users,
        k: 5,
        out: batch.clone(),
        experiment: None,
        variant_model: Vec::new(),
        suppressed_from: export,
    })
    .unwrap();
    let rows = std::fs::read_to_string(&batch).unwrap();
    let fallback = std::fs::read_to_string(format!("{}.fallback.tsv", batch.display())).unwrap();
    (rows, fallback)
}

//! Closing the loop: an export of what the channels sent, for the trainer.
//!
//! [`Store::export`] writes, from one snapshot, into a directory:
//! - `events.jsonl`: every stored channel event of a person who allows personalisation, in
//!   the trainer's event schema, each with the live graph's `person_id` (and its
//!   `event_id`, `recommendation_id`, `store_id`). Records of API calls (links, unlinks,
//!   consent) and impressions are not training data and are left out;
//! - `withheld.jsonl`: the purchases and returns (by the model's weights) of persons who
//!   withhold personalisation, in the same schema: never trained on, but the trainer keeps
//!   what they hold so that a model trained on the export never offers it back, even once
//!   they consent again;
//! - `items.jsonl`: the catalog the caller hands in (the live catalog: model catalog plus
//!   changes), and in the manifest the items it deleted;
//! - `manifest.json` ([`ExportManifest`]): the store id and watermark, counts, the explicit
//!   links and unlinks (so training stitches persons as the live graph does), and the
//!   suppression list: hashes of erased identifiers and of identifiers of persons who
//!   withheld consent, so the trainer leaves them out of every other input too; and each
//!   such person's identifiers as the live graph joins them, so a model trained on the
//!   export starts them joined.
//!
//! Files are written under temporary names, synced, then renamed, the manifest last: a
//! directory with a manifest holds a complete export.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::PoisonError;

use datasets::schema::{Identifier, Item};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::record::{
    CONSENT_EVENT, EventRecord, LINK_EVENT, LinkKind, PERSONALIZATION, UNLINK_EVENT, suppression_hash,
};
use crate::{IMPRESSION_EVENT, Store, effective_consent};

/// An explicit link or unlink, as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedLink {
    /// One identifier key.
    pub a: String,
    /// The other.
    pub b: String,
    /// When it was made.
    pub at: i64,
}

/// An identifier the trainer must leave out, by its suppression hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// [`crate::record::suppression_hash`] of the identifier key.
    pub hash: String,
    /// Why: `erased` or `no_consent`.
    pub reason: String,
    /// For erasures: leave out events dated up to this time (the person may come back).
    pub until: Option<i64>,
}

/// What an export holds; written as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// The store exported.
    pub store_id: String,
    /// Every record below this sequence number is in the snapshot: a model trained on the
    /// export knows the store's events up to it, and serving adds only those from it on.
    pub watermark: u64,
    /// When (seconds since the epoch).
    pub exported_at: i64,
    /// Events written.
    pub events: u64,
    /// Persons they belong to.
    pub persons: u64,
    /// Events left out because their person withheld consent.
    pub withheld_events: u64,
    /// Of which purchases and returns, in `withheld.jsonl`.
    #[serde(default)]
    pub withheld_purchases: u64,
    /// Items written.
    pub items: u64,
    /// Explicit links, in order.
    pub links: Vec<ExportedLink>,
    /// Explicit unlinks, in order.
    pub separations: Vec<ExportedLink>,
    /// Identifiers to leave out of all training input.
    pub suppressed: Vec<Suppressed>,
    /// The identifier keys of each person who withheld consent to personalisation and is
    /// known under more than one, as the live graph joins them: never trained on, but a
    /// model trained on the export starts them joined (their consent, and what they bought,
    /// then reach every identifier of theirs). Absent from exports written before it existed.
    #[serde(default)]
    pub withheld_persons: Vec<Vec<String>>,
    /// Items deleted from the served catalog (the caller's list): a model trained on the
    /// export never serves them, though events name them. Absent from exports written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_items: Vec<String>,
}

impl ExportManifest {
    /// The manifest's file name.
    pub const FILE_NAME: &'static str = "manifest.json";
}

/// The trainer's schema for one event, with the live person id.
fn event_json(event: &EventRecord, person: &str) -> Value {
    let mut nested = Map::new();
    let mut top = Map::new();
    for key in &event.identifiers {
        if let Some(identifier) = Identifier::parse_key(key) {
            let kind = identifier.kind.as_str().to_string();
            // One of each kind nested, a second of a kind at the top level (the schema's two
            // places); events carry no more than that.
            if nested.contains_key(&kind) {
                top.insert(kind, Value::String(identifier.value));
            } else {
                nested.insert(kind, Value::String(identifier.value));
            }
        }
    }
    let mut line = json!({
        "event_id": event.event_id,
        "person_id": person,
        "identifiers": nested,
        "channel": event.channel,
        "type": event.event_type,
        // RFC 3339: an epoch number of 8 digits (a time in 1970) reads as a date written as
        // digits, which the trainer refuses.
        "timestamp": datasets::schema::format_timestamp(event.timestamp),
    });
    let object = line.as_object_mut().expect("a JSON object");
    object.extend(top);
    for (field, value) in [
        ("item_id", event.item_id.clone().map(Value::String)),
        ("value", event.value.map(|v| json!(v))),
        ("recommendation_id", event.recommendation_id.clone().map(Value::String)),
        ("store_id", event.store_id.clone().map(Value::String)),
    ] {
        if let Some(value) = value {
            object.insert(field.to_string(), value);
        }
    }
    line
}

fn write_file(dir: &Path, name: &str, write: &mut dyn FnMut(&mut dyn Write) -> Result<()>) -> Result<()> {
    let temporary = dir.join(format!(".{name}.tmp"));
    let failed = |source: std::io::Error| Error::Export {
        context: format!("writing {}", temporary.display()),
        source,
    };
    let file = std::fs::File::create(&temporary).map_err(failed)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write(&mut out)?;
    let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, dir.join(name)).map_err(failed)
}

impl Store {
    /// Writes an export of the store and `catalog` into `dir` (created if missing), with the
    /// items `deleted` from it; see the module docs.
    pub fn export(
        &self,
        dir: &Path,
        catalog: &[Item],
        deleted: &[String],
        at: i64,
    ) -> Result<ExportManifest> {
        let io = |context: String| move |source: std::io::Error| Error::Export { context, source };
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let _ = std::fs::remove_file(dir.join(ExportManifest::FILE_NAME));
        let default = self.shared.options.consent_default.clone();
        let mut manifest = ExportManifest {
            store_id: self.store_id().to_string(),
            watermark: 0,
            exported_at: at,
            events: 0,
            persons: 0,
            withheld_events: 0,
            withheld_purchases: 0,
            items: catalog.len() as u64,
            links: Vec::new(),
            separations: Vec::new(),
            suppressed: Vec::new(),
            withheld_persons: Vec::new(),
            deleted_items: deleted.to_vec(),
        };
        let backend = &self.shared.backend;
        let weights = self.shared.weights.read().unwrap_or_else(PoisonError::into_inner).clone();
        // The withheld persons' purchases and returns, written after the events.
        let mut purchases: Vec<Value> = Vec::new();
        write_file(dir, "events.jsonl", &mut |out| {
            purchases.clear();
            // Held from before the snapshot opens until the graph is read, so that neither
            // is taken between an erasure's commit and the graph rebuilt after it.
            let mut quiet = Some(self.shared.rebuilding.lock().unwrap_or_else(PoisonError::into_inner));
            backend.read(&mut |r: &dyn crate::backend::Reader| -> Result<()> {
                // The graph read after the snapshot opened: it holds every link the snapshot
                // does (the writer applies a link to it before committing), perhaps a few
                // newer; read before, a link in the snapshot could be missing from it, and a
                // person who withholds consent could be exported under a new identifier.
                let graph = self.shared.graph.read().unwrap_or_else(PoisonError::into_inner).clone();
                drop(quiet.take());
                manifest.watermark = r.next_seq()?;
                let mut allowed: HashMap<String, bool> = HashMap::new();
                let mut withheld: BTreeSet<String> = BTreeSet::new();
                let mut persons: BTreeSet<String> = BTreeSet::new();
                let mut withheld_persons: Vec<Vec<String>> = Vec::new();
                let (mut events, mut withheld_events) = (0, 0);
                r.scan_events(0, &mut |event| {
                    // Records of API calls and impressions are no training data, but a
                    // consent change is read for its person below: one whose only events
                    // here are consent changes (known from the model's own data) must reach
                    // the suppression list too.
                    let record = [CONSENT_EVENT, LINK_EVENT, UNLINK_EVENT, IMPRESSION_EVENT]
                        .contains(&event.event_type.as_str());
                    if record && event.event_type != CONSENT_EVENT {
                        return Ok(true);
                    }
                    let anchor = Identifier::parse_key(&event.anchor);
                    let ids = anchor.and_then(|a| graph.person(std::slice::from_ref(&a)));
                    let Some(ids) = ids else { return Ok(true) };
                    let allows = match allowed.get(&ids.key) {
                        Some(&allows) => allows,
                        None => {
                            let mut recorded = Vec::new();
                            for identifier in &ids.identifiers {
                                recorded.extend(r.consent(&identifier.key())?);
                            }
                            let consent = effective_consent(&default, &recorded);
                            let allows = consent.get(PERSONALIZATION).copied().unwrap_or(true);
                            if !allows {
                                withheld.extend(ids.identifiers.iter().map(|i| suppression_hash(&i.key())));
                                if ids.identifiers.len() > 1 {
                                    withheld_persons
                                        .push(ids.identifiers.iter().map(Identifier::key).collect());
                                }
                            }
                            allowed.insert(ids.key.clone(), allows);
                            allows
                        }
                    };
                    if record {
                        return Ok(true);
                    }
                    if !allows {
                        withheld_events += 1;
                        let weighed = weights.weigh_named(&event.event_type, &event.channel, event.value);
                        if weighed.consumption != 0 && event.item_id.is_some() {
                            purchases.push(event_json(&event, &ids.key));
                        }
                        return Ok(true);
                    }
                    serde_json::to_writer(&mut *out, &event_json(&event, &ids.key))
                        .map_err(|e| Error::Storage(format!("encoding event {}: {e}", event.seq)))?;
                    out.write_all(b"\n").map_err(io("writing events.jsonl".into()))?;
                    persons.insert(ids.key);
                    events += 1;
                    Ok(true)
                })?;
                manifest.events = events;
                manifest.withheld_events = withheld_events;
                manifest.withheld_persons = withheld_persons;
                manifest.persons = persons.len() as u64;
                manifest.links.clear();
                manifest.separations.clear();
                // An explicit link counts for training only where the live graph holds it
                // now: one the identity rules refused (or an unlink undid) joined nothing.
                let joined = |a: &str, b: &str| {
                    let (Some(a), Some(b)) = (Identifier::parse_key(a), Identifier::parse_key(b)) else {
                        return false;
                    };
                    graph
                        .person(std::slice::from_ref(&a))
                        .is_some_and(|p| p.known && p.identifiers.contains(&b))
                };
                r.scan_links(&mut |link| {
                    if let [a, b] = link.identifiers.as_slice() {
                        let exported = ExportedLink { a: a.clone(), b: b.clone(), at: link.at };
                        match link.kind {
                            LinkKind::Link if !joined(a, b) => {}
                            LinkKind::Link => manifest.links.push(exported),
                            LinkKind::Unlink => manifest.separations.push(exported),
                            LinkKind::Event => {}
                        }
                    }
                    Ok(())
                })?;
                let mut suppressed: BTreeMap<String, Suppressed> = withheld
                    .into_iter()
                    .map(|hash| (hash.clone(), Suppressed { hash, reason: "no_consent".into(), until: None }))
                    .collect();
                r.scan_erased(&mut |hash, erased| {
                    suppressed.insert(
                        hash.to_string(),
                        Suppressed {
                            hash: hash.to_string(),
                            reason: "erased".into(),
                            until: Some(erased.at),
                        },
                    );
                    Ok(())
                })?;
                manifest.suppressed = suppressed.into_values().collect();
                Ok(())
            })
        })?;
        manifest.withheld_purchases = purchases.len() as u64;
        write_file(dir, "withheld.jsonl", &mut |out| {
            for purchase in &purchases {
                serde_json::to_writer(&mut *out, purchase)
                    .map_err(|e| Error::Storage(format!("encoding a withheld purchase: {e}")))?;
                out.write_all(b"\n").map_err(io("writing withheld.jsonl".into()))?;
            }
            Ok(())
        })?;
        write_file(dir, "items.jsonl", &mut |out| {
            for item in catalog {
                serde_json::to_writer(&mut *out, &item_json(item))
                    .map_err(|e| Error::Storage(format!("encoding item {}: {e}", item.item_id)))?;
                out.write_all(b"\n").map_err(io("writing items.jsonl".into()))?;
            }
            Ok(())
        })?;
        write_file(dir, ExportManifest::FILE_NAME, &mut |out| {
            serde_json::to_writer_pretty(&mut *out, &manifest)
                .map_err(|e| Error::Storage(format!("encoding the manifest: {e}")))
        })?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", dir.display())))?;
        Ok(manifest)
    }
}

/// One catalog entry in the catalog loader's JSON schema.
fn item_json(item: &Item) -> Value {
    let time = |t: Option<i64>| t.map(datasets::schema::format_timestamp);
    json!({
        "item_id": item.item_id,
        "title": item.title,
        "description": item.description,
        "categories": item.categories,
        "brand": item.brand,
        "tags": item.tags,
        "price": item.price,
        "in_stock": item.in_stock,
        "store_stock": item.store_stock,
        "available_from": time(item.available_from),
        "available_until": time(item.available_until),
    })
}

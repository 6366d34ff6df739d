//! Reading the files users have into a data set, with clear errors and load reports.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use datasets::consumed::{Consumed, HeldByIdentifier};
use datasets::dataset::{Dataset, InteractionsBuilder};
use datasets::identity::{Placeholders, resolve_with};
use datasets::load::{
    Catalog, CatalogFormat, LoadOptions, read_catalog, read_events, read_interactions_with,
};
use datasets::schema::{Event, Identifier, IdentifierKind};
use models::train::config::TrainConfig;

/// What kind of interaction file a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON Lines events (any identifiers, channels, types).
    Events,
    /// CSV/TSV with `user_id`, `item_id`, optional `value`, `timestamp`.
    Interactions,
}

impl Kind {
    /// Events for `.jsonl`/`.ndjson`/`.json`, interactions otherwise.
    pub fn of(path: &Path) -> Kind {
        match CatalogFormat::from_path(&path.to_string_lossy()) {
            CatalogFormat::JsonLines => Kind::Events,
            CatalogFormat::Delimited => Kind::Interactions,
        }
    }
}

/// How far ahead of the clock an event may be dated: clocks of channels drift, and a store
/// in another time zone may send local times as UTC.
pub const FUTURE_TOLERANCE_SECONDS: i64 = 86_400;

/// Load options for training input: events and rows dated more than a day ahead of now are
/// refused (or skipped and counted, with `skip_invalid`).
pub fn load_options(skip_invalid: bool) -> LoadOptions {
    let now = cli::unix_now();
    LoadOptions { skip_invalid, max_timestamp: Some(now.saturating_add(FUTURE_TOLERANCE_SECONDS)) }
}

/// Opens an input file: a regular file or a pipe (`/dev/stdin`); a device (`/dev/zero`
/// would be read until memory runs out) or a directory is refused.
pub(crate) fn open(path: &Path) -> Result<BufReader<File>> {
    use std::os::unix::fs::FileTypeExt;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let kind = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.file_type();
    if !(kind.is_file() || kind.is_fifo()) {
        bail!("{} is not a regular file (a directory or a device): give a data file", path.display());
    }
    Ok(BufReader::with_capacity(1 << 20, file))
}

/// The whole text of a small input file (a config, an experiment), through [`open`].
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut open(path)?, &mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text)
}

fn name(path: &Path) -> String {
    path.display().to_string()
}

/// Loads a catalog, if a path is given.
pub fn catalog(path: Option<&Path>, options: &LoadOptions) -> Result<Option<Catalog>> {
    let Some(path) = path else { return Ok(None) };
    let format = CatalogFormat::from_path(&path.to_string_lossy());
    let (catalog, report) = read_catalog(open(path)?, &name(path), format, options)?;
    eprintln!("{}", report.summary());
    Ok(Some(catalog))
}

fn events(path: &Path, options: &LoadOptions) -> Result<Vec<Event>> {
    let (events, report) = read_events(open(path)?, &name(path), options)?;
    eprintln!("{}", report.summary());
    Ok(events)
}

/// Calls `f` with each event of an export's JSON Lines file (`events.jsonl`,
/// `withheld.jsonl`), the live person it was filed under (`person_id`, their most
/// trustworthy identifier) among its identifiers, so that resolution joins it to the
/// person's others whatever the event itself carried. A line that is no such event is an
/// error naming the file, the line and the field.
pub fn for_each_exported(path: &Path, f: &mut dyn FnMut(Event) -> Result<()>) -> Result<()> {
    let source = path.display().to_string();
    for (at, line) in open(path)?.lines().enumerate() {
        let line_no = at + 1;
        let line = line.with_context(|| format!("{source}:{line_no}: unreadable line"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{source}:{line_no}: not JSON"))?;
        let Some(person) = value.get("person_id").and_then(serde_json::Value::as_str) else {
            bail!("{source}:{line_no}: field `person_id`: missing (not a server's export?)");
        };
        let mut event = datasets::load::event_from_json(&value, &source, line_no)?;
        if let Some(person) = Identifier::parse_key(person)
            && !event.identifiers.contains(&person)
        {
            event.identifiers.push(person);
        }
        f(event)?;
    }
    Ok(())
}

/// A server's export: its manifest and where its files are.
#[derive(Debug, Clone)]
pub struct Export {
    /// The directory.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: store::ExportManifest,
    /// Suppression hash → erasure time (`None`: withheld consent, every event).
    suppressed: std::collections::HashMap<String, Option<i64>>,
}

impl Export {
    /// Reads the export in `dir`; a directory without a manifest is no (complete) export.
    pub fn read(dir: &Path) -> Result<Export> {
        let path = dir.join(store::ExportManifest::FILE_NAME);
        let mut text = String::new();
        open(&path)
            .and_then(|mut file| Ok(std::io::Read::read_to_string(&mut file, &mut text)?))
            .with_context(|| {
                format!("{} is not a complete export: cannot read {}", dir.display(), path.display())
            })?;
        let manifest: store::ExportManifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an export manifest", path.display()))?;
        let suppressed = manifest.suppressed.iter().map(|s| (s.hash.clone(), s.until)).collect();
        let export = Export { dir: dir.to_path_buf(), manifest, suppressed };
        // A directory copied in part would train a model that believes it saw everything up
        // to the watermark: what is missing would never be replayed.
        // Each file with the lines its manifest counts, and whether a count of 0 may mean "not
        // counted" (manifests written before `withheld_purchases` existed say 0).
        let manifest = &export.manifest;
        let files = [
            (export.events(), manifest.events, false),
            (export.items(), manifest.items, false),
            (export.withheld(), manifest.withheld_purchases, true),
        ];
        for (file, expected, uncounted) in files {
            if expected == 0 && (uncounted || !file.exists()) {
                continue;
            }
            let found = count_lines(&file).with_context(|| {
                format!("{} is not a complete export: cannot read {}", dir.display(), file.display())
            })?;
            if found != expected {
                bail!(
                    "{} is not a complete export: {} holds {found} lines where the manifest counts {expected} \
                     (copied in part?)",
                    dir.display(),
                    file.display()
                );
            }
        }
        Ok(export)
    }

    /// Every file of the export (the manifest, events, withheld purchases, catalog).
    pub fn files(&self) -> [PathBuf; 4] {
        [self.dir.join(store::ExportManifest::FILE_NAME), self.events(), self.withheld(), self.items()]
    }

    /// The events file.
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// The purchases and returns of persons who withheld consent (never trained on); exports
    /// written before it existed have none.
    pub fn withheld(&self) -> PathBuf {
        self.dir.join("withheld.jsonl")
    }

    /// The catalog file.
    pub fn items(&self) -> PathBuf {
        self.dir.join("items.jsonl")
    }

    /// The ids of the items the server's catalog held at the export (the model's catalog
    /// then, with the changes made on the server since): an item a model knows and this
    /// does not hold was deleted on the server.
    pub fn item_ids(&self, options: &LoadOptions) -> Result<std::collections::HashSet<String>> {
        let catalog = catalog(Some(&self.items()), options)?;
        Ok(catalog.into_iter().flat_map(|c| c.items).map(|item| item.item_id).collect())
    }

    /// Whether `event` is trained on, or belongs to an erased person (dated up to the
    /// erasure: dropped) or to one who withheld consent (kept out of training). An event
    /// that carries an erased person's identifiers beside another person's own (its most
    /// trustworthy identifier not erased, a card, account or address that is no
    /// placeholder: a visit to the erased person's tablet with another's card) stays that
    /// person's without them, as the server's store keeps it; `event` is redacted in place
    /// then. Where the one left would be a device, a cookie or a placeholder, whose the
    /// event was is not sure: it is dropped.
    fn suppresses(&self, event: &mut Event, placeholders: &Placeholders) -> Suppression {
        let status = |identifier: &Identifier| {
            let hash = store::record::suppression_hash(&identifier.key());
            match self.suppressed.get(&hash) {
                Some(None) => Some(Suppression::Withheld),
                Some(Some(until)) if event.timestamp <= *until => Some(Suppression::Erased),
                _ => None,
            }
        };
        let erased: Vec<bool> =
            event.identifiers.iter().map(|i| matches!(status(i), Some(Suppression::Erased))).collect();
        if erased.iter().any(|&e| e) {
            let anchor = (0..event.identifiers.len())
                .filter(|&at| !placeholders.contains(&event.identifiers[at]))
                .min_by_key(|&at| event.identifiers[at].kind.index());
            let shared = |at: usize| {
                matches!(event.identifiers[at].kind, IdentifierKind::DeviceId | IdentifierKind::CookieId)
            };
            if anchor.is_none_or(|at| erased[at] || shared(at)) {
                return Suppression::Erased;
            }
            let mut at = 0;
            event.identifiers.retain(|_| {
                at += 1;
                !erased[at - 1]
            });
        }
        if event.identifiers.iter().any(|i| matches!(status(i), Some(Suppression::Withheld))) {
            Suppression::Withheld
        } else {
            Suppression::None
        }
    }

    /// Each person who withheld consent as the server's live graph joined their identifiers
    /// when it exported, as one event that consumes nothing: resolution then joins them even
    /// where no event of theirs carries two of them (their linking events were never
    /// exported, or were learned by an earlier model).
    pub(crate) fn withheld_persons(&self) -> impl Iterator<Item = Event> + '_ {
        self.manifest.withheld_persons.iter().filter(|group| group.len() > 1).map(|group| Event {
            identifiers: group.iter().filter_map(|key| Identifier::parse_key(key)).collect(),
            channel: datasets::schema::Channel::parse("api"),
            event_type: datasets::schema::EventType::Custom("identity".into()),
            item_id: None,
            timestamp: self.manifest.exported_at,
            value: None,
            event_id: None,
        })
    }

    /// The explicit links and unlinks made through the server's API.
    pub(crate) fn decisions(&self) -> datasets::identity::Decisions {
        let pair = |a: &str, b: &str| Some((Identifier::parse_key(a)?, Identifier::parse_key(b)?));
        datasets::identity::Decisions {
            links: self
                .manifest
                .links
                .iter()
                .filter_map(|l| pair(&l.a, &l.b).map(|(a, b)| (a, b, l.at)))
                .collect(),
            separations: self.manifest.separations.iter().filter_map(|l| pair(&l.a, &l.b)).collect(),
        }
    }
}

/// The non-empty lines of the file at `path`.
fn count_lines(path: &Path) -> Result<u64> {
    let mut lines = 0;
    for line in open(path)?.lines() {
        lines += u64::from(!line?.trim().is_empty());
    }
    Ok(lines)
}

/// What an export's suppression list makes of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suppression {
    /// Trained on.
    None,
    /// An erased person's, dated up to the erasure: dropped.
    Erased,
    /// A person's who withheld consent to personalisation: not trained on, but what they
    /// bought is kept so that it is never offered back.
    Withheld,
}

/// Loads one or more files of the same kind into one data set, in order. Returns the data
/// set and, per file, how many input records it had (to split by origin afterwards).
pub fn dataset(
    paths: &[PathBuf],
    items: Option<&Path>,
    config: &TrainConfig,
    options: &LoadOptions,
) -> Result<(Dataset, Vec<usize>)> {
    dataset_with(paths, None, items, config, options, None).map(|(dataset, sizes, _)| (dataset, sizes))
}

/// What the inputs show held under identifiers no trained person answers for: those of
/// persons who withheld consent to personalisation (their events are not trained on), and
/// those resolution refused for merging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Withheld {
    /// What they hold, under each of their identifiers.
    pub held: HeldByIdentifier,
    /// The identifier keys of each such person known under more than one: as their events
    /// and the server's live graph at the export (`Export::withheld_persons`) join them
    /// under the identity rules and the export's links and unlinks.
    pub groups: Vec<Vec<String>>,
    /// What each identifier of a person's own kind (not a device or cookie) that resolution
    /// refused for merging holds: no person answers for it
    /// ([`datasets::consumed::Consumed::by_refused`]).
    pub refused: HeldByIdentifier,
}

/// [`dataset`] with a server's export applied: its suppression list to every event file, its
/// explicit links and unlinks to identity resolution. Also returns what the inputs show of
/// persons who withheld consent ([`Withheld`]). The files are of `kind` when the caller
/// knows it (the flag that named them), else as their extension says.
pub fn dataset_with(
    paths: &[PathBuf],
    kind: Option<Kind>,
    items: Option<&Path>,
    config: &TrainConfig,
    options: &LoadOptions,
    export: Option<&Export>,
) -> Result<(Dataset, Vec<usize>, Withheld)> {
    let Some(first) = paths.first() else { bail!("no input file given") };
    let named = kind.is_some();
    let kind = kind.unwrap_or_else(|| Kind::of(first));
    if export.is_some() && kind != Kind::Events {
        bail!(
            "{}: a server's export holds events; train it with --events files, not interactions",
            first.display()
        );
    }
    if let Some(other) = paths.iter().find(|p| !named && Kind::of(p) != kind) {
        bail!(
            "{} and {} are different kinds of file (events vs interactions)",
            first.display(),
            other.display()
        );
    }
    let catalog = catalog(items, options)?;
    let n_catalog = catalog.as_ref().map(|c| c.items.len());
    let weights = config.weights.clone();
    let mut sizes = Vec::with_capacity(paths.len());
    let mut withheld: Vec<Event> = Vec::new();
    let mut refused_held = HeldByIdentifier::new();
    let dataset = match kind {
        Kind::Events => {
            let mut all = Vec::new();
            let mut suppressed = 0usize;
            for path in paths {
                let mut loaded = events(path, options)?;
                if let Some(export) = export {
                    let before = loaded.len();
                    let placeholders = &config.identity.placeholders;
                    loaded.retain_mut(|event| match export.suppresses(event, placeholders) {
                        Suppression::None => true,
                        Suppression::Erased => false,
                        Suppression::Withheld => {
                            // Every event, not only purchases: a login joins the identifiers
                            // what they bought is held under.
                            withheld.push(event.clone());
                            false
                        }
                    });
                    suppressed += before - loaded.len();
                }
                sizes.push(loaded.len());
                all.extend(loaded);
            }
            if let Some(export) = export {
                eprintln!("export: {suppressed} events of erased or non-consenting persons left out");
                // What the export kept of non-consenting persons' purchases: not trained on,
                // held. An erasure since is on the suppression list, dated.
                let path = export.withheld();
                if path.exists() {
                    let mut kept = 0usize;
                    for_each_exported(&path, &mut |mut event| {
                        if export.suppresses(&mut event, &config.identity.placeholders) != Suppression::Erased
                        {
                            withheld.push(event);
                            kept += 1;
                        }
                        Ok(())
                    })?;
                    eprintln!("{}: {kept} purchases and returns of non-consenting persons", path.display());
                }
            }
            let decisions = export.map(Export::decisions).unwrap_or_default();
            let dataset = Dataset::from_events_with(&all, catalog, &weights, &config.identity, &decisions)?;
            if let Some(report) = &dataset.identity {
                eprintln!(
                    "identity: {} events, {} identifiers -> {} persons ({} merges, {} identifiers refused for merging, \
                     {} events with placeholder identifiers only left out)",
                    report.n_events,
                    report.n_identifiers,
                    report.n_persons,
                    report.n_merges,
                    report.refused.len(),
                    report.n_placeholder_events
                );
                for refused in report.refused.iter().take(5) {
                    eprintln!("  refused {}: {}", refused.identifier.key(), refused.reason);
                }
                // A person's own identifier refused for merging (an email a shared device
                // put in conflict) answers for no person: what it bought is kept under it.
                // Shared kinds (devices, cookies) are left out: a kiosk's visitors are many.
                let own: Vec<Identifier> = report
                    .refused
                    .iter()
                    .map(|r| r.identifier.clone())
                    .filter(|i| !matches!(i.kind, IdentifierKind::DeviceId | IdentifierKind::CookieId))
                    .collect();
                refused_held = Consumed::by_refused(&all, &own, &dataset.items, &weights);
            }
            dataset
        }
        Kind::Interactions => {
            let mut builder = InteractionsBuilder::new(catalog, &weights)?
                .with_placeholders(config.identity.placeholders.clone());
            for path in paths {
                let before = builder.len();
                let report =
                    read_interactions_with(open(path)?, &name(path), options, |user, item, value, time| {
                        builder.push(user, item, value, time)
                    })?;
                eprintln!("{}", report.summary());
                sizes.push(builder.len() - before);
            }
            if builder.placeholder_rows() > 0 {
                eprintln!(
                    "{} rows of placeholder user ids (`guest`, `0`, `undefined`, …) left out: they identify nobody \
                     (to keep ids such as `0`, set `[identity] builtin_placeholders = false`)",
                    builder.placeholder_rows()
                );
            }
            builder.finish()?
        }
    };
    // Items the data names that the catalog given does not have: each an untitled in-stock
    // entry, which may be meant (new items) or a sign that the two files write ids apart
    // (`SKU-001` against `sku-001`).
    if let Some(n_catalog) = n_catalog {
        let missing = &dataset.items.ids()[n_catalog.min(dataset.items.len())..];
        if !missing.is_empty() {
            let examples: Vec<&str> = missing.iter().take(3).map(String::as_str).collect();
            eprintln!(
                "{} items the data names are not in the catalog (such as `{}`): kept as untitled in-stock entries; \
                 check that both files write item ids alike",
                missing.len(),
                examples.join("`, `")
            );
        }
    }
    if let Some(export) = export {
        withheld.extend(export.withheld_persons());
    }
    let decisions = export.map(Export::decisions).unwrap_or_default();
    let resolution = resolve_with(&withheld, &config.identity, &decisions);
    let held = Consumed::by_identifier(&withheld, &resolution, &dataset.items, &weights);
    Ok((dataset, sizes, Withheld { held, groups: resolution.groups(), refused: refused_held }))
}

/// Reads a TOML training config; absent means every default.
pub fn config(path: Option<&Path>) -> Result<TrainConfig> {
    let Some(path) = path else { return Ok(TrainConfig::default()) };
    let text = read_text(path).context("cannot read the config")?;
    let config: TrainConfig = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
    config.validate().with_context(|| format!("invalid config {}", path.display()))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_copied_in_part_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = serde_json::json!({
            "store_id": "s", "watermark": 9, "exported_at": 100, "events": 2, "persons": 1,
            "withheld_events": 0, "withheld_purchases": 0, "items": 1, "links": [], "separations": [],
            "suppressed": [],
        });
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        std::fs::write(dir.path().join("items.jsonl"), "{\"item_id\":\"i1\"}\n").unwrap();
        let line =
            r#"{"person_id":"u1","user_id":"u1","channel":"web","type":"view","item_id":"i1","timestamp":5}"#;
        std::fs::write(dir.path().join("events.jsonl"), format!("{line}\n")).unwrap();
        let message = format!("{:#}", Export::read(dir.path()).unwrap_err());
        assert!(message.contains("events.jsonl holds 1 lines where the manifest counts 2"), "{message}");
        std::fs::write(dir.path().join("events.jsonl"), format!("{line}\n{line}\n")).unwrap();
        Export::read(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("items.jsonl")).unwrap();
        let message = format!("{:#}", Export::read(dir.path()).unwrap_err());
        assert!(message.contains("cannot read") && message.contains("items.jsonl"), "{message}");
        // A device in its place is refused, not read until memory runs out.
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("items.jsonl")).unwrap();
        let message = format!("{:#}", Export::read(dir.path()).unwrap_err());
        assert!(message.contains("is not a regular file"), "{message}");
    }

    #[test]
    fn a_withheld_person_stays_joined_as_the_live_graph_joined_them() {
        // The server's live graph joined a card and a cookie that no exported event carries
        // together; the person withheld consent and bought under the card.
        let dir = tempfile::tempdir().unwrap();
        let hash = |key: &str| store::record::suppression_hash(key);
        let manifest = serde_json::json!({
            "store_id": "s", "watermark": 9, "exported_at": 100, "events": 1, "persons": 1,
            "withheld_events": 1, "withheld_purchases": 1, "items": 0, "links": [], "separations": [],
            "suppressed": [
                {"hash": hash("loyalty_id:L1"), "reason": "no_consent", "until": null},
                {"hash": hash("cookie_id:c1"), "reason": "no_consent", "until": null},
            ],
            "withheld_persons": [["loyalty_id:L1", "cookie_id:c1"]],
        });
        std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        let line = |person: &str, ids: &str, kind: &str| {
            format!(
                r#"{{"person_id":"{person}","identifiers":{ids},"channel":"store","type":"{kind}","item_id":"i1","timestamp":50}}"#
            )
        };
        let events = line("u:someone", r#"{"user_id":"someone"}"#, "view");
        std::fs::write(dir.path().join("events.jsonl"), events + "\n").unwrap();
        let held = line("loyalty_id:L1", r#"{"loyalty_id":"L1"}"#, "purchase");
        std::fs::write(dir.path().join("withheld.jsonl"), held + "\n").unwrap();
        let export = Export::read(dir.path()).unwrap();
        let (_, _, withheld) = dataset_with(
            &[export.events()],
            Some(Kind::Events),
            None,
            &TrainConfig::default(),
            &LoadOptions::default(),
            Some(&export),
        )
        .unwrap();
        assert_eq!(withheld.groups, [["cookie_id:c1", "loyalty_id:L1"]]);
        // What the card bought is held under the cookie too.
        assert_eq!(withheld.held.get("cookie_id:c1").map(Vec::len), Some(1), "{:?}", withheld.held);
    }

    #[test]
    fn another_person_s_event_loses_only_the_erased_identifiers() {
        let hash = |key: &str| store::record::suppression_hash(key);
        let manifest: store::ExportManifest = serde_json::from_value(serde_json::json!({
            "store_id": "s", "watermark": 9, "exported_at": 100, "events": 0, "persons": 0,
            "withheld_events": 0, "items": 0, "links": [], "separations": [],
            "suppressed": [
                {"hash": hash("device_id:gone-tablet"), "reason": "erased", "until": 80},
                {"hash": hash("cookie_id:gone"), "reason": "erased", "until": 80},
                {"hash": hash(&Identifier::new(IdentifierKind::Email, "shy@x.org").unwrap().key()),
                 "reason": "no_consent", "until": null},
            ],
        }))
        .unwrap();
        let suppressed = manifest.suppressed.iter().map(|s| (s.hash.clone(), s.until)).collect();
        let export = Export { dir: PathBuf::new(), manifest, suppressed };
        let event = |ids: &[(IdentifierKind, &str)], at: i64| Event {
            identifiers: ids.iter().map(|&(kind, value)| Identifier::new(kind, value).unwrap()).collect(),
            channel: datasets::schema::Channel::parse("store"),
            event_type: datasets::schema::EventType::Purchase,
            item_id: Some("i1".into()),
            timestamp: at,
            value: None,
            event_id: None,
        };
        use IdentifierKind::{CookieId, DeviceId, Email, LoyaltyId};
        let rules = datasets::identity::IdentityRules::default();
        let suppresses = |event: &mut Event| export.suppresses(event, &rules.placeholders);
        // Another card holder's purchase at the erased person's tablet: theirs, without it.
        let mut shared = event(&[(DeviceId, "gone-tablet"), (LoyaltyId, "L7")], 50);
        assert!(suppresses(&mut shared) == Suppression::None);
        assert_eq!(shared.identifiers, [Identifier::new(LoyaltyId, "L7").unwrap()]);
        // The erased person's own event (its most trustworthy identifier erased): dropped.
        let mut own = event(&[(CookieId, "gone"), (DeviceId, "gone-tablet")], 50);
        assert!(suppresses(&mut own) == Suppression::Erased);
        // What would be left is a shared kiosk's or a placeholder: whose it was is not sure.
        let mut kiosk = event(&[(DeviceId, "kiosk"), (CookieId, "gone")], 50);
        assert!(suppresses(&mut kiosk) == Suppression::Erased);
        let mut placeholder = event(&[(Email, "test@test.com"), (CookieId, "gone")], 50);
        assert!(suppresses(&mut placeholder) == Suppression::Erased);
        // After the erasure: someone new, kept whole.
        let mut later = event(&[(DeviceId, "gone-tablet"), (CookieId, "gone")], 90);
        assert!(suppresses(&mut later) == Suppression::None);
        assert_eq!(later.identifiers.len(), 2);
        // A withholding person's event beside the erased tablet: withheld, without it.
        let mut shy = event(&[(DeviceId, "gone-tablet"), (Email, "shy@x.org")], 50);
        assert!(suppresses(&mut shy) == Suppression::Withheld);
        assert_eq!(shy.identifiers.len(), 1);
    }

    #[test]
    fn unknown_config_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[als]\nfactors = 8\nfactorz = 3\n").unwrap();
        let message = format!("{:#}", config(Some(&path)).unwrap_err());
        assert!(message.contains("unknown field `factorz`"), "{message}");
        std::fs::write(&path, "[models]\nenabled = [\"als\", \"bpr\"]\n").unwrap();
        let message = format!("{:#}", config(Some(&path)).unwrap_err());
        assert!(message.contains("unknown variant `bpr`"), "{message}");
        std::fs::write(&path, "[als]\nfactors = 0\n").unwrap();
        let message = format!("{:#}", config(Some(&path)).unwrap_err());
        assert!(message.contains("als.factors"), "{message}");
        std::fs::write(&path, "[popularity]\nhalf_life_days = -2.0\n").unwrap();
        let message = format!("{:#}", config(Some(&path)).unwrap_err());
        assert!(message.contains("popularity.half_life_days"), "{message}");
        std::fs::write(&path, "[models]\nenabled = [\"als\"]\n[als]\nfactors = 16\niterations = 3\n")
            .unwrap();
        let parsed = config(Some(&path)).unwrap();
        assert_eq!((parsed.als.factors, parsed.als.iterations, parsed.models.enabled.len()), (16, 3, 1));
    }
}

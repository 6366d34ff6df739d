//! Server settings: a TOML file, overridden by `OMNIREC_*` environment variables, validated
//! before the server binds.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! request_timeout_ms = 2000
//! max_body_bytes = 65536
//! default_placement = "home"
//!
//! [[keys]]
//! name = "storefront"
//! roles = ["read"]
//! env = "STOREFRONT_KEY"       # the key is read from this variable…
//!
//! [[keys]]
//! name = "ops"
//! roles = ["admin"]
//! sha256 = "9f86d0…"            # …or only its SHA-256 is stored
//!
//! [placements.home]
//! channel = "web"
//! k = 12
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use models::serve::candidates::CandidateParams;
use models::serve::rules::{PlacementConfig, PlacementKind, StockRule};
use serde::Deserialize;

use crate::auth::{ApiKey, Role};
use crate::error::{Error, Result};

/// One API key entry of the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A label for logs and metrics (never the key).
    pub name: String,
    /// What the key may do.
    pub roles: Vec<Role>,
    /// Environment variable holding the key.
    #[serde(default)]
    pub env: Option<String>,
    /// Hex SHA-256 of the key.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The whole settings file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// The model artifact (overridden by `--model`).
    pub model: Option<PathBuf>,
    /// Directory for the server's state: the active model is recorded there so a restart
    /// serves what the last reload swapped in.
    pub data_dir: Option<PathBuf>,
    /// Serve without API keys on a non-loopback address.
    pub allow_open: bool,
    /// Longest time a read may take before it is answered with 408 (model reloads and the
    /// `ingest` role's writes are exempt: a reload takes as long as reading the artifact
    /// takes, and a write answers once durable or failed, never 408 while kept).
    pub request_timeout_ms: u64,
    /// Longest time a client may take to send a request head once it has started one; the
    /// connection is closed after that.
    pub header_read_timeout_ms: u64,
    /// On SIGTERM, how long in-flight requests may take to finish before the server exits
    /// anyway.
    pub shutdown_timeout_ms: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// A scoring thread that has scored this many microseconds since it last let the
    /// request-handling thread have its core yields it after the answer in hand (0: never).
    /// Under load this keeps answers from waiting unwritten behind a kernel time slice
    /// ([`crate::pool`]).
    pub scoring_slice_us: u64,
    /// Pins each scoring thread to its own core of those the process may run on (Linux), so
    /// a request's scoring finds its data in that core's caches instead of following the
    /// thread to the other core ([`crate::pool::start`]). Turn it off where other busy
    /// processes share the cores.
    pub pin_scoring_threads: bool,
    /// Placement used when a request names neither a placement nor a channel.
    pub default_placement: String,
    /// API keys; none means an open server.
    pub keys: Vec<KeyConfig>,
    /// Named placements; empty means the built-in set ([`default_placements`]).
    pub placements: BTreeMap<String, PlacementConfig>,
    /// The live API: events, catalog changes, identities, profiles.
    pub live: LiveConfig,
    /// The candidate stage of large catalogs (`[candidates]`: `per_member`, `min_items`,
    /// `ann_from`, `probe`, `recall`, `blend_recall`, `postings`, `scan`; `per_member = 0`
    /// scores the whole catalog for every request).
    pub candidates: CandidateParams,
}

/// The `[live]` table: limits of the live API and the store's behaviour.
///
/// ```toml
/// [live]
/// max_events_per_request = 1000
/// max_items_per_request = 1000
/// max_ingest_body_bytes = 4194304
/// max_future_seconds = 86400       # events dated later than now + this are refused
/// recent_events = 200              # a person's newest live events used per answer
/// consent_default = { personalization = true, analytics = true }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Most events one `POST /v1/events` may carry.
    pub max_events_per_request: usize,
    /// Most items one `PUT /v1/items` may carry.
    pub max_items_per_request: usize,
    /// Largest body of those two.
    pub max_ingest_body_bytes: usize,
    /// How far ahead of the server's clock an event may be dated (clocks drift; a store in
    /// another time zone may send local times as UTC).
    pub max_future_seconds: i64,
    /// A person's newest live events used per answer.
    pub recent_events: usize,
    /// Consent of persons who never set theirs.
    pub consent_default: BTreeMap<String, bool>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            max_events_per_request: 1_000,
            max_items_per_request: 1_000,
            max_ingest_body_bytes: 4 * 1024 * 1024,
            max_future_seconds: 86_400,
            recent_events: 200,
            consent_default: [
                (store::PERSONALIZATION.to_string(), true),
                (store::ANALYTICS.to_string(), true),
            ]
            .into(),
        }
    }
}

impl LiveConfig {
    /// The store's options under these settings.
    pub fn store_options(&self) -> store::StoreOptions {
        store::StoreOptions {
            consent_default: self.consent_default.clone(),
            recent_events: self.recent_events,
            ..store::StoreOptions::default()
        }
    }

    fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("live.max_events_per_request", self.max_events_per_request),
            ("live.max_items_per_request", self.max_items_per_request),
            ("live.recent_events", self.recent_events),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(Error::Config(format!("{name}: must be between 1 and 100000, found {value}")));
            }
        }
        if self.max_ingest_body_bytes < 1024 {
            return Err(Error::Config("live.max_ingest_body_bytes: must be at least 1024".into()));
        }
        if self.max_future_seconds < 0 {
            return Err(Error::Config("live.max_future_seconds: must not be negative".into()));
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            model: None,
            data_dir: None,
            allow_open: false,
            request_timeout_ms: 2_000,
            header_read_timeout_ms: 5_000,
            shutdown_timeout_ms: 10_000,
            max_body_bytes: 64 * 1024,
            scoring_slice_us: crate::pool::DEFAULT_SLICE_US,
            pin_scoring_threads: true,
            default_placement: "home".into(),
            keys: Vec::new(),
            placements: BTreeMap::new(),
            live: LiveConfig::default(),
            candidates: CandidateParams::default(),
        }
    }
}

/// The placements a server has when its configuration defines none: one per channel.
pub fn default_placements() -> BTreeMap<String, PlacementConfig> {
    let placement =
        |channel: &str, k: usize| PlacementConfig { channel: Some(channel.into()), k, ..Default::default() };
    BTreeMap::from([
        ("home".into(), placement("web", 12)),
        ("app_home".into(), placement("app", 10)),
        (
            "product_page".into(),
            PlacementConfig { kind: PlacementKind::Similar, max_per_category: None, ..placement("web", 8) },
        ),
        ("email_weekly".into(), PlacementConfig { max_per_category: Some(2), ..placement("email", 6) }),
        ("sms".into(), placement("sms", 1)),
        ("store_kiosk".into(), PlacementConfig { in_stock: StockRule::Store, ..placement("store", 6) }),
        ("call_center".into(), placement("call_center", 5)),
    ])
}

impl ServerConfig {
    /// Reads `path` (or the defaults without one), then applies environment overrides.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config = match path {
            None => ServerConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
        };
        config.apply_env(env)?;
        Ok(config)
    }

    /// Applies `OMNIREC_LISTEN`, `OMNIREC_MODEL`, `OMNIREC_DATA_DIR`, `OMNIREC_ALLOW_OPEN`,
    /// `OMNIREC_REQUEST_TIMEOUT_MS`, `OMNIREC_HEADER_READ_TIMEOUT_MS`,
    /// `OMNIREC_SHUTDOWN_TIMEOUT_MS`, `OMNIREC_MAX_BODY_BYTES`, `OMNIREC_SCORING_SLICE_US`,
    /// `OMNIREC_PIN_SCORING_THREADS` and `OMNIREC_DEFAULT_PLACEMENT`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, raw: &str, expected: &str) -> Result<T> {
            raw.trim().parse().map_err(|_| Error::Config(format!("{name}: expected {expected}, got `{raw}`")))
        }
        if let Some(raw) = env("OMNIREC_LISTEN") {
            self.listen = parse("OMNIREC_LISTEN", &raw, "an address such as 127.0.0.1:8080")?;
        }
        if let Some(raw) = env("OMNIREC_MODEL") {
            self.model = Some(raw.into());
        }
        if let Some(raw) = env("OMNIREC_DATA_DIR") {
            self.data_dir = Some(raw.into());
        }
        if let Some(raw) = env("OMNIREC_ALLOW_OPEN") {
            self.allow_open = parse("OMNIREC_ALLOW_OPEN", &raw, "true or false")?;
        }
        if let Some(raw) = env("OMNIREC_REQUEST_TIMEOUT_MS") {
            self.request_timeout_ms = parse("OMNIREC_REQUEST_TIMEOUT_MS", &raw, "a number of milliseconds")?;
        }
        if let Some(raw) = env("OMNIREC_HEADER_READ_TIMEOUT_MS") {
            self.header_read_timeout_ms =
                parse("OMNIREC_HEADER_READ_TIMEOUT_MS", &raw, "a number of milliseconds")?;
        }
        if let Some(raw) = env("OMNIREC_SHUTDOWN_TIMEOUT_MS") {
            self.shutdown_timeout_ms =
                parse("OMNIREC_SHUTDOWN_TIMEOUT_MS", &raw, "a number of milliseconds")?;
        }
        if let Some(raw) = env("OMNIREC_MAX_BODY_BYTES") {
            self.max_body_bytes = parse("OMNIREC_MAX_BODY_BYTES", &raw, "a number of bytes")?;
        }
        if let Some(raw) = env("OMNIREC_SCORING_SLICE_US") {
            self.scoring_slice_us = parse("OMNIREC_SCORING_SLICE_US", &raw, "a number of microseconds")?;
        }
        if let Some(raw) = env("OMNIREC_PIN_SCORING_THREADS") {
            self.pin_scoring_threads = parse("OMNIREC_PIN_SCORING_THREADS", &raw, "true or false")?;
        }
        if let Some(raw) = env("OMNIREC_DEFAULT_PLACEMENT") {
            self.default_placement = raw;
        }
        Ok(())
    }

    /// The placements in effect: the configured ones, or the built-in set.
    pub fn placements(&self) -> BTreeMap<String, PlacementConfig> {
        if self.placements.is_empty() { default_placements() } else { self.placements.clone() }
    }

    /// Checks everything that can be checked without a model, and resolves the keys.
    pub fn validate(&self, env: impl Fn(&str) -> Option<String>) -> Result<Vec<ApiKey>> {
        for (name, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("{name}: must be at least 1")));
            }
        }
        if self.max_body_bytes < 256 {
            return Err(Error::Config("max_body_bytes: must be at least 256".into()));
        }
        self.live.validate()?;
        self.candidates.validate().map_err(|e| Error::Config(e.to_string()))?;
        let placements = self.placements();
        if !placements.contains_key(&self.default_placement) {
            return Err(Error::Config(format!(
                "default_placement: `{}` is not a placement (have: {})",
                self.default_placement,
                placements.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        for (name, placement) in &placements {
            placement.validate(name).map_err(|e| Error::Config(format!("placements.{name}: {e}")))?;
        }
        let mut keys = Vec::new();
        for (n, key) in self.keys.iter().enumerate() {
            let at = format!("keys[{n}] (`{}`)", key.name);
            if key.roles.is_empty() {
                return Err(Error::Config(format!("{at}: roles must not be empty")));
            }
            let digest = match (&key.env, &key.sha256) {
                (Some(var), None) => {
                    let secret = env(var).ok_or_else(|| {
                        Error::Config(format!("{at}: environment variable {var} is not set"))
                    })?;
                    // Requests present keys trimmed, so a secret read with a trailing newline
                    // (a file through `$(cat …)`) must be trimmed too, or it never matches.
                    let secret = secret.trim();
                    if secret.len() < 16 {
                        return Err(Error::Config(format!(
                            "{at}: the key in {var} is shorter than 16 characters (after trimming white space)"
                        )));
                    }
                    crate::auth::digest(secret)
                }
                (None, Some(hex)) => crate::auth::parse_digest(hex)
                    .ok_or_else(|| Error::Config(format!("{at}: sha256 must be 64 hex digits")))?,
                _ => return Err(Error::Config(format!("{at}: give exactly one of `env` and `sha256`"))),
            };
            if let Some(same) = keys.iter().find(|k: &&ApiKey| k.digest == digest) {
                // One secret under two entries would get the roles of whichever matched last.
                return Err(Error::Config(format!(
                    "{at}: the same key as `{}`; give each key one entry with all its roles",
                    same.name
                )));
            }
            keys.push(ApiKey { name: key.name.clone(), roles: key.roles.clone(), digest });
        }
        if keys.is_empty() && !self.listen.ip().is_loopback() && !self.allow_open {
            return Err(Error::Config(format!(
                "no API keys are configured, so the server is open; it binds only to loopback addresses \
                 unless allow_open = true (OMNIREC_ALLOW_OPEN=true), and {} is not one",
                self.listen
            )));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_valid_and_loopback() {
        let config = ServerConfig::load(None, no_env).unwrap();
        assert!(config.listen.ip().is_loopback());
        assert!(config.validate(no_env).unwrap().is_empty());
        assert!(config.placements().contains_key("store_kiosk"));
    }

    #[test]
    fn env_overrides_and_names_bad_values() {
        let env = |name: &str| match name {
            "OMNIREC_LISTEN" => Some("0.0.0.0:9000".to_string()),
            "OMNIREC_REQUEST_TIMEOUT_MS" => Some("250".to_string()),
            "OMNIREC_SCORING_SLICE_US" => Some("0".to_string()),
            "OMNIREC_PIN_SCORING_THREADS" => Some("false".to_string()),
            _ => None,
        };
        let config = ServerConfig::load(None, env).unwrap();
        assert_eq!((config.listen.port(), config.request_timeout_ms), (9000, 250));
        assert_eq!(config.scoring_slice_us, 0);
        assert_eq!(ServerConfig::default().scoring_slice_us, crate::pool::DEFAULT_SLICE_US);
        assert!(!config.pin_scoring_threads && ServerConfig::default().pin_scoring_threads);
        // Open and not on loopback: refused until allowed.
        let err = config.validate(no_env).unwrap_err().to_string();
        assert!(err.contains("allow_open"), "{err}");
        let bad = |name: &str| (name == "OMNIREC_MAX_BODY_BYTES").then(|| "lots".to_string());
        let err = ServerConfig::load(None, bad).unwrap_err().to_string();
        assert!(err.contains("OMNIREC_MAX_BODY_BYTES") && err.contains("lots"), "{err}");
        let bad = |name: &str| (name == "OMNIREC_SCORING_SLICE_US").then(|| "-5".to_string());
        let err = ServerConfig::load(None, bad).unwrap_err().to_string();
        assert!(err.contains("OMNIREC_SCORING_SLICE_US") && err.contains("microseconds"), "{err}");
        let bad = |name: &str| (name == "OMNIREC_PIN_SCORING_THREADS").then(|| "yes".to_string());
        let err = ServerConfig::load(None, bad).unwrap_err().to_string();
        assert!(err.contains("OMNIREC_PIN_SCORING_THREADS") && err.contains("true or false"), "{err}");
    }

    #[test]
    fn file_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "[placements.home]\nk = 0\n").unwrap();
        let err = ServerConfig::load(Some(&path), no_env).unwrap().validate(no_env).unwrap_err().to_string();
        assert!(err.contains("placements.home") && err.contains("k must be"), "{err}");
        std::fs::write(&path, "[placements.home]\nkk = 3\n").unwrap();
        let err = ServerConfig::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(err.contains("kk"), "{err}");
        std::fs::write(&path, "[[keys]]\nname = \"a\"\nroles = [\"read\"]\nenv = \"MISSING\"\n").unwrap();
        let err = ServerConfig::load(Some(&path), no_env).unwrap().validate(no_env).unwrap_err().to_string();
        assert!(err.contains("MISSING"), "{err}");
        std::fs::write(&path, "[[keys]]\nname = \"a\"\nroles = [\"root\"]\nsha256 = \"00\"\n").unwrap();
        let err = ServerConfig::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(err.contains("root"), "{err}");
        // Blend weights are keyed by model: a misspelt model is named with the valid ones.
        std::fs::write(&path, "[placements.home.weights]\nals = 1.0\nitem_knn = 0.5\n").unwrap();
        let config = ServerConfig::load(Some(&path), no_env).unwrap();
        let weights = &config.placements()["home"].weights;
        assert_eq!(weights.get(&models::recommender::ModelKind::ItemKnn), Some(&0.5));
        std::fs::write(&path, "[placements.home.weights]\nalss = 1.0\n").unwrap();
        let err = ServerConfig::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(err.contains("alss") && err.contains("item_knn"), "{err}");
    }

    fn keyed(entries: &[(&str, &str, &str)]) -> ServerConfig {
        let keys = entries
            .iter()
            .map(|(name, role, var)| KeyConfig {
                name: name.to_string(),
                roles: vec![if *role == "admin" { Role::Admin } else { Role::Read }],
                env: Some(var.to_string()),
                sha256: None,
            })
            .collect();
        ServerConfig { keys, ..ServerConfig::default() }
    }

    #[test]
    fn key_secrets_are_trimmed_and_blank_ones_refused() {
        let env = |name: &str| match name {
            "FROM_FILE" => Some("shop-secret-0000-0000\n".to_string()),
            "BLANK" => Some("   \n".to_string()),
            _ => None,
        };
        let keys = keyed(&[("shop", "read", "FROM_FILE")]).validate(env).unwrap();
        assert_eq!(keys[0].digest, crate::auth::digest("shop-secret-0000-0000"));
        let err = keyed(&[("shop", "read", "BLANK")]).validate(env).unwrap_err().to_string();
        assert!(err.contains("shorter than 16 characters"), "{err}");
    }

    #[test]
    fn the_same_secret_under_two_keys_is_refused() {
        let env = |_: &str| Some("one-secret-for-two-roles".to_string());
        let err =
            keyed(&[("shop", "read", "A"), ("ops", "admin", "B")]).validate(env).unwrap_err().to_string();
        assert!(err.contains("keys[1] (`ops`)") && err.contains("the same key as `shop`"), "{err}");
    }
}

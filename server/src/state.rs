//! What a running server holds: the loaded model with its compiled placements (swapped
//! atomically on reload), the settings, the keys and the metrics handle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use models::serve::engine::Engine;
use models::serve::rules::{Placement, PlacementConfig};

use crate::auth::ApiKey;
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::telemetry;

/// A model ready to serve: the engine and the placements compiled against its catalog.
pub struct Loaded {
    /// The engine.
    pub engine: Engine,
    /// Placements by name.
    pub placements: BTreeMap<String, Placement>,
    /// Where the artifact was read from.
    pub path: PathBuf,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
}

impl Loaded {
    /// Reads and verifies the artifact at `path` and compiles `placements` against it.
    /// Returns the warnings of compilation (pinned items the catalog lacks).
    pub fn load(path: &Path, placements: &BTreeMap<String, PlacementConfig>) -> Result<(Self, Vec<String>)> {
        let model_error = |source| Error::Model { path: path.display().to_string(), source };
        let artifact = models::artifact::load(path).map_err(model_error)?;
        let engine = Engine::new(artifact);
        let mut compiled = BTreeMap::new();
        let mut warnings = Vec::new();
        for (name, config) in placements {
            let (placement, mut more) = engine.compile(name, config).map_err(model_error)?;
            warnings.append(&mut more);
            compiled.insert(name.clone(), placement);
        }
        let loaded_at = datasets::schema::format_timestamp(cli::unix_now());
        Ok((Loaded { engine, placements: compiled, path: path.to_path_buf(), loaded_at }, warnings))
    }

    /// The model version label.
    pub fn version(&self) -> &str {
        &self.engine.artifact().metadata.model_version
    }
}

/// Shared by every request.
pub struct AppState {
    /// The model being served.
    pub current: ArcSwap<Loaded>,
    /// The settings.
    pub config: ServerConfig,
    /// Resolved API keys; empty for an open server.
    pub keys: Vec<ApiKey>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Serialises reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Set when shutdown begins: readiness turns false so balancers stop sending.
    pub draining: AtomicBool,
}

/// The file in the data directory naming the active artifact.
const ACTIVE_MODEL: &str = "active-model";

impl AppState {
    /// Builds the state: validates the settings, finds and loads the model.
    pub fn new(config: ServerConfig, env: impl Fn(&str) -> Option<String>) -> Result<Arc<Self>> {
        let keys = config.validate(&env)?;
        let path = match (&config.model, &config.data_dir) {
            (Some(model), _) => model.clone(),
            (None, Some(dir)) => {
                let record = dir.join(ACTIVE_MODEL);
                let text = std::fs::read_to_string(&record).map_err(|e| {
                    Error::Config(format!("no --model given and {} cannot be read: {e}", record.display()))
                })?;
                PathBuf::from(text.trim())
            }
            (None, None) => {
                return Err(Error::Config("no model: give --model FILE (or OMNIREC_MODEL)".into()));
            }
        };
        let (loaded, warnings) = Loaded::load(&path, &config.placements())?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let state = AppState {
            current: ArcSwap::from_pointee(loaded),
            config,
            keys,
            metrics: telemetry::handle(),
            reload_lock: tokio::sync::Mutex::new(()),
            draining: AtomicBool::new(false),
        };
        state.record_active(&path)?;
        telemetry::model_loaded(None, state.current.load().version());
        Ok(Arc::new(state))
    }

    /// Loads the artifact at `path` (default: the one being served) and swaps it in. A model
    /// that fails to load or to fit the placements is refused; the old one keeps serving.
    ///
    /// The reload runs as a task of its own: a caller that stops waiting (a client that hangs
    /// up) does not cancel it half done. Every outcome is logged and counted in
    /// `omnirec_model_reloads_total{outcome}` (`swapped`, `refused`, `not_recorded`).
    pub async fn reload(self: &Arc<Self>, path: Option<PathBuf>) -> Result<Arc<Loaded>> {
        let state = Arc::clone(self);
        tokio::spawn(async move { state.reload_detached(path).await })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("the reload task failed: {e}"))))?
    }

    async fn reload_detached(self: Arc<Self>, path: Option<PathBuf>) -> Result<Arc<Loaded>> {
        let _guard = self.reload_lock.lock().await;
        let path = path.unwrap_or_else(|| self.current.load().path.clone());
        let placements = self.config.placements();
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Loaded::load(&path, &placements))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
                .and_then(|loaded| loaded)
        };
        let outcome = |outcome: &'static str| {
            metrics::counter!("omnirec_model_reloads_total", "outcome" => outcome).increment(1);
        };
        let (loaded, warnings) = match loaded {
            Ok(ok) => ok,
            Err(error) => {
                outcome("refused");
                tracing::warn!(path = %path.display(), %error, "reload refused; the old model keeps serving");
                return Err(error);
            }
        };
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        // Record before swapping: what is served must be what a restart serves. If the
        // record cannot be written, nothing is swapped and the answer says so.
        if let Err(error) = self.record_active(&path) {
            outcome("not_recorded");
            tracing::error!(path = %path.display(), %error, "reload not done: the active model cannot be recorded");
            return Err(error);
        }
        let loaded = Arc::new(loaded);
        let old = self.current.swap(Arc::clone(&loaded));
        telemetry::model_loaded(Some(old.version()), loaded.version());
        outcome("swapped");
        tracing::info!(from = old.version(), to = loaded.version(), path = %path.display(), "model swapped");
        Ok(loaded)
    }

    /// Records `path` as the active model in the data directory, atomically and durably (the
    /// new record is synced before it replaces the old one, and the directory after), so a
    /// restart without `--model` serves it.
    fn record_active(&self, path: &Path) -> Result<()> {
        let Some(dir) = &self.config.data_dir else { return Ok(()) };
        let record = dir.join(ACTIVE_MODEL);
        let failed = |source: std::io::Error| Error::State { path: record.display().to_string(), source };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let absolute = std::path::absolute(path)?;
            let temporary = dir.join(format!("{ACTIVE_MODEL}.tmp"));
            let mut file = std::fs::File::create(&temporary)?;
            std::io::Write::write_all(&mut file, absolute.display().to_string().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &record)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(failed)
    }

    /// Whether the server should receive traffic.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
    }
}

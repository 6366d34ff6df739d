//! What a running server holds: the loaded model with its compiled placements (swapped
//! atomically on reload), the settings, the keys and the metrics handle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use models::engine::Engine;
use models::rules::{Placement, PlacementConfig};

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
        let loaded_at = datasets::schema::format_timestamp(telemetry::now());
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
    pub async fn reload(self: &Arc<Self>, path: Option<PathBuf>) -> Result<Arc<Loaded>> {
        let _guard = self.reload_lock.lock().await;
        let path = path.unwrap_or_else(|| self.current.load().path.clone());
        let placements = self.config.placements();
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Loaded::load(&path, &placements))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?
        };
        let (loaded, warnings) = match loaded {
            Ok(ok) => ok,
            Err(e) => {
                metrics::counter!("omnirec_model_reloads_total", "outcome" => "refused").increment(1);
                return Err(e);
            }
        };
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let loaded = Arc::new(loaded);
        let old = self.current.swap(Arc::clone(&loaded));
        self.record_active(&path)?;
        telemetry::model_loaded(Some(old.version()), loaded.version());
        metrics::counter!("omnirec_model_reloads_total", "outcome" => "swapped").increment(1);
        tracing::info!(from = old.version(), to = loaded.version(), path = %path.display(), "model swapped");
        Ok(loaded)
    }

    /// Records `path` as the active model in the data directory, atomically, so a restart
    /// without `--model` serves it.
    fn record_active(&self, path: &Path) -> Result<()> {
        let Some(dir) = &self.config.data_dir else { return Ok(()) };
        std::fs::create_dir_all(dir)?;
        let absolute = std::path::absolute(path)?;
        let temporary = dir.join(format!("{ACTIVE_MODEL}.tmp"));
        std::fs::write(&temporary, absolute.display().to_string())?;
        std::fs::rename(&temporary, dir.join(ACTIVE_MODEL))?;
        Ok(())
    }

    /// Whether the server should receive traffic.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
    }
}

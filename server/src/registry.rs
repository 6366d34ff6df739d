//! The model registry: several artifacts loaded at once, each known by the version id in its
//! header. One is production (it answers every request outside experiments, seeds the live
//! identity graph and is what a restart serves); the others answer the experiment variants
//! that name them. The registry's entries live in the store (`models` table), so a restart
//! loads the same versions again; a retired version is unloaded and stays listed.
//!
//! Publishing: `POST /v1/admin/models` loads an artifact file the server can read; `trainer
//! publish` copies an artifact into the data directory's `inbox/`, which the server watches
//! ([`AppState::watch_inbox`]): a complete artifact there is moved into `models/` and loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use store::{ModelRecord, ModelState};

use crate::error::{Error, Result};
use crate::state::{AppState, Loaded, Serving, prepare, seed_store};

/// The folder of the data directory `trainer publish` writes to.
pub const INBOX: &str = "inbox";
/// The folder of the data directory published artifacts are kept in.
pub const MODELS: &str = "models";
/// How often the inbox is looked at.
const INBOX_EVERY: Duration = Duration::from_secs(2);

/// A registry operation that cannot be done, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No such version.
    #[error("no model version `{0}` in the registry")]
    Unknown(String),
    /// The version is production or named by a running experiment.
    #[error("{0}")]
    InUse(String),
    /// The server keeps no registry (no data directory).
    #[error("the server runs without a data directory and keeps no model registry")]
    NoStore,
    /// Loading or recording failed.
    #[error(transparent)]
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Failed(error)
    }
}

impl From<store::Error> for Refusal {
    fn from(error: store::Error) -> Self {
        Refusal::Failed(Error::Store(error))
    }
}

impl AppState {
    /// At start-up: records the production model in the registry and loads every other
    /// version the registry lists as loaded (one that fails to load is logged and retired).
    pub(crate) fn open_registry(self: &Arc<Self>) -> Result<()> {
        let Some(store) = &self.store else { return Ok(()) };
        let production = self.current.load_full();
        self.put_record(&production.model, ModelState::Production)?;
        for record in store.models()? {
            if record.version == production.model.version() {
                continue;
            }
            match record.state {
                ModelState::Production => {
                    // Production moved by a reload or a restart with --model: this one waits.
                    store.put_model(ModelRecord { state: ModelState::Loaded, ..record.clone() })?;
                }
                ModelState::Loaded => {}
                ModelState::Retired => continue,
            }
            if let Err(error) = self.load_version(Path::new(&record.path)) {
                tracing::error!(version = record.version, %error, "a registered model could not be loaded; retired");
                store.put_model(ModelRecord {
                    state: ModelState::Retired,
                    changed_at: cli::unix_now(),
                    ..record
                })?;
            }
        }
        Ok(())
    }

    fn put_record(&self, loaded: &Loaded, state: ModelState) -> Result<()> {
        let Some(store) = &self.store else { return Ok(()) };
        let now = cli::unix_now();
        let version = loaded.version().to_string();
        let known = store.models()?.into_iter().find(|m| m.version == version);
        let path = std::path::absolute(&loaded.path).unwrap_or_else(|_| loaded.path.clone());
        store.put_model(ModelRecord {
            version,
            path: path.display().to_string(),
            state,
            registered_at: known.map_or(now, |k| k.registered_at),
            changed_at: now,
        })?;
        Ok(())
    }

    /// After a reload swapped `old` out: the old one stays loaded if a running experiment
    /// names it. Call with the view lock held; returns the registry records to write once it
    /// is released (a store write waits for the writer, whose commit listener may wait for
    /// that lock).
    pub(crate) fn after_swap(&self, old: &Serving) -> Vec<(Arc<Loaded>, ModelState)> {
        let production = self.current.load_full();
        let mut versions = (**self.versions.load()).clone();
        versions.remove(production.model.version());
        let old_version = old.model.version().to_string();
        let mut records = vec![(Arc::clone(&production.model), ModelState::Production)];
        if old_version != production.model.version() {
            if self.used_by_experiment(&old_version) {
                let kept = Serving { model: Arc::clone(&old.model), view: Arc::clone(&old.view) };
                versions.insert(old_version, Arc::new(kept));
                records.push((Arc::clone(&old.model), ModelState::Loaded));
            } else {
                records.push((Arc::clone(&old.model), ModelState::Retired));
            }
        }
        self.versions.store(Arc::new(versions));
        records
    }

    /// Writes registry records (see [`AppState::after_swap`]); a failure is logged.
    pub(crate) fn record_states(&self, records: Vec<(Arc<Loaded>, ModelState)>) {
        for (loaded, state) in records {
            if let Err(error) = self.put_record(&loaded, state) {
                tracing::error!(%error, "the model registry could not be updated");
            }
        }
    }

    /// Whether a running or scheduled experiment's variant names `version` (one not stopped
    /// and not ended): unloading it would leave that variant without its model.
    pub(crate) fn used_by_experiment(&self, version: &str) -> bool {
        let now = cli::unix_now();
        let live =
            |e: &models::experiment::Experiment| e.stopped_at.is_none() && e.end.is_none_or(|end| now < end);
        self.experiments
            .load()
            .iter()
            .any(|e| live(e) && e.variants.iter().any(|v| v.model.as_deref() == Some(version)))
    }

    /// Loads the artifact at `path` beside production (not serving anything until an
    /// experiment names it or it is promoted) and registers it. Loading the production
    /// version's file again is refused.
    pub fn load_version(self: &Arc<Self>, path: &Path) -> std::result::Result<Arc<Loaded>, Refusal> {
        let store = self.store.as_ref().ok_or(Refusal::NoStore)?;
        let loaded = Loaded::load(path, Some(store.store_id()), self.config.candidates)?;
        let version = loaded.version().to_string();
        if version == self.current.load().model.version() {
            return Err(Refusal::InUse(format!("{version} is the production model")));
        }
        let placements = crate::lab::placements_for(&self.config, &self.experiments.load(), &version, false);
        // The lock is held from reading the store's catalog changes until the version is in
        // the map, so a change committed meanwhile reaches it; no store write happens inside.
        let loaded = {
            let _view = self.view_lock.lock().unwrap_or_else(PoisonError::into_inner);
            let (serving, warnings) = prepare(loaded, &placements, Some(store), false)?;
            for warning in warnings {
                tracing::warn!(version, "{warning}");
            }
            let loaded = Arc::clone(&serving.model);
            let mut versions = (**self.versions.load()).clone();
            versions.insert(version.clone(), Arc::new(serving));
            self.versions.store(Arc::new(versions));
            loaded
        };
        self.put_record(&loaded, ModelState::Loaded)?;
        tracing::info!(version, path = %path.display(), "model version loaded beside production");
        Ok(loaded)
    }

    /// Makes a loaded version production: the graph is seeded with its persons, it is recorded
    /// as the active model, and the old production stays loaded (a rollback is a promote).
    pub fn promote(self: &Arc<Self>, version: &str) -> std::result::Result<Arc<Loaded>, Refusal> {
        if self.current.load().model.version() == version {
            return Ok(Arc::clone(&self.current.load().model));
        }
        let placements = crate::lab::placements_for(&self.config, &self.experiments.load(), version, true);
        let Some(candidate) = self.versions.load().get(version).cloned() else {
            return Err(Refusal::Unknown(version.to_string()));
        };
        // The identity graph takes the new production's persons before it serves, as a
        // reload does (outside the view lock: a commit waits for its holder); put back if
        // the swap does not happen.
        if let Some(store) = &self.store {
            seed_store(store, &candidate.model)?;
        }
        // Views compiled under the lock, from the catalogs as they are then: a catalog change
        // committed meanwhile is in them.
        let swap = || -> std::result::Result<(Arc<Serving>, Arc<Serving>), Refusal> {
            let _view = self.view_lock.lock().unwrap_or_else(PoisonError::into_inner);
            let mut others = (**self.versions.load()).clone();
            let Some(serving) = others.remove(version) else {
                return Err(Refusal::Unknown(version.to_string()));
            };
            let (view, _) =
                serving.model.engine.view(serving.view.catalog.clone(), &placements).map_err(|source| {
                    Error::Model { path: serving.model.path.display().to_string(), source }
                })?;
            // What is served must be what a restart serves: recorded first, or not swapped.
            self.record_active(&serving.model.path)?;
            let promoted = Arc::new(Serving { model: Arc::clone(&serving.model), view: Arc::new(view) });
            let old = self.current.swap(Arc::clone(&promoted));
            let old_placements = crate::lab::placements_for(
                &self.config,
                &self.experiments.load(),
                old.model.version(),
                false,
            );
            let old_view =
                old.model.engine.view(old.view.catalog.clone(), &old_placements).map(|(v, _)| Arc::new(v));
            let old_view = old_view.unwrap_or_else(|_| Arc::clone(&old.view));
            let demoted = Serving { model: Arc::clone(&old.model), view: old_view };
            others.insert(old.model.version().to_string(), Arc::new(demoted));
            self.versions.store(Arc::new(others));
            Ok((old, promoted))
        };
        let (old, promoted) = swap().inspect_err(|_| self.reseed_served())?;
        self.put_record(&old.model, ModelState::Loaded)?;
        self.put_record(&promoted.model, ModelState::Production)?;
        crate::telemetry::model_loaded(Some(old.model.version()), version);
        tracing::info!(from = old.model.version(), to = version, "model version promoted to production");
        Ok(Arc::clone(&promoted.model))
    }

    /// Unloads a version and marks it retired; production and versions a running or
    /// scheduled experiment names are refused.
    pub fn retire(&self, version: &str) -> std::result::Result<(), Refusal> {
        let store = self.store.as_ref().ok_or(Refusal::NoStore)?;
        if self.current.load().model.version() == version {
            return Err(Refusal::InUse(format!("{version} is the production model; promote another first")));
        }
        if self.used_by_experiment(version) {
            return Err(Refusal::InUse(format!(
                "{version} answers a variant of a running or scheduled experiment"
            )));
        }
        let record = store.models()?.into_iter().find(|m| m.version == version);
        let Some(record) = record else { return Err(Refusal::Unknown(version.to_string())) };
        {
            let _view = self.view_lock.lock().unwrap_or_else(PoisonError::into_inner);
            let mut versions = (**self.versions.load()).clone();
            versions.remove(version);
            self.versions.store(Arc::new(versions));
        }
        store.put_model(ModelRecord { state: ModelState::Retired, changed_at: cli::unix_now(), ..record })?;
        tracing::info!(version, "model version retired and unloaded");
        Ok(())
    }

    /// Compiles every loaded version's view again for the experiments now defined (after one
    /// is created or stopped).
    pub(crate) fn rebuild_views(&self) -> Result<()> {
        let _view = self.view_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let experiments = self.experiments.load_full();
        let rebuild = |serving: &Serving, production: bool| -> Result<Arc<Serving>> {
            let placements =
                crate::lab::placements_for(&self.config, &experiments, serving.model.version(), production);
            let (view, _) =
                serving.model.engine.view(serving.view.catalog.clone(), &placements).map_err(|source| {
                    Error::Model { path: serving.model.path.display().to_string(), source }
                })?;
            Ok(Arc::new(Serving { model: Arc::clone(&serving.model), view: Arc::new(view) }))
        };
        let production = rebuild(&self.current.load_full(), true)?;
        let versions: BTreeMap<String, Arc<Serving>> = self
            .versions
            .load()
            .iter()
            .map(|(version, serving)| Ok((version.clone(), rebuild(serving, false)?)))
            .collect::<Result<_>>()?;
        self.current.store(production);
        self.versions.store(Arc::new(versions));
        Ok(())
    }

    /// Watches the data directory's inbox: every two seconds, each `*.omr` file there is
    /// moved into `models/` (named by its version) and loaded beside production. A file that
    /// is no artifact is moved to `inbox/rejected/` with the reason logged. Runs until the
    /// state is dropped.
    pub async fn watch_inbox(self: Arc<Self>) {
        let Some(dir) = self.config.data_dir.clone() else { return };
        let state = Arc::downgrade(&self);
        drop(self);
        loop {
            tokio::time::sleep(INBOX_EVERY).await;
            let Some(state) = state.upgrade() else { return };
            let dir = dir.clone();
            let outcome = tokio::task::spawn_blocking(move || state.take_inbox(&dir)).await;
            if let Ok(Err(error)) = outcome {
                tracing::warn!(%error, "the model inbox could not be read");
            }
        }
    }

    fn take_inbox(self: &Arc<Self>, dir: &Path) -> std::io::Result<()> {
        let inbox = dir.join(INBOX);
        let Ok(entries) = std::fs::read_dir(&inbox) else { return Ok(()) };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "omr") && p.is_file())
            .collect();
        files.sort();
        for file in files {
            let models = dir.join(MODELS);
            std::fs::create_dir_all(&models)?;
            let header = models::artifact::load_metadata(&file);
            let outcome = header.map_err(|e| e.to_string()).and_then(|metadata| {
                let target = models.join(format!("{}.omr", metadata.model_version));
                std::fs::rename(&file, &target).map_err(|e| e.to_string())?;
                std::fs::File::open(&models).and_then(|d| d.sync_all()).map_err(|e| e.to_string())?;
                // One at a time with reloads and the registry's other changes.
                let _serial = self.reload_lock.blocking_lock();
                self.load_version(&target).map(drop).map_err(|e| e.to_string())
            });
            if let Err(reason) = outcome {
                tracing::warn!(file = %file.display(), reason, "a published model was refused");
                let rejected = inbox.join("rejected");
                std::fs::create_dir_all(&rejected)?;
                if file.exists() {
                    std::fs::rename(&file, rejected.join(file.file_name().unwrap_or_default()))?;
                }
            }
        }
        Ok(())
    }
}

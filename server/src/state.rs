//! What a running server holds: the loaded model and the served view of the catalog
//! (swapped atomically on reload or catalog change), the store with the channels' live state,
//! the settings, the keys and the metrics handle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwap;
use datasets::schema::Identifier;
use metrics_exporter_prometheus::PrometheusHandle;
use models::serve::candidates::CandidateParams;
use models::serve::catalog::{CatalogChange, View};
use models::serve::engine::Engine;
use models::serve::popularity::LivePopularity;
use store::Store;

use crate::auth::ApiKey;
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::telemetry;

/// A model ready to serve, with what happened since it was trained counted alongside.
pub struct Loaded {
    /// The engine.
    pub engine: Engine,
    /// Where the artifact was read from.
    pub path: PathBuf,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
    /// Popularity of the store's events after the model's watermark.
    pub live: LivePopularity,
    /// The store's events this model learned from are those up to this sequence number
    /// (0: none, the model was not trained on this store's export).
    pub after_seq: u64,
    /// Where the model's data ends (seconds since the epoch): the time of the export of this
    /// store it was trained on; `i64::MIN` for a model trained on anything else, whose data
    /// may hold a person erased at any time. A person erased at or after it is one the model
    /// may have learned: their trained vector and identifiers are never used.
    pub data_until: i64,
    /// The erasures that export knew (suppression hash → time), when the artifact recorded
    /// them: an erasure not among them is one the model may have learned, whatever the
    /// times ([`store::graph::may_have_learned`]).
    pub erasures_known: Option<std::collections::BTreeMap<String, i64>>,
}

impl Loaded {
    /// Reads and verifies the artifact at `path`, for the store with id `store_id` (if any).
    /// Large catalogs get the candidate stage under `candidates`.
    pub fn load(path: &Path, store_id: Option<&str>, candidates: CandidateParams) -> Result<Self> {
        let artifact = models::artifact::load(path)
            .map_err(|source| Error::Model { path: path.display().to_string(), source })?;
        let metadata = &artifact.metadata;
        let (after_seq, data_until, erasures_known) = match (&metadata.store, store_id) {
            (Some(mark), Some(id)) if mark.store_id == id => {
                // An export recorded before its time was: not known, so every erasure counts.
                let until = if mark.exported_at > 0 { mark.exported_at } else { i64::MIN };
                (mark.watermark.saturating_sub(1), until, mark.erasures.clone())
            }
            _ => (0, i64::MIN, None),
        };
        let live = LivePopularity::new(metadata.reference_time, metadata.config.popularity.half_life_days);
        let loaded_at = datasets::schema::format_timestamp(cli::unix_now());
        Ok(Loaded {
            engine: Engine::with_candidates(artifact, candidates),
            path: path.to_path_buf(),
            loaded_at,
            live,
            after_seq,
            data_until,
            erasures_known,
        })
    }

    /// The model version label.
    pub fn version(&self) -> &str {
        &self.engine.artifact().metadata.model_version
    }

    /// The trained persons, for the store's identity graph.
    fn seed(&self) -> store::Seed {
        let body = &self.engine.artifact().body;
        let mut groups: Vec<Vec<Identifier>> = vec![Vec::new(); body.users.len()];
        for (key, &person) in &body.aliases {
            if let (Some(group), Some(identifier)) =
                (groups.get_mut(person as usize), Identifier::parse_key(key))
            {
                group.push(identifier);
            }
        }
        // Persons who withheld consent were not trained on, but stay joined as the model's
        // inputs joined them.
        groups.extend(
            body.withheld_groups
                .iter()
                .map(|keys| keys.iter().filter_map(|k| Identifier::parse_key(k)).collect()),
        );
        let refused: Vec<Identifier> = body.refused.iter().filter_map(|k| Identifier::parse_key(k)).collect();
        // Every trained person, one identifier or many: a request naming a trained person's
        // only identifier beside a new account finds that person (a returning visitor's
        // cookie at their first login).
        let groups = groups.into_iter().filter(|g| !g.is_empty()).collect();
        store::Seed {
            groups,
            refused,
            data_until: self.data_until,
            erasures_known: self.erasures_known.clone(),
        }
    }
}

/// What answers a request: one model and one view of the catalog compiled for it. A request
/// reads this once, so a reload or a catalog change never mixes two.
pub struct Serving {
    /// The model.
    pub model: Arc<Loaded>,
    /// The catalog and placements.
    pub view: Arc<View>,
}

/// Shared by every request.
pub struct AppState {
    /// What is being served: the production model.
    pub current: ArcSwap<Serving>,
    /// The other loaded model versions of the registry, by version: they answer the
    /// experiment variants that name them.
    pub versions: ArcSwap<BTreeMap<String, Arc<Serving>>>,
    /// Every experiment defined, stopped ones included, by name.
    pub experiments: ArcSwap<Vec<Arc<models::experiment::Experiment>>>,
    /// The channels' live state; `None` without a data directory.
    pub store: Option<Arc<Store>>,
    /// The settings.
    pub config: ServerConfig,
    /// Resolved API keys; empty for an open server.
    pub keys: Vec<ApiKey>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Serialises reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Serialises catalog uploads, so that each is checked against the catalog the one
    /// before it left (the bound on distinct stores).
    pub(crate) catalog_lock: tokio::sync::Mutex<()>,
    /// Serialises changes of the served views (catalog changes, reloads, experiments, the
    /// registry).
    pub(crate) view_lock: Mutex<()>,
    /// Set when shutdown begins: readiness turns false so balancers stop sending.
    pub draining: AtomicBool,
    /// Erasures committed since start: each starts a recount of live popularity, which gives
    /// way to a newer one's.
    erasures: AtomicU64,
    /// Serialises those recounts.
    recount_lock: Mutex<()>,
}

/// The file in the data directory naming the active artifact.
const ACTIVE_MODEL: &str = "active-model";

/// Why a reload did not swap (the label of `omnirec_model_reloads_total`).
enum ReloadFailure {
    /// The artifact did not load, fit the placements or prepare.
    Refused,
    /// The active-model record could not be written.
    NotRecorded,
}

impl AppState {
    /// Builds the state: validates the settings, opens the store, finds and loads the model.
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
        let store = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|source| Error::State { path: dir.display().to_string(), source })?;
                Some(Arc::new(Store::open(dir, config.live.store_options())?))
            }
            None => None,
        };
        let experiments = match &store {
            Some(store) => crate::lab::stored_experiments(store)?,
            None => Vec::new(),
        };
        let loaded = Loaded::load(&path, store.as_ref().map(|s| s.store_id()), config.candidates)?;
        let placements = crate::lab::placements_for(&config, &experiments, loaded.version(), true);
        let (serving, warnings) = prepare(loaded, &placements, store.as_deref(), true)?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        let state = Arc::new(AppState {
            current: ArcSwap::from_pointee(serving),
            versions: ArcSwap::from_pointee(BTreeMap::new()),
            experiments: ArcSwap::from_pointee(experiments),
            store,
            config,
            keys,
            metrics: telemetry::handle(),
            reload_lock: tokio::sync::Mutex::new(()),
            catalog_lock: tokio::sync::Mutex::new(()),
            view_lock: Mutex::new(()),
            draining: AtomicBool::new(false),
            erasures: AtomicU64::new(0),
            recount_lock: Mutex::new(()),
        });
        state.record_active(&path)?;
        if let Some(store) = &state.store {
            let weak = Arc::downgrade(&state);
            store.subscribe(move |committed| on_commit(&weak, committed));
        }
        telemetry::model_loaded(None, state.current.load().model.version());
        state.open_registry()?;
        Ok(state)
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
        let path = path.unwrap_or_else(|| self.current.load().model.path.clone());
        let outcome = |outcome: &'static str| {
            metrics::counter!("omnirec_model_reloads_total", "outcome" => outcome).increment(1);
        };
        let state = Arc::clone(&self);
        let swap_path = path.clone();
        let swapped = tokio::task::spawn_blocking(move || state.load_and_swap(&swap_path))
            .await
            .map_err(|e| (ReloadFailure::Refused, Error::Io(std::io::Error::other(e.to_string()))))
            .and_then(|swapped| swapped);
        let (loaded, old, records) = match swapped {
            Ok(swapped) => swapped,
            Err((failure, error)) => {
                match failure {
                    ReloadFailure::Refused => {
                        outcome("refused");
                        tracing::warn!(path = %path.display(), %error, "reload refused; the old model keeps serving");
                    }
                    ReloadFailure::NotRecorded => {
                        outcome("not_recorded");
                        tracing::error!(path = %path.display(), %error, "reload not done: the active model cannot be recorded");
                    }
                }
                self.reseed_served();
                return Err(error);
            }
        };
        self.record_states(records);
        telemetry::model_loaded(Some(old.model.version()), loaded.version());
        outcome("swapped");
        tracing::info!(from = old.model.version(), to = loaded.version(), path = %path.display(), "model swapped");
        Ok(loaded)
    }

    /// The blocking part of a reload: loads the artifact, seeds the store's graph with it,
    /// then, under `view_lock` from reading the store's catalog changes and events until the
    /// swap, prepares it, records it as the active model and swaps it in; so a catalog change
    /// or an event committed meanwhile reaches the new model (`on_commit` waits for the lock).
    /// Returns the new model, the old serving and the registry records to write (outside the
    /// lock: a store write waits for the writer, which may be waiting for the lock).
    #[allow(clippy::type_complexity)]
    fn load_and_swap(
        &self,
        path: &Path,
    ) -> std::result::Result<
        (Arc<Loaded>, Arc<Serving>, Vec<(Arc<Loaded>, store::ModelState)>),
        (ReloadFailure, Error),
    > {
        let refused = |error| (ReloadFailure::Refused, error);
        let store_id = self.store.as_ref().map(|s| s.store_id().to_string());
        let loaded = Loaded::load(path, store_id.as_deref(), self.config.candidates).map_err(refused)?;
        let placements =
            crate::lab::placements_for(&self.config, &self.experiments.load(), loaded.version(), true);
        // A trial view first, so a model that does not fit the placements is refused before
        // anything of it reaches the store.
        let trial = loaded.engine.view(loaded.engine.catalog().clone(), &placements);
        trial.map_err(|source| refused(Error::Model { path: path.display().to_string(), source }))?;
        if let Some(store) = &self.store {
            seed_store(store, &loaded).map_err(refused)?;
        }
        let _view = self.view_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (serving, warnings) =
            prepare(loaded, &placements, self.store.as_deref(), false).map_err(refused)?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        // Record before swapping: what is served must be what a restart serves. If the
        // record cannot be written, nothing is swapped and the answer says so.
        self.record_active(path).map_err(|error| (ReloadFailure::NotRecorded, error))?;
        let loaded = Arc::clone(&serving.model);
        let old = self.current.swap(Arc::new(serving));
        let records = self.after_swap(&old);
        Ok((loaded, old, records))
    }

    /// Seeds the store's identity graph with the served model's persons again, after a reload
    /// that may have seeded it with a model it then did not swap in.
    pub(crate) fn reseed_served(&self) {
        if let Some(store) = &self.store {
            let served = self.current.load_full();
            if let Err(error) = seed_store(store, &served.model) {
                tracing::error!(%error, "the identity graph could not be seeded again");
            }
        }
    }

    /// Records `path` as the active model in the data directory, atomically and durably (the
    /// new record is synced before it replaces the old one, and the directory after), so a
    /// restart without `--model` serves it.
    pub(crate) fn record_active(&self, path: &Path) -> Result<()> {
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

/// Seeds the store's identity graph with `loaded`'s persons and rules.
pub(crate) fn seed_store(store: &Store, loaded: &Loaded) -> Result<()> {
    let config = &loaded.engine.artifact().metadata.config;
    store.reseed(loaded.seed(), config.identity.clone(), config.weights.clone())?;
    Ok(())
}

/// Everything a model needs before it serves: the store's graph seeded with its persons, its
/// live popularity counted from the store's events after its watermark, and the view of its
/// catalog with the store's catalog changes, compiled for the placements. A caller serving
/// already holds `view_lock` from before this until the result is in place, so that catalog
/// changes and events committed meanwhile are not lost, and does not let this seed the graph
/// (seeding waits for the store's writer, which may be waiting for that lock).
///
/// Only the production model seeds the graph (`seed`); the other loaded versions answer with
/// the persons the production model's graph gives them.
pub(crate) fn prepare(
    loaded: Loaded,
    placements: &BTreeMap<String, models::serve::rules::PlacementConfig>,
    store: Option<&Store>,
    seed: bool,
) -> Result<(Serving, Vec<String>)> {
    let engine = &loaded.engine;
    let model_error = |source| Error::Model { path: loaded.path.display().to_string(), source };
    let mut catalog = engine.catalog().clone();
    if let Some(store) = store
        && seed
    {
        seed_store(store, &loaded)?;
    }
    if let Some(store) = store {
        let changes: Vec<CatalogChange> = store
            .item_changes()?
            .into_iter()
            .map(|record| CatalogChange { item_id: record.item_id, item: record.item })
            .collect();
        catalog = catalog.with_changes(&changes, engine.content()).map_err(model_error)?.0;
        let weights = &engine.artifact().metadata.config.weights;
        store.scan_events(loaded.after_seq, &mut |event| {
            count_popularity(&loaded.live, &catalog, weights, &event);
            Ok(())
        })?;
    }
    let (view, warnings) = engine.view(catalog, placements).map_err(model_error)?;
    Ok((Serving { model: Arc::new(loaded), view: Arc::new(view) }, warnings))
}

/// Counts one stored event in live popularity, if it is a positive interaction with an item
/// of the catalog.
fn count_popularity(
    live: &LivePopularity,
    catalog: &models::serve::catalog::LiveCatalog,
    weights: &datasets::dataset::WeightConfig,
    event: &store::EventRecord,
) {
    let Some(item) = event.item_id.as_deref().and_then(|id| catalog.get(id)) else { return };
    if weights.weigh_named(&event.event_type, &event.channel, event.value).weight > 0.0 {
        live.record(&event.anchor, item, event.timestamp);
    }
}

/// After every store commit: count its events in live popularity and apply its catalog
/// changes to the served view, so they take effect on the next request. Under `view_lock`:
/// a reload holds it from reading the store until its model serves, so a commit during that
/// time reaches the new model, through what it read or through this after the swap.
fn on_commit(state: &Weak<AppState>, committed: &store::Committed) {
    let Some(state) = state.upgrade() else { return };
    let _view = state.view_lock.lock().unwrap_or_else(PoisonError::into_inner);
    if !committed.items.is_empty() {
        let changes: Vec<CatalogChange> = committed
            .items
            .iter()
            .map(|record| CatalogChange { item_id: record.item_id.clone(), item: record.item.clone() })
            .collect();
        let changed = |serving: &Serving| match serving
            .view
            .with_changes(&changes, serving.model.engine.content())
        {
            Ok(view) => Some(Arc::new(Serving { model: Arc::clone(&serving.model), view: Arc::new(view) })),
            Err(error) => {
                tracing::error!(%error, version = serving.model.version(), "catalog changes could not be applied to a served view");
                None
            }
        };
        if let Some(serving) = changed(&state.current.load_full()) {
            state.current.store(serving);
        }
        let versions = state.versions.load_full();
        if !versions.is_empty() {
            let updated: BTreeMap<String, Arc<Serving>> = versions
                .iter()
                .map(|(version, serving)| {
                    (version.clone(), changed(serving).unwrap_or_else(|| Arc::clone(serving)))
                })
                .collect();
            state.versions.store(Arc::new(updated));
        }
    }
    if committed.erased && state.store.is_some() {
        // Live popularity counted the erased person's interactions (and keeps hashes of
        // them): every served model's is counted again from the store, off the writer's
        // thread; this commit's own events are among what that counts (those of the erased
        // person, ingested in the same commit before the erasure, are not).
        let generation = state.erasures.fetch_add(1, Ordering::SeqCst) + 1;
        let weak = Arc::downgrade(&state);
        std::thread::spawn(move || recount_popularity(&weak, generation));
    } else if !committed.events.is_empty() {
        let production = state.current.load_full();
        let versions = state.versions.load_full();
        for serving in std::iter::once(&production).chain(versions.values()) {
            let weights = &serving.model.engine.artifact().metadata.config.weights;
            for event in &committed.events {
                count_popularity(&serving.model.live, &serving.view.catalog, weights, event);
            }
        }
    }
}

/// Counts every served model's live popularity again from the store after the erasure that
/// made `generation`. One recount at a time: one of an older erasure, still reading a
/// snapshot with a newer erasure's events in it, finishes before the newer one clears and
/// counts, and one that finds a newer erasure waiting leaves the work to it. Events
/// committed meanwhile are counted once either way (a person and item count once).
fn recount_popularity(state: &Weak<AppState>, generation: u64) {
    let Some(state) = state.upgrade() else { return };
    let Some(store) = &state.store else { return };
    let _recount = state.recount_lock.lock().unwrap_or_else(PoisonError::into_inner);
    if state.erasures.load(Ordering::SeqCst) != generation {
        return;
    }
    let production = state.current.load_full();
    let versions = state.versions.load_full();
    for serving in std::iter::once(&production).chain(versions.values()) {
        serving.model.live.clear();
        let weights = &serving.model.engine.artifact().metadata.config.weights;
        let counted = store.scan_events(serving.model.after_seq, &mut |event| {
            count_popularity(&serving.model.live, &serving.view.catalog, weights, &event);
            Ok(())
        });
        if let Err(error) = counted {
            tracing::error!(%error, "live popularity could not be counted again after an erasure");
        }
    }
}

/// The placements of the loaded model's view, by name, with their settings (for reports).
pub fn placement_configs(view: &View) -> BTreeMap<&String, &models::serve::rules::PlacementConfig> {
    let configured = view.placements.iter().filter(|(name, _)| !crate::lab::is_variant_placement(name));
    configured.map(|(name, p)| (name, &p.config)).collect()
}

//! The model artifact: one versioned, checksummed file holding everything the server and
//! the batch recommender need.
//!
//! Layout (integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `OMNIREC\0` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 8 | metadata length `m` |
//! | 8 | body length `b` |
//! | 32 | SHA-256 of the metadata and body bytes |
//! | m | metadata, JSON ([`Metadata`]): readable without decoding the body |
//! | b | body, bincode 2 standard encoding of [`Body`] |
//!
//! This is the only deliberate serialized format of the project; bincode stays behind this
//! module. Reading checks the length, magic, version and checksum before decoding, so a
//! truncated, corrupted or foreign file gives a clear error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use datasets::IdMap;
use datasets::consumed::Consumed;
use datasets::dataset::{Dataset, Matrix};
use datasets::schema::Item;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::train::config::TrainConfig;
pub(crate) mod integrity;
use crate::metrics::Metrics;
use crate::profile::Profiles;
use crate::progress::Progress;
use crate::train::{FittedModel, ModelReport, Trained};

/// Magic bytes at the start of every artifact.
pub const MAGIC: [u8; 8] = *b"OMNIREC\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 9;
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 32;

/// Counts of what the artifact was trained on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Persons.
    pub n_users: usize,
    /// Items in the catalog snapshot.
    pub n_items: usize,
    /// Weighted interactions (events with items, or rows).
    pub n_interactions: usize,
    /// Non-zero person × item entries.
    pub n_pairs: usize,
}

/// What the artifact says about itself; readable without decoding the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// A version label: `omnirec-<created>-<fingerprint prefix>`.
    pub model_version: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// SHA-256 of the training interactions.
    pub data_fingerprint: String,
    /// The configuration it was trained with.
    pub config: TrainConfig,
    /// Per model (and `blend`), offline metrics when an evaluation ran.
    pub metrics: BTreeMap<String, Metrics>,
    /// Counts.
    pub counts: Counts,
    /// Per enabled model: fit time, or why it was skipped.
    pub models: Vec<ModelReport>,
    /// Blend weights by model.
    pub blend_weights: crate::blend::Weights,
    /// Popularity de-bias `γ` by model (models not listed: off).
    #[serde(default)]
    pub blend_debias: crate::blend::Weights,
    /// Each person's own recency, applied to their history when scoring (tuned, or from
    /// `weights.recency`).
    #[serde(default)]
    pub recency: datasets::recency::Recency,
    /// Validation NDCG reached by tuning, if it ran.
    pub tuned_ndcg: Option<f64>,
    /// Identity resolution summary, for event data.
    pub identity: Option<IdentitySummary>,
    /// When the training data came from a server's store export: which store, and the
    /// watermark of the export. Serving adds only that store's events from the watermark on,
    /// so nothing the model learned is counted twice.
    #[serde(default)]
    pub store: Option<StoreWatermark>,
    /// The training data's reference time of recency ("now" for the data, seconds since the
    /// epoch): what the popularity model's decay refers to, and live popularity with it.
    #[serde(default)]
    pub reference_time: i64,
}

/// Which store's events an artifact was trained on, up to where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreWatermark {
    /// The store's id.
    pub store_id: String,
    /// Every record of the store below this sequence number was in the export.
    pub watermark: u64,
    /// When the export was taken (seconds since the epoch): where the model's data ends, so
    /// a person erased at or after it is one the model may have learned. 0 in artifacts
    /// written before it was recorded (then every erasure counts).
    #[serde(default)]
    pub exported_at: i64,
    /// The erasures the export knew (suppression hash → time of erasure): a person erased
    /// since is one the model may have learned, whatever the clocks say (an erasure stamped
    /// before the export but committed after its snapshot is not among them). Absent from
    /// artifacts written before it was recorded (then `exported_at` decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasures: Option<std::collections::BTreeMap<String, i64>>,
    /// Items the training events name that the export's catalog no longer held: deleted on
    /// the server. They are trained on (what persons did with them still counts) and never
    /// served, on any server that loads the artifact. Empty when the training was given its
    /// own catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted_items: Vec<String>,
}

/// Identity resolution counts kept in the metadata.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdentitySummary {
    /// Events resolved.
    pub n_events: usize,
    /// Distinct identifiers.
    pub n_identifiers: usize,
    /// Persons.
    pub n_persons: usize,
    /// Merges performed.
    pub n_merges: usize,
    /// Identifiers refused for merging.
    pub n_refused: usize,
}

/// Everything needed to recommend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// Persons by canonical key.
    pub users: IdMap,
    /// Items; shared with the served catalog like [`Body::catalog`].
    pub items: Arc<IdMap>,
    /// Identifier keys (`kind:value`) to person index.
    pub aliases: HashMap<String, u32>,
    /// Catalog snapshot, one entry per item; shared with the served catalog
    /// ([`crate::serve::catalog::LiveCatalog`]) instead of copied into it (at a million items
    /// a copy was 260 MB).
    pub catalog: Vec<Arc<Item>>,
    /// Person × item confidence the models were trained on (CSR): each person's history.
    pub history: Matrix,
    /// The latest interaction time of each `history` entry, aligned with its data (seconds
    /// since the epoch; 0 when unknown): what person recency is computed from.
    pub history_times: Vec<i64>,
    /// Per person, the consumed items (never recommended back) with the time of the last
    /// consuming event (seconds since the epoch; 0 when the data had no times), sorted by item.
    pub consumed: Vec<Vec<(u32, i64)>>,
    /// The pairs of `consumed` held more than once (bought more often than returned):
    /// (person, item, units), sorted; every other pair holds one, so a live return of one
    /// of two leaves the item consumed.
    pub held: Vec<(u32, u32, u32)>,
    /// Per identifier key (`kind:value`) no trained person answers for, the items the
    /// training inputs show held under it (item, last purchase time, units), sorted by item,
    /// so that what was bought under it is never offered back when it asks: the identifiers
    /// of a person who withheld consent to personalisation in the export trained on (not
    /// trained on), and a person's own identifiers (not devices or cookies) that identity
    /// resolution refused for merging.
    pub withheld: datasets::consumed::HeldByIdentifier,
    /// The identifier keys (`kind:value`) of each person who withheld consent and is known
    /// under more than one, as the training inputs and the export's live graph join them:
    /// the live identity graph starts them joined, though the models never learned them,
    /// so their consent and what they bought reach every identifier of theirs. Empty
    /// without an export.
    pub withheld_groups: Vec<Vec<String>>,
    /// The fitted models.
    pub models: Vec<FittedModel>,
    /// Derived profile attributes.
    pub profiles: Option<Profiles>,
    /// Identifier keys identity resolution refused for merging (each a person of its own):
    /// the live identity graph keeps them refused.
    pub refused: Vec<String>,
}

/// A whole artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// The self-description.
    pub metadata: Metadata,
    /// The models and maps.
    pub body: Body,
}

fn corrupt(message: impl Into<String>) -> Error {
    Error::Artifact(message.into())
}

/// Writes `artifact` to `out`.
pub fn write(artifact: &Artifact, mut out: impl Write) -> Result<()> {
    let metadata = serde_json::to_vec_pretty(&artifact.metadata)
        .map_err(|e| corrupt(format!("cannot encode metadata: {e}")))?;
    // The header carries the body's length and checksum, so the body is encoded twice:
    // once into the checksum, once into `out`. Holding the encoded body instead would
    // cost as much memory as the artifact's file.
    let encode = |mut out: &mut dyn Write| {
        bincode::serde::encode_into_std_write(&artifact.body, &mut out, bincode::config::standard())
            .map_err(|e| corrupt(format!("cannot encode body: {e}")))
    };
    let mut digest = Checksum { hasher: Sha256::new(), len: 0 };
    digest.hasher.update(&metadata);
    encode(&mut digest)?;
    out.write_all(&MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes())?;
    out.write_all(&(metadata.len() as u64).to_le_bytes())?;
    out.write_all(&digest.len.to_le_bytes())?;
    out.write_all(&digest.hasher.finalize())?;
    out.write_all(&metadata)?;
    let mut counted = Counted { out, len: 0 };
    encode(&mut counted)?;
    if counted.len != digest.len {
        return Err(corrupt(format!("body encoded to {} bytes, then to {}", digest.len, counted.len)));
    }
    counted.out.flush()?;
    Ok(())
}

/// A writer that only hashes and counts what it is given.
struct Checksum {
    hasher: Sha256,
    len: u64,
}

impl Write for Checksum {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that counts what it passes on.
struct Counted<W> {
    out: W,
    len: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

struct Header {
    metadata_len: usize,
    body_len: usize,
    checksum: [u8; 32],
}

fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[..8] != MAGIC {
        return Err(corrupt("not an omnirec model artifact (bad magic bytes)"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}, but this build reads version {FORMAT_VERSION}; retrain or use a matching omnirec"
        )));
    }
    let too_big = |_| corrupt("length field out of range");
    let metadata_len = usize::try_from(u64_at(12)).map_err(too_big)?;
    let body_len = usize::try_from(u64_at(20)).map_err(too_big)?;
    let checksum = bytes[28..60].try_into().expect("32 bytes");
    Ok(Header { metadata_len, body_len, checksum })
}

impl Header {
    /// The file length the header announces.
    fn total_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.metadata_len).saturating_add(self.body_len)
    }
}

/// The body of an artifact as it streams in: hashed as it is read.
type BodyReader<'a, R> = std::io::BufReader<std::io::Take<&'a mut Hashed<R>>>;

/// Reads an artifact from `input` as it streams in: the header first, then no more than it
/// announces (one byte more, to notice trailing bytes), hashing every byte on the way.
/// `decode` reads what it wants of the body (given its announced length) and the rest is
/// hashed after it, so memory grows with what is decoded, never with the file: at a million
/// items a buffer of the whole file was 1.2 GB on top of the models at load. A damaged file
/// is refused for what is wrong with the file (truncated, longer, checksum) before what
/// `decode` made of it is looked at, as when the whole file was checked before decoding.
fn stream<R: Read, T>(
    mut input: R,
    decode: impl FnOnce(&mut BodyReader<'_, R>, usize) -> Result<T>,
) -> Result<(Vec<u8>, Result<T>)> {
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut input).take(HEADER_LEN as u64).read_to_end(&mut head)?;
    let header = parse_header(&head)?;
    let mut payload = Hashed { inner: input, hasher: Sha256::new(), len: 0 };
    let mut metadata = Vec::new();
    (&mut payload).take(header.metadata_len as u64).read_to_end(&mut metadata)?;
    let body = {
        let mut reader =
            std::io::BufReader::with_capacity(1 << 20, (&mut payload).take(header.body_len as u64));
        let body = decode(&mut reader, header.body_len);
        // What decoding left: hashed too.
        std::io::copy(&mut reader, &mut std::io::sink())?;
        body
    };
    let (announced, read) = (header.total_len(), HEADER_LEN as u64 + payload.len);
    if read < announced as u64 {
        return Err(corrupt(format!("truncated: {read} bytes, the header announces {announced}")));
    }
    let mut after = Vec::new();
    payload.inner.take(1).read_to_end(&mut after)?;
    if !after.is_empty() {
        return Err(corrupt("unexpected bytes after the body"));
    }
    if payload.hasher.finalize().as_slice() != header.checksum {
        return Err(corrupt("checksum mismatch: the file is corrupted"));
    }
    Ok((metadata, body))
}

/// A reader that hashes and counts what it passes on.
struct Hashed<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

fn decode_metadata(bytes: &[u8]) -> Result<Metadata> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("cannot decode metadata: {e}")))
}

/// Reads and verifies a whole artifact.
pub fn read(input: impl Read) -> Result<Artifact> {
    let (metadata_bytes, body) = stream(input, |reader, len| decode_body(reader, len))?;
    let metadata = decode_metadata(&metadata_bytes)?;
    let body = body?;
    validate(&metadata, &body).map_err(|reason| corrupt(format!("inconsistent body: {reason}")))?;
    Ok(Artifact { metadata, body })
}

/// Decodes the body of `len` bytes from `reader` with a bound on what decoding may allocate.
///
/// bincode allocates a string's or byte list's buffer from its length prefix before reading
/// the bytes, so one forged prefix (a checksum is no authentication) could ask for a
/// terabyte and abort the process. Every such buffer of a genuine body holds bytes of the
/// body itself, so their total never exceeds its length: the limit is the body's length
/// rounded up to a power of 16 (16 MiB at least, so at most 16 times the body above that),
/// and a length past it is a decoding error. (Sequences of other types grow as they are read, so they
/// cannot run ahead of the bytes either.)
fn decode_body(reader: &mut (impl bincode::de::read::Reader + std::io::BufRead), len: usize) -> Result<Body> {
    fn decode<const LIMIT: usize>(
        reader: &mut impl bincode::de::read::Reader,
    ) -> std::result::Result<Body, String> {
        let config = bincode::config::standard().with_limit::<LIMIT>();
        bincode::serde::decode_from_reader(reader, config).map_err(|e| e.to_string())
    }
    let decoded = match len {
        n if n <= 1 << 24 => decode::<{ 1 << 24 }>(reader),
        n if n <= 1 << 28 => decode::<{ 1 << 28 }>(reader),
        n if n <= 1 << 32 => decode::<{ 1 << 32 }>(reader),
        n if n <= 1 << 36 => decode::<{ 1 << 36 }>(reader),
        _ => decode::<{ 1 << 40 }>(reader),
    };
    let body = decoded.map_err(|e| corrupt(format!("cannot decode body: {e}")))?;
    if !reader.fill_buf()?.is_empty() {
        return Err(corrupt("body has trailing bytes"));
    }
    Ok(body)
}

/// Checks that a decoded artifact is internally consistent: the parts agree in size, every
/// stored index is in range, every number the models compute with is finite, and the
/// metadata's weights are usable. After this, serving cannot index out of range or
/// propagate NaN from the file.
fn validate(metadata: &Metadata, body: &Body) -> std::result::Result<(), String> {
    let n_items = body.items.len();
    let n_users = body.users.len();
    if body.catalog.len() != n_items {
        return Err(format!("{} catalog entries for {n_items} item ids", body.catalog.len()));
    }
    if let Some((idx, item)) =
        body.catalog.iter().enumerate().find(|(idx, item)| body.items.id(*idx as u32) != Some(&item.item_id))
    {
        return Err(format!("catalog entry {idx} is item `{}`, not the item id at that index", item.item_id));
    }
    if let Some(item) = body.catalog.iter().find(|i| i.price.is_some_and(|p| !p.is_finite())) {
        return Err(format!("item `{}` has a non-finite price", item.item_id));
    }
    integrity::csr("history", &body.history, Some(n_users), n_items)?;
    if body.history_times.len() != body.history.nnz() {
        return Err(format!(
            "{} history times for {} history entries",
            body.history_times.len(),
            body.history.nnz()
        ));
    }
    if body.consumed.len() != n_users {
        return Err(format!("consumed lists for {} persons, expected {n_users}", body.consumed.len()));
    }
    for (user, consumed) in body.consumed.iter().enumerate() {
        if consumed.windows(2).any(|w| w[0].0 >= w[1].0)
            || consumed.last().is_some_and(|&(i, _)| i as usize >= n_items)
        {
            return Err(format!("consumed items of person {user} are unsorted or past the {n_items} items"));
        }
    }
    if body.held.windows(2).any(|w| (w[0].0, w[0].1) >= (w[1].0, w[1].1)) {
        return Err("held counts are unsorted".into());
    }
    for &(user, item, units) in &body.held {
        let listed = body
            .consumed
            .get(user as usize)
            .is_some_and(|c| c.binary_search_by_key(&item, |&(i, _)| i).is_ok());
        if !listed || units < 2 {
            return Err(format!(
                "held count {units} of item {item} for person {user}: not a consumed pair held more than once"
            ));
        }
    }
    for (key, held) in &body.withheld {
        if held.windows(2).any(|w| w[0].0 >= w[1].0)
            || held.last().is_some_and(|&(i, _, _)| i as usize >= n_items)
            || held.iter().any(|&(_, _, units)| units == 0)
        {
            return Err(format!(
                "items held under `{key}` are unsorted, past the {n_items} items or of 0 units"
            ));
        }
    }
    let unknown = |key: &String| datasets::schema::Identifier::parse_key(key).is_none();
    if let Some(key) = body.withheld_groups.iter().flatten().find(|key| unknown(key)) {
        return Err(format!("withheld person's identifier `{key}` is no identifier key"));
    }
    if let Some((alias, user)) = body.aliases.iter().find(|(_, u)| **u as usize >= n_users) {
        return Err(format!("alias `{alias}` points to person {user}, past the {n_users} persons"));
    }
    for model in &body.models {
        let name = model.as_recommender().name();
        model.check(n_items).map_err(|reason| format!("model {name}: {reason}"))?;
    }
    crate::blend::check_weights(&metadata.blend_weights).map_err(|reason| format!("blend: {reason}"))?;
    crate::blend::check_debias(&metadata.blend_debias).map_err(|reason| format!("blend: {reason}"))?;
    metadata.recency.validate().map_err(|e| format!("recency: {e}"))?;
    metadata.config.validate().map_err(|e| format!("training configuration: {e}"))?;
    Ok(())
}

/// Verifies a whole artifact (length, magic, version, checksum) and decodes only its
/// metadata, for inspection without the cost of decoding the models.
pub fn read_metadata(input: impl Read) -> Result<Metadata> {
    let (metadata_bytes, _) = stream(input, |_, _| Ok(()))?;
    decode_metadata(&metadata_bytes)
}

/// Writes `artifact` to `path` atomically: a temporary file beside it, synced, then renamed
/// over the target, so readers see the old file or the new one, never half of one.
pub fn save(artifact: &Artifact, path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| corrupt(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut writer = std::io::BufWriter::new(file);
        write(artifact, &mut writer)?;
        let file = writer.into_inner().map_err(|e| Error::Io(e.into_error()))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Opens `path` for reading an artifact: only a regular file, whose size is what its header
/// announces. Looked at before it is opened (opening a FIFO would wait for a writer) and
/// again after (it may have been swapped), and its header is read before the rest, so a
/// device (`/dev/zero`), a directory, a pipe or a file that lies about its size is refused
/// at once instead of being read whole.
fn open_checked(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let not_regular = || corrupt(format!("{} is not a regular file", path.display()));
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut head = Vec::with_capacity(HEADER_LEN);
    (&mut file).take(HEADER_LEN as u64).read_to_end(&mut head)?;
    let header = parse_header(&head)?;
    let expected = header.total_len() as u64;
    if size != expected {
        return Err(corrupt(format!(
            "{} is {size} bytes, but its header announces {expected}",
            path.display()
        )));
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok(std::io::BufReader::new(file))
}

/// Reads an artifact from `path`; see [`read`]. Only a regular file is read.
pub fn load(path: &Path) -> Result<Artifact> {
    read(open_checked(path)?)
}

/// Reads only the metadata of the artifact at `path` (after verifying the whole file).
pub fn load_metadata(path: &Path) -> Result<Metadata> {
    read_metadata(open_checked(path)?)
}

impl Artifact {
    /// Assembles an artifact from a data set and what was trained on it. `created_at` is in
    /// seconds since the epoch.
    pub fn assemble(dataset: &Dataset, trained: Trained, config: &TrainConfig, created_at: i64) -> Artifact {
        let source = Source {
            users: dataset.users.clone(),
            items: dataset.items.clone(),
            aliases: dataset.aliases.clone(),
            catalog: dataset.catalog.clone(),
        };
        Artifact::from_parts(Facts::of(dataset), source, trained, config, created_at)
    }

    /// Trains on `dataset` ([`crate::train::train`]) and assembles the artifact, releasing
    /// the data set's rows before the models are fitted: the rows (24 bytes each, plus their
    /// origins and events) are not held beside the item × person matrix and the models, and
    /// the maps move into the artifact instead of being copied. `fitted` sees what was
    /// trained before it goes into the artifact (for reports).
    pub fn train(
        mut dataset: Dataset,
        config: &TrainConfig,
        progress: &dyn Progress,
        created_at: i64,
        fitted: impl FnOnce(&Trained),
    ) -> Result<Artifact> {
        // Nothing below reads the rows' origins (they tell input files apart).
        dataset.origin = Vec::new();
        let prepared = crate::train::prepare(&dataset, config)?;
        let facts = Facts::of(&dataset);
        let source = Source::take(dataset);
        let trained = prepared.fit(config, progress)?;
        fitted(&trained);
        Ok(Artifact::from_parts(facts, source, trained, config, created_at))
    }

    fn from_parts(
        facts: Facts,
        source: Source,
        trained: Trained,
        config: &TrainConfig,
        created_at: i64,
    ) -> Artifact {
        let Facts { fingerprint, n_interactions, identity, refused, consumed } = facts;
        let created = datasets::schema::format_timestamp(created_at);
        let compact = created.replace([':', '-'], "");
        let metadata = Metadata {
            model_version: format!("omnirec-{compact}-{}", &fingerprint[..8]),
            created_at: created,
            data_fingerprint: fingerprint,
            config: config.clone(),
            metrics: trained.validation_metrics,
            counts: Counts {
                n_users: source.users.len(),
                n_items: source.items.len(),
                n_interactions,
                n_pairs: trained.train_set.user_items.nnz(),
            },
            models: trained.reports,
            blend_weights: trained.blend_weights,
            blend_debias: trained.blend_debias,
            recency: trained.recency,
            tuned_ndcg: trained.tuned_ndcg,
            identity,
            store: None,
            reference_time: trained.train_set.newest,
        };
        // Serving needs no item × person matrix: freed before the person lists are built.
        let crate::recommender::TrainSet { user_items, item_users, last_seen, .. } = trained.train_set;
        drop(item_users);
        let held = consumed.multiple().iter().map(|&(user, item, units)| (user.0, item.0, units)).collect();
        let consumed =
            consumed.lists().map(|items| items.into_iter().map(|(i, at)| (i.0, at)).collect()).collect();
        let body = Body {
            users: source.users,
            items: Arc::new(source.items),
            aliases: source.aliases.into_iter().map(|(k, v)| (k, v.0)).collect(),
            catalog: source.catalog.into_iter().map(Arc::new).collect(),
            history: user_items,
            history_times: last_seen,
            consumed,
            held,
            withheld: Default::default(),
            withheld_groups: Vec::new(),
            models: trained.models,
            profiles: trained.profiles,
            refused,
        };
        Artifact { metadata, body }
    }
}

/// What an artifact keeps of a data set's rows, taken before they are released.
struct Facts {
    fingerprint: String,
    n_interactions: usize,
    identity: Option<IdentitySummary>,
    refused: Vec<String>,
    consumed: Consumed,
}

impl Facts {
    fn of(dataset: &Dataset) -> Facts {
        let identity = dataset.identity.as_ref().map(|r| IdentitySummary {
            n_events: r.n_events,
            n_identifiers: r.n_identifiers,
            n_persons: r.n_persons,
            n_merges: r.n_merges,
            n_refused: r.refused.len(),
        });
        let refused = dataset
            .identity
            .as_ref()
            .map(|r| r.refused.iter().map(|refused| refused.identifier.key()).collect())
            .unwrap_or_default();
        Facts {
            fingerprint: dataset.fingerprint(),
            n_interactions: dataset.interactions.len(),
            identity,
            refused,
            consumed: dataset.consumed(),
        }
    }
}

/// The data set's maps and catalog, which the artifact keeps.
struct Source {
    users: IdMap,
    items: IdMap,
    aliases: HashMap<String, datasets::UserIdx>,
    catalog: Vec<Item>,
}

impl Source {
    /// The maps and catalog of `dataset`; everything else (the rows) is dropped here, not
    /// when the caller's binding goes out of scope, as a partial move would.
    fn take(dataset: Dataset) -> Source {
        let Dataset { users, items, aliases, catalog, .. } = dataset;
        Source { users, items, aliases, catalog }
    }
}

#[cfg(test)]
mod tests;

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

use datasets::IdMap;
use datasets::schema::Item;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sprs::CsMat;

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::pipeline::{FittedModel, ModelReport};
use crate::profile::Profiles;

/// Magic bytes at the start of every artifact.
pub const MAGIC: [u8; 8] = *b"OMNIREC\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;
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
    /// Blend weights by model name.
    pub blend_weights: BTreeMap<String, f32>,
    /// Validation NDCG reached by tuning, if it ran.
    pub tuned_ndcg: Option<f64>,
    /// Identity resolution summary, for event data.
    pub identity: Option<IdentitySummary>,
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
    /// Items.
    pub items: IdMap,
    /// Identifier keys (`kind:value`) to person index.
    pub aliases: HashMap<String, u32>,
    /// Catalog snapshot, one entry per item.
    pub catalog: Vec<Item>,
    /// Person × item confidence the models were trained on (CSR): each person's history.
    pub history: CsMat<f32>,
    /// Per person, the consumed items (never recommended back) with the time of the last
    /// consuming event (seconds since the epoch; 0 when the data had no times), sorted by item.
    pub consumed: Vec<Vec<(u32, i64)>>,
    /// The fitted models.
    pub models: Vec<FittedModel>,
    /// Derived profile attributes.
    pub profiles: Option<Profiles>,
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
    let body = bincode::serde::encode_to_vec(&artifact.body, bincode::config::standard())
        .map_err(|e| corrupt(format!("cannot encode body: {e}")))?;
    let mut hasher = Sha256::new();
    hasher.update(&metadata);
    hasher.update(&body);
    out.write_all(&MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes())?;
    out.write_all(&(metadata.len() as u64).to_le_bytes())?;
    out.write_all(&(body.len() as u64).to_le_bytes())?;
    out.write_all(&hasher.finalize())?;
    out.write_all(&metadata)?;
    out.write_all(&body)?;
    out.flush()?;
    Ok(())
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

/// Checks length, magic, version and checksum; returns the metadata and body bytes.
fn verified_parts(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let header = parse_header(bytes)?;
    let expected = HEADER_LEN.saturating_add(header.metadata_len).saturating_add(header.body_len);
    if bytes.len() < expected {
        return Err(corrupt(format!("truncated: {} bytes, the header announces {expected}", bytes.len())));
    }
    if bytes.len() > expected {
        return Err(corrupt(format!("{} unexpected bytes after the body", bytes.len() - expected)));
    }
    let payload = &bytes[HEADER_LEN..];
    if Sha256::digest(payload).as_slice() != header.checksum {
        return Err(corrupt("checksum mismatch: the file is corrupted"));
    }
    Ok(payload.split_at(header.metadata_len))
}

fn decode_metadata(bytes: &[u8]) -> Result<Metadata> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("cannot decode metadata: {e}")))
}

/// Reads and verifies a whole artifact.
pub fn read(mut input: impl Read) -> Result<Artifact> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let (metadata_bytes, body_bytes) = verified_parts(&bytes)?;
    let metadata = decode_metadata(metadata_bytes)?;
    let (body, used): (Body, usize) =
        bincode::serde::decode_from_slice(body_bytes, bincode::config::standard())
            .map_err(|e| corrupt(format!("cannot decode body: {e}")))?;
    if used != body_bytes.len() {
        return Err(corrupt("body has trailing bytes"));
    }
    validate_body(&body)?;
    Ok(Artifact { metadata, body })
}

/// Checks that the body's parts agree in size, so later indexing cannot go out of range.
fn validate_body(body: &Body) -> Result<()> {
    let n_items = body.items.len();
    let n_users = body.users.len();
    if body.catalog.len() != n_items || body.history.cols() != n_items || body.history.rows() != n_users {
        return Err(corrupt("inconsistent body: catalog or history does not match the id maps"));
    }
    if body.consumed.len() != n_users || body.consumed.iter().flatten().any(|&(i, _)| i as usize >= n_items) {
        return Err(corrupt("inconsistent body: consumed items do not match the id maps"));
    }
    if body.aliases.values().any(|&u| u as usize >= n_users) {
        return Err(corrupt("inconsistent body: an alias points past the persons"));
    }
    if let Some(m) = body.models.iter().find(|m| m.as_recommender().n_items() != n_items) {
        return Err(corrupt(format!(
            "inconsistent body: model {} scores a different catalog",
            m.as_recommender().name()
        )));
    }
    Ok(())
}

/// Verifies a whole artifact (length, magic, version, checksum) and decodes only its
/// metadata, for inspection without the cost of decoding the models.
pub fn read_metadata(mut input: impl Read) -> Result<Metadata> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let (metadata_bytes, _) = verified_parts(&bytes)?;
    decode_metadata(metadata_bytes)
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

/// Reads an artifact from `path`.
pub fn load(path: &Path) -> Result<Artifact> {
    let file = std::fs::File::open(path)?;
    read(std::io::BufReader::new(file))
}

impl Artifact {
    /// Assembles an artifact from a data set and what was trained on it. `created_at` is in
    /// seconds since the epoch.
    pub fn assemble(
        dataset: &datasets::dataset::Dataset,
        trained: crate::pipeline::Trained,
        config: &TrainConfig,
        created_at: i64,
    ) -> Artifact {
        let fingerprint = dataset.fingerprint();
        let created = datasets::schema::format_timestamp(created_at);
        let compact = created.replace([':', '-'], "");
        let identity = dataset.identity.as_ref().map(|r| IdentitySummary {
            n_events: r.n_events,
            n_identifiers: r.n_identifiers,
            n_persons: r.n_persons,
            n_merges: r.n_merges,
            n_refused: r.refused.len(),
        });
        let metadata = Metadata {
            model_version: format!("omnirec-{compact}-{}", &fingerprint[..8]),
            created_at: created,
            data_fingerprint: fingerprint,
            config: config.clone(),
            metrics: trained.validation_metrics,
            counts: Counts {
                n_users: dataset.n_users(),
                n_items: dataset.n_items(),
                n_interactions: dataset.interactions.len(),
                n_pairs: trained.train_set.user_items.nnz(),
            },
            models: trained.reports,
            blend_weights: trained.blend_weights,
            tuned_ndcg: trained.tuned_ndcg,
            identity,
        };
        let body = Body {
            users: dataset.users.clone(),
            items: dataset.items.clone(),
            aliases: dataset.aliases.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
            catalog: dataset.catalog.clone(),
            history: trained.train_set.user_items,
            consumed: dataset
                .consumed()
                .into_iter()
                .map(|items| items.into_iter().map(|(i, at)| (i.0, at)).collect())
                .collect(),
            models: trained.models,
            profiles: trained.profiles,
        };
        Artifact { metadata, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelKind, TrainConfig};
    use datasets::dataset::{Dataset, WeightConfig};

    fn small_artifact() -> Artifact {
        let rows = datasets::synthetic::interactions(60, 30, 600, 5);
        let dataset = Dataset::from_interactions(&rows, None, &WeightConfig::default()).unwrap();
        let mut config = TrainConfig::default();
        config.models.enabled = vec![ModelKind::Popularity, ModelKind::ItemKnn, ModelKind::Als];
        config.als.factors = 4;
        config.als.iterations = 2;
        let trained = crate::pipeline::train(&dataset, &config, &crate::progress::Silent).unwrap();
        Artifact::assemble(&dataset, trained, &config, 1_700_000_000)
    }

    fn encoded(artifact: &Artifact) -> Vec<u8> {
        let mut bytes = Vec::new();
        write(artifact, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn round_trips() {
        let artifact = small_artifact();
        let back = read(&encoded(&artifact)[..]).unwrap();
        assert_eq!(read_metadata(&encoded(&artifact)[..]).unwrap(), artifact.metadata);
        assert_eq!(back.metadata, artifact.metadata);
        assert_eq!(back.body.models, artifact.body.models);
        assert_eq!(back.body.profiles, artifact.body.profiles);
        assert_eq!(back, artifact);
        assert_eq!(back.metadata.created_at, "2023-11-14T22:13:20Z");
        assert!(back.metadata.model_version.starts_with("omnirec-20231114T221320Z-"));
        assert_eq!(back.metadata.counts.n_users, 60);
    }

    #[test]
    fn damaged_files_give_clear_errors() {
        let bytes = encoded(&small_artifact());
        let message = |bytes: &[u8]| read(bytes).unwrap_err().to_string();
        assert!(message(&bytes[..10]).contains("truncated: 10 bytes"), "{}", message(&bytes[..10]));
        assert!(message(&bytes[..bytes.len() - 1]).contains("truncated"));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        assert_eq!(message(&flipped), "model artifact: checksum mismatch: the file is corrupted");
        let mut other_version = bytes.clone();
        other_version[8] = 9;
        assert!(message(&other_version).contains("format version 9, but this build reads version 2"));
        assert!(
            message(b"PK\x03\x04 not a model at all, but long enough to have a header.....")
                .contains("bad magic")
        );
        let mut longer = bytes;
        longer.push(0);
        assert!(message(&longer).contains("unexpected bytes after the body"));
    }

    #[test]
    fn saves_atomically_and_loads() {
        let dir = std::env::temp_dir().join(format!("omnirec-artifact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.omr");
        let artifact = small_artifact();
        save(&artifact, &path).unwrap();
        assert_eq!(load(&path).unwrap(), artifact);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("model.omr")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

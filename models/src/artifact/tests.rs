//! The artifact's tests: round trips, and every damaged, forged or inconsistent file refused
//! with a message that says why.

use super::*;
use crate::recommender::ModelKind;
use crate::train::config::TrainConfig;
use datasets::dataset::{Dataset, WeightConfig};

fn small_artifact() -> Artifact {
    let rows = datasets::synthetic::interactions(60, 30, 600, 5);
    let dataset = Dataset::from_interactions(&rows, None, &WeightConfig::default()).unwrap();
    let mut config = TrainConfig::default();
    config.models.enabled = vec![ModelKind::Popularity, ModelKind::ItemKnn, ModelKind::Als];
    config.als.factors = 4;
    config.als.iterations = 2;
    let trained = crate::train::train(&dataset, &config, &crate::progress::Silent).unwrap();
    Artifact::assemble(&dataset, trained, &config, 1_700_000_000)
}

fn encoded(artifact: &Artifact) -> Vec<u8> {
    let mut bytes = Vec::new();
    write(artifact, &mut bytes).unwrap();
    bytes
}

#[test]
fn training_from_an_owned_data_set_gives_the_assembled_artifact() {
    // `Artifact::train` releases the rows before fitting; what it writes must be what
    // training on a borrowed data set and assembling gives: omnichannel events (identity
    // resolution, returns, purchases), every default model, blend tuning, profiles.
    use datasets::synthetic::{SyntheticConfig, SyntheticData};
    let synthetic =
        SyntheticData::generate(SyntheticConfig { n_persons: 150, n_items: 60, ..Default::default() })
            .unwrap();
    let mut config = TrainConfig::default();
    config.als.factors = 4;
    config.als.iterations = 2;
    // Content keeps linfa's vectorizer, whose vocabulary is in hash order (different in
    // every fit): the other models are compared exactly.
    config.models.enabled = vec![ModelKind::Popularity, ModelKind::ItemKnn, ModelKind::Als, ModelKind::Ease];
    let dataset = synthetic.dataset(&config.weights, &config.identity).unwrap();
    assert!(dataset.identity.is_some() && dataset.interactions.iter().any(|i| i.consumption < 0));
    let trained = crate::train::train(&dataset, &config, &crate::progress::Silent).unwrap();
    let assembled = Artifact::assemble(&dataset, trained, &config, 1_700_000_000);
    let mut seen = None;
    let mut owned = Artifact::train(dataset, &config, &crate::progress::Silent, 1_700_000_000, |t| {
        seen = Some(t.models.len())
    })
    .unwrap();
    assert_eq!(seen, Some(owned.body.models.len()));
    assert!(owned.body.consumed.iter().any(|items| !items.is_empty()));
    // Fit times differ from run to run; everything else must not.
    let mut assembled = assembled;
    for report in owned.metadata.models.iter_mut().chain(&mut assembled.metadata.models) {
        report.seconds = 0.0;
    }
    assert!(owned.metadata == assembled.metadata, "the metadata differ");
    let (a, b) = (&owned.body, &assembled.body);
    assert!(a.users == b.users && a.items == b.items && a.aliases == b.aliases, "the maps differ");
    assert!(a.catalog == b.catalog && a.refused == b.refused, "the catalogs or refusals differ");
    assert!(a.history == b.history && a.history_times == b.history_times, "the histories differ");
    assert!(a.consumed == b.consumed, "the consumed lists differ");
    assert!(a.profiles == b.profiles, "the profiles differ");
    assert!(a.models == b.models, "the models differ");
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
    other_version[8] = 7;
    assert!(
        message(&other_version)
            .contains(&format!("format version 7, but this build reads version {FORMAT_VERSION}"))
    );
    assert!(
        message(b"PK\x03\x04 not a model at all, but long enough to have a header.....")
            .contains("bad magic")
    );
    let mut longer = bytes;
    longer.push(0);
    assert!(message(&longer).contains("unexpected bytes after the body"));
}

/// Re-frames `metadata` and `body` bytes with a correct header and checksum: what anyone
/// able to place a file can do, since the checksum is not keyed.
fn sealed(metadata: &[u8], body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(metadata);
    hasher.update(body);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&hasher.finalize());
    out.extend_from_slice(metadata);
    out.extend_from_slice(body);
    out
}

fn parts(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let header = parse_header(bytes).unwrap();
    let (m, b) = bytes[HEADER_LEN..].split_at(header.metadata_len);
    (m.to_vec(), b.to_vec())
}

#[test]
fn a_forged_length_prefix_is_an_error_not_an_abort() {
    let (metadata, body) = parts(&encoded(&small_artifact()));
    // The body opens with the person ids: their count (one varint byte for 60), then the
    // first id's length. Announce 2^40 bytes instead (varint tag 253: a u64 follows).
    assert_eq!(body[0], 60);
    let mut forged = body[..1].to_vec();
    forged.push(253);
    forged.extend_from_slice(&(1u64 << 40).to_le_bytes());
    forged.extend_from_slice(&body[2..]);
    let err = read(&sealed(&metadata, &forged)[..]).unwrap_err().to_string();
    assert!(err.contains("cannot decode body"), "{err}");
}

#[test]
fn a_body_is_decoded_as_it_streams_and_must_fill_its_length() {
    let (metadata, body) = parts(&encoded(&small_artifact()));
    // Decoded in chunks as small as one byte per read: the same artifact.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let whole = sealed(&metadata, &body);
    let artifact = read(&whole[..]).unwrap();
    assert_eq!(read(Trickle(&whole)).unwrap(), artifact);
    assert_eq!(read_metadata(Trickle(&whole)).unwrap(), artifact.metadata);
    // A sealed body with a byte its decoding leaves over is refused, as is one cut short.
    let mut longer = body.clone();
    longer.push(0);
    let err = read(&sealed(&metadata, &longer)[..]).unwrap_err().to_string();
    assert!(err.contains("body has trailing bytes"), "{err}");
    let err = read(&sealed(&metadata, &body[..body.len() - 1])[..]).unwrap_err().to_string();
    assert!(err.contains("cannot decode body"), "{err}");
}

#[test]
fn non_finite_or_out_of_range_contents_are_refused() {
    let artifact = small_artifact();
    let refused = |artifact: &Artifact| read(&encoded(artifact)[..]).unwrap_err().to_string();
    let mut poisoned = artifact.clone();
    poisoned.body.history.data_mut()[0] = f32::NAN;
    assert_eq!(
        refused(&poisoned),
        "model artifact: inconsistent body: history: entry 0 is NaN (not a finite number)"
    );
    let mut past = artifact.clone();
    past.body.consumed[0] = vec![(1_000, 0)];
    assert!(refused(&past).contains("consumed items of person 0"), "{}", refused(&past));
    let mut held = artifact.clone();
    held.body.held = vec![(0, 1_000, 2)];
    assert!(refused(&held).contains("held count 2 of item 1000 for person 0"), "{}", refused(&held));
    let mut withheld = artifact.clone();
    withheld.body.withheld.insert("email:x".into(), vec![(1_000, 0, 1)]);
    assert!(refused(&withheld).contains("items held under `email:x`"), "{}", refused(&withheld));
    withheld.body.withheld.insert("email:x".into(), vec![(1, 0, 1)]);
    assert_eq!(read(&encoded(&withheld)[..]).unwrap().body.withheld, withheld.body.withheld);
    withheld.body.withheld_groups = vec![vec!["email:x".into(), "email:".into()]];
    assert!(refused(&withheld).contains("identifier `email:`"), "{}", refused(&withheld));
    withheld.body.withheld_groups = vec![vec!["email:x".into(), "cookie_id:c".into()]];
    assert_eq!(read(&encoded(&withheld)[..]).unwrap().body.withheld_groups, withheld.body.withheld_groups);
    let mut weights = artifact.clone();
    weights.metadata.blend_weights.insert(crate::recommender::ModelKind::Als, -1.0);
    assert!(refused(&weights).contains("blend: weight of `als` is -1"), "{}", refused(&weights));
    let mut alias = artifact;
    alias.body.aliases.insert("email:x".into(), 60);
    assert!(refused(&alias).contains("alias `email:x` points to person 60"), "{}", refused(&alias));
}

#[test]
fn only_regular_files_of_the_announced_size_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is not a regular file"), "{err}");
    let err = load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(err.contains("is not a regular file"), "{err}");
    let path = dir.path().join("model.omr");
    let mut bytes = encoded(&small_artifact());
    bytes.extend_from_slice(&[0; 10]);
    std::fs::write(&path, &bytes).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("but its header announces"), "{err}");
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

//! Fuzzing omnirec's inputs on stable Rust: one target per way bytes get in (a model
//! artifact, an events file, an interactions file, a catalog, an HTTP request), a seeded
//! structure-aware mutator, and a time-bounded runner that turns a panic into a saved input.
//!
//! A target must never panic, abort or hang, whatever the bytes; an HTTP request must never
//! be answered with a 5xx. The mutator starts from the seed inputs under `fuzz/corpus/` (and
//! a tiny artifact trained at start), and for artifacts re-seals the checksum after each
//! mutation, so changes reach the decoder instead of stopping at the SHA-256.
//!
//! - CI: `cargo test -p fuzz` runs every target for `OMNIREC_FUZZ_SECONDS` (default 8)
//!   seconds and replays every input under `fuzz/regressions/`.
//! - Longer: `cargo run --release -p fuzz -- all --seconds 600` (or one target by name,
//!   `--seed N` for another sequence). A failing input is written to `fuzz/crashes/` and the
//!   run exits non-zero; move it to `fuzz/regressions/<target>/` once fixed, so it is
//!   replayed for ever.
//!
//! libFuzzer's coverage guidance needs a nightly compiler, which the build machines do not
//! have; the mutator makes up for part of it by knowing the formats (tokens that break
//! parsers, length fields, checksums).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// A way bytes get into omnirec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A model artifact, decoded as on load and reload.
    Artifact,
    /// An events JSON Lines file.
    Events,
    /// A CSV/TSV interactions file.
    Interactions,
    /// A catalog, as JSON Lines and as CSV.
    Catalog,
    /// An HTTP request to a running router: the first byte picks the endpoint, the rest is
    /// the body or the query string.
    Request,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 5] =
        [Target::Artifact, Target::Events, Target::Interactions, Target::Catalog, Target::Request];

    /// The target's name, as on the command line and under `fuzz/corpus/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Artifact => "artifact",
            Target::Events => "events",
            Target::Interactions => "interactions",
            Target::Catalog => "catalog",
            Target::Request => "request",
        }
    }

    /// The target called `name`.
    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Feeds `input` to the target. `Err` only for a broken contract (a 5xx answer);
    /// a panic propagates to the caller.
    pub fn run(self, input: &[u8]) -> Result<(), String> {
        use datasets::load::{CatalogFormat, LoadOptions, read_catalog, read_events, read_interactions};
        let strict = LoadOptions { skip_invalid: false, max_timestamp: Some(2_000_000_000) };
        let lenient = LoadOptions { skip_invalid: true, ..strict };
        match self {
            Target::Artifact => {
                let _ = models::artifact::read(input);
            }
            Target::Events => {
                for options in [strict, lenient] {
                    let _ = read_events(input, "fuzz", &options);
                }
            }
            Target::Interactions => {
                for options in [strict, lenient] {
                    let _ = read_interactions(input, "fuzz", &options);
                }
            }
            Target::Catalog => {
                for format in [CatalogFormat::JsonLines, CatalogFormat::Delimited] {
                    let _ = read_catalog(input, "fuzz", format, &lenient);
                    let _ = read_catalog(input, "fuzz", format, &strict);
                }
            }
            Target::Request => return request::run(input),
        }
        Ok(())
    }

    /// Whether inputs are text, for the mutator's choice of tokens.
    fn is_text(self) -> bool {
        self != Target::Artifact
    }
}

mod request {
    //! The request target: the real router with a tiny trained model, driven in-process.

    use std::sync::{Arc, OnceLock};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct App {
        router: axum::Router,
        runtime: tokio::runtime::Runtime,
        _dir: tempfile::TempDir,
    }

    fn app() -> &'static App {
        static APP: OnceLock<App> = OnceLock::new();
        APP.get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary directory for the fuzzing model");
            let path = dir.path().join("model.omr");
            models::artifact::save(super::tiny_artifact(), &path).expect("the fuzzing model is saved");
            let config = server::config::ServerConfig {
                model: Some(path),
                data_dir: Some(dir.path().join("state")),
                ..Default::default()
            };
            let state = server::state::AppState::new(config, |_| None).expect("the fuzzing server starts");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the fuzzing server");
            let router = server::routes::router(Arc::clone(&state));
            App { router, runtime, _dir: dir }
        })
    }

    /// Bytes that cannot be a URI are percent-encoded, so every input reaches the router.
    fn encode(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|&b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'=' | b'&' | b',' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    pub(super) fn run(input: &[u8]) -> Result<(), String> {
        let Some((&selector, rest)) = input.split_first() else { return Ok(()) };
        let json = |uri: &str| {
            Request::post(uri).header("content-type", "application/json").body(Body::from(rest.to_vec()))
        };
        let with_json = |method: &str, uri: &str| {
            Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(rest.to_vec()))
        };
        let request = match selector % 12 {
            0 => json("/v1/recommendations"),
            1 => json("/v1/admin/models/reload"),
            2 => Request::get(format!("/v1/users/u1/recommendations?{}", encode(rest))).body(Body::empty()),
            3 => Request::get(format!("/v1/items/{}/similar", encode(rest))).body(Body::empty()),
            4 => Request::get(format!("/v1/users/{}/recommendations", encode(rest))).body(Body::empty()),
            5 => json("/v1/events"),
            6 => with_json("PUT", "/v1/items"),
            7 => Request::delete(format!("/v1/items/{}", encode(rest))).body(Body::empty()),
            8 => Request::get(format!("/v1/profiles/{}", encode(rest).replacen("%2F", "/", 1)))
                .body(Body::empty()),
            9 => with_json("PUT", "/v1/profiles/cookie_id/c1/consent"),
            10 => json("/v1/identities/link"),
            _ => json("/v1/identities/unlink"),
        };
        let Ok(request) = request else { return Ok(()) };
        let app = app();
        let response =
            app.runtime.block_on(app.router.clone().oneshot(request)).map_err(|e| e.to_string())?;
        if response.status().is_server_error() {
            return Err(format!("answered {}", response.status()));
        }
        Ok(())
    }
}

/// A tiny model trained once on synthetic data: the seed of the artifact target and the
/// model behind the request target.
pub fn tiny_artifact() -> &'static models::artifact::Artifact {
    static ARTIFACT: OnceLock<models::artifact::Artifact> = OnceLock::new();
    ARTIFACT.get_or_init(|| {
        use datasets::dataset::WeightConfig;
        use datasets::identity::IdentityRules;
        use datasets::synthetic::{SyntheticConfig, SyntheticData};
        let synthetic = SyntheticData::generate(SyntheticConfig {
            n_persons: 120,
            n_items: 40,
            seed: 3,
            ..Default::default()
        })
        .expect("synthetic data");
        let dataset =
            synthetic.dataset(&WeightConfig::default(), &IdentityRules::default()).expect("a data set");
        let mut config = models::train::config::TrainConfig::default();
        config.als.factors = 4;
        config.als.iterations = 2;
        config.blend.tune = false;
        let trained =
            models::train::train(&dataset, &config, &models::progress::Silent).expect("a trained model");
        models::artifact::Artifact::assemble(&dataset, trained, &config, 1_700_000_000)
    })
}

/// The seed inputs of `target`: the files under `corpus/<target>/` of this crate, and for
/// artifacts the tiny trained model.
pub fn corpus(target: Target) -> Vec<Vec<u8>> {
    let mut inputs = read_dir_files(&crate_dir().join("corpus").join(target.name()));
    if target == Target::Artifact {
        let mut bytes = Vec::new();
        models::artifact::write(tiny_artifact(), &mut bytes).expect("the tiny artifact encodes");
        inputs.push(bytes);
    }
    if inputs.is_empty() {
        inputs.push(Vec::new());
    }
    inputs
}

/// The directory of this crate.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file of `dir` but hidden ones (`.gitkeep`), sorted by name; none when it does not
/// exist.
pub fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let is_hidden = |p: &Path| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let mut paths: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && !is_hidden(p)).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Byte strings that often break parsers of this project's formats.
const TOKENS: &[&[u8]] = &[
    b"1e308",
    b"-1e308",
    b"-1",
    b"0",
    b"NaN",
    b"inf",
    b"\"\"",
    b"null",
    b"{}",
    b"[]",
    b"\xEF\xBB\xBF",
    b"\xFF\xFE",
    b"\xC3\x28",
    b"99999999999999999999999",
    b"-9223372036854775808",
    b"1700000000000000",
    b"2045-01-01T00:00:00Z",
    b"10000-13-40T25:61:61Z",
    b"\"timestamp\":",
    b"\"value\":",
    b"\"price\":",
    b"\"identifiers\":{\"email\":\"\"}",
    b"\"k\":1000000000000",
    b"\"path\":\"/dev/zero\"",
    b"k=0&",
    b"k=18446744073709551615&",
    b"placement=&",
    b"channel=&",
    b"\n",
    b"\r\n",
    b"\t",
    b",",
    b"|",
    b":",
    b"\"",
];

/// Little-endian integers that sit on the edges of length and index fields.
const EDGES: &[u64] =
    &[0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 1 << 40, i64::MAX as u64, u64::MAX];

/// One mutation of `input` (a member of `corpus`), for `target`.
pub fn mutate(rng: &mut StdRng, input: &[u8], corpus: &[Vec<u8>], target: Target) -> Vec<u8> {
    let mut out = input.to_vec();
    let n_ops = rng.gen_range(1..=4);
    for _ in 0..n_ops {
        let len = out.len();
        match rng.gen_range(0..8) {
            0 if len > 0 => {
                let at = rng.gen_range(0..len);
                out[at] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let at = rng.gen_range(0..len);
                out[at] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{', b'\n', b',', b'\t', b'9'][rng.gen_range(0..10)];
            }
            2 if len > 0 => {
                let width = [1usize, 2, 4, 8][rng.gen_range(0..4)].min(len);
                let at = rng.gen_range(0..=len - width);
                let value = EDGES[rng.gen_range(0..EDGES.len())];
                out[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            3 if len > 1 => {
                let start = rng.gen_range(0..len);
                let end = (start + rng.gen_range(1..=64)).min(len);
                out.drain(start..end);
            }
            4 if len > 1 => {
                let start = rng.gen_range(0..len);
                let end = (start + rng.gen_range(1..=256)).min(len);
                let chunk = out[start..end].to_vec();
                let at = rng.gen_range(0..=out.len());
                out.splice(at..at, chunk);
            }
            5 | 6 if target.is_text() || rng.gen_bool(0.2) => {
                let token = TOKENS[rng.gen_range(0..TOKENS.len())];
                let at = rng.gen_range(0..=len);
                out.splice(at..at, token.iter().copied());
            }
            _ => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                let cut = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
        }
    }
    if target == Target::Artifact && rng.gen_bool(0.9) {
        reseal(&mut out);
    }
    out
}

/// Rewrites an artifact's length fields and checksum to fit its bytes, as anyone able to
/// place a file can (the checksum is not keyed); the metadata length is kept when it fits.
pub fn reseal(bytes: &mut [u8]) {
    const HEADER: usize = 60;
    if bytes.len() < HEADER {
        return;
    }
    let payload = bytes.len() - HEADER;
    let declared = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let metadata = usize::try_from(declared).map_or(payload, |m| m.min(payload));
    bytes[12..20].copy_from_slice(&(metadata as u64).to_le_bytes());
    bytes[20..28].copy_from_slice(&((payload - metadata) as u64).to_le_bytes());
    let digest = Sha256::digest(&bytes[HEADER..]);
    bytes[28..60].copy_from_slice(&digest);
}

/// What a bounded run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Inputs executed.
    pub executions: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// An input that broke a target's contract.
#[derive(Debug)]
pub struct Failure {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message or the broken contract.
    pub message: String,
}

/// Runs `target` on its corpus, then on mutations of it chosen by `seed`, until `budget`
/// has passed or `max_executions` inputs ran. Stops at the first failure. `before_each` sees
/// every input before it runs (to keep it for a post-mortem of an abort).
pub fn run_bounded(
    target: Target,
    budget: Duration,
    max_executions: u64,
    seed: u64,
    mut before_each: impl FnMut(&[u8]),
) -> Result<Stats, Failure> {
    let corpus = corpus(target);
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut executions = 0u64;
    let mut pending: Vec<Vec<u8>> = corpus.clone();
    while executions < max_executions && (executions < pending.len() as u64 || started.elapsed() < budget) {
        let input = if (executions as usize) < corpus.len() {
            pending[executions as usize].clone()
        } else {
            let base = &pending[rng.gen_range(0..pending.len())];
            mutate(&mut rng, base, &corpus, target)
        };
        before_each(&input);
        let outcome = std::panic::catch_unwind(|| target.run(&input));
        executions += 1;
        let message = match outcome {
            Ok(Ok(())) => {
                // Keep a few mutants as bases, so mutations compound.
                if pending.len() < 4 * corpus.len() + 64 && rng.gen_bool(0.01) {
                    pending.push(input);
                }
                continue;
            }
            Ok(Err(broken)) => broken,
            Err(panic) => panic_message(panic.as_ref()),
        };
        return Err(Failure { input, message });
    }
    Ok(Stats { executions, elapsed: started.elapsed() })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Writes a failing input to `fuzz/crashes/<target>-<sha256 prefix>` and returns the path.
pub fn save_crash(target: Target, input: &[u8]) -> std::io::Result<PathBuf> {
    let dir = crate_dir().join("crashes");
    std::fs::create_dir_all(&dir)?;
    let digest = Sha256::digest(input);
    let name: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{}-{name}", target.name()));
    std::fs::write(&path, input)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resealed_artifact_passes_the_checksum() {
        let mut bytes = Vec::new();
        models::artifact::write(tiny_artifact(), &mut bytes).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = models::artifact::read(&bytes[..]).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        reseal(&mut bytes);
        if let Err(err) = models::artifact::read(&bytes[..]) {
            assert!(!err.to_string().contains("checksum"), "{err}");
        }
    }

    #[test]
    fn mutations_are_deterministic_for_a_seed() {
        let corpus = vec![b"user_id,item_id\nu,i\n".to_vec()];
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20).map(|_| mutate(&mut rng, &corpus[0], &corpus, Target::Interactions)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}

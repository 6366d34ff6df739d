//! The one error type of `models`.

/// What can go wrong in `models`. Messages are lowercase with no final period.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyperparameter is out of range (the caller's fault).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter as written in the config (`als.factors`).
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The training data cannot train this model (the caller's fault).
    #[error("cannot train {model}: {reason}")]
    Untrainable {
        /// The model's name.
        model: &'static str,
        /// Why.
        reason: String,
    },
    /// A numerical step failed, such as a matrix that is not positive definite (our fault or
    /// degenerate data).
    #[error("{model}: numerical failure: {reason}")]
    Numerical {
        /// The model's name.
        model: &'static str,
        /// What failed.
        reason: String,
    },
    /// An index was out of range for the model (the caller's fault).
    #[error("{what} {index} is out of range (model has {len})")]
    OutOfRange {
        /// `user` or `item`.
        what: &'static str,
        /// The index given.
        index: usize,
        /// How many the model knows.
        len: usize,
    },
    /// An artifact is truncated, corrupted, from another format version, or not an artifact
    /// (the file's fault).
    #[error("model artifact: {0}")]
    Artifact(String),
    /// Reading or writing an artifact failed (the environment's fault).
    #[error("model artifact i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A request breaks its placement's rules (the caller's fault).
    #[error(transparent)]
    Rule(#[from] crate::serve::rules::RuleError),
    /// An experiment's definition is invalid (the caller's fault).
    #[error("experiment: `{field}` {reason}")]
    Experiment {
        /// The field at fault (`variants[1].share`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A data-set error surfaced while training.
    #[error(transparent)]
    Data(#[from] datasets::Error),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Ok` when `holds`, else [`Error::InvalidParam`] naming the parameter `name` as written in
/// the config with `reason`: the one shape of every parameter range check.
pub fn require(holds: bool, name: &'static str, reason: &str) -> Result<()> {
    if holds { Ok(()) } else { Err(Error::InvalidParam { name, reason: reason.to_owned() }) }
}

//! The one error type of `datasets`.

use std::fmt;

/// Where in an input a problem was found: file (or stream name), 1-based line, and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file or stream name given by the caller.
    pub source: String,
    /// 1-based line number (the header is line 1 in CSV files).
    pub line: usize,
    /// The field (column or JSON key) at fault; empty when the whole line is.
    pub field: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}", self.source, self.line)
        } else {
            write!(f, "{}:{}: field `{}`", self.source, self.line, self.field)
        }
    }
}

/// What can go wrong in `datasets`. Messages are lowercase with no final period.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A row of an input file is malformed (the caller's fault).
    #[error("{location}: {reason}")]
    Parse {
        /// Where the problem is.
        location: Location,
        /// Why the row was refused.
        reason: String,
    },
    /// A file's header lacks a required column (the caller's fault).
    #[error("{source_name}: header has no `{column}` column (found: {found})")]
    MissingColumn {
        /// The file or stream name.
        source_name: String,
        /// The column that is required.
        column: &'static str,
        /// The columns the header does have, comma-separated.
        found: String,
    },
    /// An input holds no usable rows (the caller's fault).
    #[error("{0}: no usable rows")]
    Empty(String),
    /// The data holds nothing a model can learn from: no event about an item, or no
    /// person × item weight above 0 (the caller's fault).
    #[error("nothing to train: {0}")]
    NothingToTrain(String),
    /// A configuration value is out of range (the caller's fault).
    #[error("invalid setting `{name}`: {reason}")]
    InvalidConfig {
        /// The setting's name as the user writes it.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// Reading or writing failed (the environment's fault).
    #[error("{context}")]
    Io {
        /// What was being read or written.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A parse error at `source:line`, field `field`.
    pub fn parse(source: &str, line: usize, field: &str, reason: impl Into<String>) -> Self {
        Error::Parse {
            location: Location { source: source.to_owned(), line, field: field.to_owned() },
            reason: reason.into(),
        }
    }

    /// An i/o error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

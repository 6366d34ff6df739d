//! The store's one error type.

use std::path::PathBuf;

/// What can go wrong in the store. Every variant is the store's or its disk's fault, not a
/// caller's: a refused event, link or item is an outcome the caller is told about, not an
/// error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data file could not be opened: missing permissions, a foreign or corrupt file, or
    /// another process holding it.
    #[error("cannot open the store {}: {reason}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A read, write or commit failed (disk full, I/O error).
    #[error("store: {0}")]
    Storage(String),
    /// A commit failed once it had begun writing (a failed sync): what it held may be on
    /// disk or not. The store takes no more writes until it is opened again.
    #[error(
        "store: a commit failed and what it held may or may not be on disk ({0}); this store takes no more \
         writes until the server restarts (then a retry with the same event_id is answered `duplicate` if it was kept)"
    )]
    CommitUncertain(String),
    /// The store's file failed an I/O operation (a write, or a sync an earlier commit left
    /// for later): nothing of this transaction is kept, and the database takes no more
    /// writes until it is opened again.
    #[error(
        "store: the data file failed an I/O operation ({0}); nothing of this change was kept, and this store takes \
         no more writes until the server restarts"
    )]
    Unwritable(String),
    /// A stored record does not decode: the file was written by something else, or damaged.
    #[error("store: {0}")]
    Corrupt(String),
    /// The writer thread is gone (the process is shutting down).
    #[error("store: the writer has stopped")]
    WriterStopped,
    /// Writing an export failed.
    #[error("export: {context}: {source}")]
    Export {
        /// What was being written.
        context: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The same failure again, for each of the callers one failed commit answers.
    pub(crate) fn again(&self) -> Error {
        match self {
            Error::CommitUncertain(reason) => Error::CommitUncertain(reason.clone()),
            Error::Unwritable(reason) => Error::Unwritable(reason.clone()),
            Error::WriterStopped => Error::WriterStopped,
            other => Error::Storage(other.to_string()),
        }
    }

    /// Whether what the failed change held may have been kept all the same.
    pub fn may_have_been_kept(&self) -> bool {
        matches!(self, Error::CommitUncertain(_))
    }

    /// Whether the store takes no more writes until it is opened again.
    pub fn stops_writes(&self) -> bool {
        matches!(self, Error::CommitUncertain(_) | Error::Unwritable(_))
    }
}

/// `Result` with the store's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! storage_errors {
    ($($source:ty),*) => {
        $(impl From<$source> for Error {
            fn from(error: $source) -> Self {
                Error::Storage(error.to_string())
            }
        })*
    };
}

storage_errors!(redb::Error, redb::DatabaseError, redb::CompactionError, redb::SetDurabilityError);

impl From<redb::StorageError> for Error {
    /// An I/O failure leaves redb refusing every later write until the file is opened again.
    fn from(error: redb::StorageError) -> Self {
        match error {
            redb::StorageError::Io(_) | redb::StorageError::PreviousIo => {
                Error::Unwritable(error.to_string())
            }
            other => Error::Storage(other.to_string()),
        }
    }
}

/// redb's errors that wrap a storage error: that one decides (an I/O failure included).
macro_rules! wrapping_storage {
    ($($source:ident),*) => {
        $(impl From<redb::$source> for Error {
            fn from(error: redb::$source) -> Self {
                match error {
                    redb::$source::Storage(storage) => storage.into(),
                    other => Error::Storage(other.to_string()),
                }
            }
        })*
    };
}

wrapping_storage!(TransactionError, TableError, CommitError);

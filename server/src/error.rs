//! The one error type of `server` (start-up, configuration, model loading), and the JSON
//! error body every failed request gets.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// What can go wrong starting or reloading the server. Messages are lowercase with no final
/// period.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are invalid (file, environment, or against the model).
    #[error("configuration: {0}")]
    Config(String),
    /// The model artifact cannot be loaded or does not fit the placements.
    #[error("model {path}: {source}")]
    Model {
        /// The artifact's path.
        path: String,
        /// Why.
        source: models::Error,
    },
    /// The server's state in the data directory cannot be written (the environment's fault).
    #[error("cannot write {path}: {source}")]
    State {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store in the data directory failed (open, read or write).
    #[error("{0}")]
    Store(#[from] store::Error),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whose fault an error is: the caller's (4xx, fix the request), the input file's, the
/// environment's or ours (5xx, look at the server log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request.
    Caller,
    /// A file the server was asked to load.
    Input,
    /// The machine: disk, permissions.
    Environment,
    /// A bug, or a request that ran out of time.
    Server,
}

/// Every error the API answers with: one table of code, status and fault, so a code always
/// comes with the same status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A field breaks a rule (its name is in `field`): a `k` out of range, an unknown
    /// identifier kind, a channel the placement does not serve, a missing `store_id`, …
    InvalidField,
    /// The body is not JSON.
    MalformedJson,
    /// The body could not be read.
    BadBody,
    /// Well-formed JSON of the wrong shape: a wrong type, an unknown field, not an object.
    InvalidBody,
    /// No key, or a key that matches none.
    Unauthenticated,
    /// The key lacks the role.
    Forbidden,
    /// The placement is not configured.
    UnknownPlacement,
    /// The item is not in the catalog (similar items).
    UnknownItem,
    /// No such route.
    NotFound,
    /// The request took longer than `request_timeout_ms`.
    Timeout,
    /// The body is above `max_body_bytes`.
    PayloadTooLarge,
    /// A body without `content-type: application/json`.
    ContentType,
    /// A reload was refused: the artifact cannot be read or does not fit the placements.
    ModelRejected,
    /// A reload could not record the new active model; nothing was swapped.
    StateWriteFailed,
    /// The server runs without a data directory, so it keeps no live state.
    NoStore,
    /// No person is known by the identifier.
    UnknownIdentifier,
    /// The identity rules refused an explicit link (a merge limit, a hot identifier, an unlink).
    LinkRefused,
    /// An unlink of identifiers that are not one person.
    NotLinked,
    /// The store could not read or write (the disk's fault); nothing of the request was kept.
    StoreFailed,
    /// The server is still loading its model (at start-up); try again shortly.
    Loading,
    /// No experiment by that name.
    UnknownExperiment,
    /// A running experiment's variants, shares or placements cannot change (start a new one).
    ExperimentRunning,
    /// No model version by that id in the registry.
    UnknownModel,
    /// The model version is in use: production, or named by a running experiment.
    ModelInUse,
    /// An export of that name exists (exports are never overwritten: a training run may be
    /// reading it).
    ExportExists,
    /// Anything else that went wrong on our side (details in the log).
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the documentation.
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::InvalidField,
        ErrorCode::MalformedJson,
        ErrorCode::BadBody,
        ErrorCode::InvalidBody,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::UnknownPlacement,
        ErrorCode::UnknownItem,
        ErrorCode::NotFound,
        ErrorCode::Timeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ContentType,
        ErrorCode::ModelRejected,
        ErrorCode::StateWriteFailed,
        ErrorCode::NoStore,
        ErrorCode::UnknownIdentifier,
        ErrorCode::LinkRefused,
        ErrorCode::NotLinked,
        ErrorCode::StoreFailed,
        ErrorCode::Loading,
        ErrorCode::UnknownExperiment,
        ErrorCode::ExperimentRunning,
        ErrorCode::UnknownModel,
        ErrorCode::ModelInUse,
        ErrorCode::ExportExists,
        ErrorCode::Internal,
    ];

    /// The code, its HTTP status and whose fault it is.
    pub fn describe(self) -> (&'static str, StatusCode, Fault) {
        use ErrorCode::*;
        match self {
            InvalidField => ("invalid_field", StatusCode::BAD_REQUEST, Fault::Caller),
            MalformedJson => ("malformed_json", StatusCode::BAD_REQUEST, Fault::Caller),
            BadBody => ("bad_body", StatusCode::BAD_REQUEST, Fault::Caller),
            InvalidBody => ("invalid_body", StatusCode::UNPROCESSABLE_ENTITY, Fault::Caller),
            Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED, Fault::Caller),
            Forbidden => ("forbidden", StatusCode::FORBIDDEN, Fault::Caller),
            UnknownPlacement => ("unknown_placement", StatusCode::NOT_FOUND, Fault::Caller),
            UnknownItem => ("unknown_item", StatusCode::NOT_FOUND, Fault::Caller),
            NotFound => ("not_found", StatusCode::NOT_FOUND, Fault::Caller),
            Timeout => ("timeout", StatusCode::REQUEST_TIMEOUT, Fault::Server),
            PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, Fault::Caller),
            ContentType => ("content_type", StatusCode::UNSUPPORTED_MEDIA_TYPE, Fault::Caller),
            ModelRejected => ("model_rejected", StatusCode::UNPROCESSABLE_ENTITY, Fault::Input),
            StateWriteFailed => ("state_write_failed", StatusCode::INTERNAL_SERVER_ERROR, Fault::Environment),
            NoStore => ("no_store", StatusCode::SERVICE_UNAVAILABLE, Fault::Environment),
            UnknownIdentifier => ("unknown_identifier", StatusCode::NOT_FOUND, Fault::Caller),
            LinkRefused => ("link_refused", StatusCode::CONFLICT, Fault::Caller),
            NotLinked => ("not_linked", StatusCode::CONFLICT, Fault::Caller),
            StoreFailed => ("store_failed", StatusCode::INTERNAL_SERVER_ERROR, Fault::Environment),
            Loading => ("loading", StatusCode::SERVICE_UNAVAILABLE, Fault::Server),
            UnknownExperiment => ("unknown_experiment", StatusCode::NOT_FOUND, Fault::Caller),
            ExperimentRunning => ("experiment_running", StatusCode::CONFLICT, Fault::Caller),
            UnknownModel => ("unknown_model", StatusCode::NOT_FOUND, Fault::Caller),
            ModelInUse => ("model_in_use", StatusCode::CONFLICT, Fault::Caller),
            ExportExists => ("export_exists", StatusCode::CONFLICT, Fault::Caller),
            Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR, Fault::Server),
        }
    }

    /// The stable machine-readable code.
    pub fn as_str(self) -> &'static str {
        self.describe().0
    }

    /// The HTTP status that goes with it.
    pub fn status(self) -> StatusCode {
        self.describe().1
    }

    /// The code of a body-reading failure, by the status axum gives it.
    pub fn of_body_status(status: StatusCode) -> ErrorCode {
        if status == StatusCode::PAYLOAD_TOO_LARGE { ErrorCode::PayloadTooLarge } else { ErrorCode::BadBody }
    }
}

/// A failed request: a code from [`ErrorCode`]'s table, a message for humans and, when one
/// field is at fault, its name.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What kind of error; fixes the status.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
    /// The request field at fault.
    pub field: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// HTTP status.
    pub status: u16,
    /// Stable code: `invalid_field`, `malformed_json`, `bad_body`, `invalid_body`,
    /// `unauthenticated`, `forbidden`, `unknown_placement`, `unknown_item`, `not_found`,
    /// `timeout`, `payload_too_large`, `content_type`, `model_rejected`,
    /// `state_write_failed`, `no_store`, `unknown_identifier`, `link_refused`, `not_linked`,
    /// `store_failed`, `loading`, `unknown_experiment`, `experiment_running`, `unknown_model`,
    /// `model_in_use`, `internal`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The request field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), field: None }
    }

    /// An error blaming one request field.
    pub fn at(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        ApiError { field: Some(field.to_string()), ..ApiError::new(code, message) }
    }

    /// A 400 `invalid_field` naming `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::at(ErrorCode::InvalidField, field, message)
    }

    /// A store failure: logged, answered 500 `store_failed`, saying whether the request may
    /// have been kept and whether the store still takes writes.
    pub fn store(error: store::Error) -> Self {
        tracing::error!(%error, "the store failed");
        let message = if error.may_have_been_kept() {
            "the store's disk failed while writing this request: it may or may not have been kept; the store \
             takes no more writes until the server restarts, then resend with the same event_id (a kept event \
             is answered `duplicate`)"
        } else if error.stops_writes() {
            "the store's disk failed: nothing of this request was kept, and the store takes no more writes until \
             the server restarts"
        } else {
            "the store could not read or write; nothing of this request was kept"
        };
        ApiError::new(ErrorCode::StoreFailed, message)
    }

    /// The 503 of a server without a data directory.
    pub fn no_store() -> Self {
        ApiError::new(
            ErrorCode::NoStore,
            "this server runs without a data directory and keeps no live state; start it with --data-dir",
        )
    }

    /// A 500 whose detail goes to the log, not the caller.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "request failed");
        ApiError::new(ErrorCode::Internal, "internal error; see the server log")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                status: status.as_u16(),
                code: self.code.as_str().to_string(),
                message: self.message,
                field: self.field,
            },
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_distinct_and_caller_faults_are_4xx() {
        let codes: std::collections::HashSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            let (_, status, fault) = code.describe();
            match fault {
                Fault::Caller | Fault::Input => assert!(status.is_client_error(), "{code:?}"),
                Fault::Environment => assert!(status.is_server_error(), "{code:?}"),
                Fault::Server => {}
            }
        }
        // The one table says which status goes with a code: invalid_field is always 400.
        assert_eq!(ApiError::field("k", "too big").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorCode::InvalidBody.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

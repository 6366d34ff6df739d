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
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed request: status, a stable code, a message for humans and, when one field is at
/// fault, its name.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`invalid_field`, `unknown_item`, …).
    pub code: &'static str,
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
    /// Stable code: `invalid_field`, `malformed_json`, `content_type`, `bad_body`,
    /// `unknown_placement`, `unknown_item`, `not_found`, `unauthenticated`, `forbidden`,
    /// `payload_too_large`, `timeout`, `model_rejected`, `state_write_failed`, `internal`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The request field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }

    /// A 400 naming `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message)
        }
    }

    /// A 500 whose detail goes to the log, not the caller.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

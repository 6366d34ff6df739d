//! Extractors whose rejections become [`ApiError`]s in the one error shape.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;

use crate::error::ApiError;

/// A JSON object body whose rejections become [`ApiError`]s naming the problem. Only an
/// object is a body: serde would also fill a struct from an array of its fields in order
/// (`[]` gives every default), which no caller means and no document describes.
pub struct JsonBody<T>(pub T);

/// Whether the request says its body is JSON (`application/json`, or a `+json` type).
fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(axum::http::header::CONTENT_TYPE) else { return false };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(&request) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type",
                "expected a body with `content-type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_body" };
            ApiError::new(status, code, rejection.body_text())
        })?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "the body must be a JSON object",
            ));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(match &rejection {
                JsonRejection::JsonDataError(_) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", rejection.body_text())
                }
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", rejection.body_text())
                }
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type", rejection.body_text())
                }
                _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", rejection.body_text())
                }
                _ => ApiError::new(rejection.status(), "bad_body", rejection.body_text()),
            }),
        }
    }
}

/// Query parameters whose rejections become [`ApiError`]s.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state).await.map(|q| QueryParams(q.0)).map_err(
            |rejection: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", rejection.body_text())
            },
        )
    }
}

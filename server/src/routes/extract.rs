//! Extractors whose rejections become [`ApiError`]s in the one error shape.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;

use crate::error::ApiError;

/// A JSON body whose rejections become [`ApiError`]s naming the problem.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
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

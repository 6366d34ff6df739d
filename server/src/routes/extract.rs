//! Extractors whose rejections become [`ApiError`]s in the one error shape.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;

use crate::error::{ApiError, ErrorCode};

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

/// Bodies from this size on are parsed on the blocking pool, not on the runtime's worker:
/// a batch of a hundred events takes long enough to hold up every other connection.
const PARSE_APART: usize = 16 * 1024;

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send + 'static> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(&request) {
            return Err(ApiError::new(
                ErrorCode::ContentType,
                "expected a body with `content-type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
            ApiError::new(ErrorCode::of_body_status(rejection.status()), rejection.body_text())
        })?;
        if bytes.len() < PARSE_APART {
            return parse(&bytes);
        }
        tokio::task::spawn_blocking(move || parse(&bytes)).await.map_err(ApiError::internal)?
    }
}

/// The body as a `T`, or the error naming what is wrong with it.
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<JsonBody<T>, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::new(ErrorCode::InvalidBody, "the body must be a JSON object"));
    }
    let parsed = Json::<T>::from_bytes(bytes);
    if parsed.is_ok()
        && let Some((path, key)) = datasets::load::duplicate_key(bytes)
    {
        let field = if path.is_empty() { key } else { format!("{path}.{key}") };
        return Err(ApiError::field(&field, format!("`{field}` is given twice in one object: send it once")));
    }
    match parsed {
        Ok(Json(value)) => Ok(JsonBody(value)),
        Err(rejection) => Err(match &rejection {
            JsonRejection::JsonDataError(_) => ApiError::new(ErrorCode::InvalidBody, rejection.body_text()),
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::new(ErrorCode::MalformedJson, rejection.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::new(ErrorCode::ContentType, rejection.body_text())
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(ErrorCode::PayloadTooLarge, rejection.body_text())
            }
            _ => ApiError::new(ErrorCode::of_body_status(rejection.status()), rejection.body_text()),
        }),
    }
}

/// Query parameters whose rejections become [`ApiError`]s.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        query(parts.uri.query().unwrap_or("")).map(QueryParams)
    }
}

/// The query string as a `T`; an error names the parameter at fault where there is one (a
/// `k` that is no number), as the body's errors do.
fn query<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let decoder = serde_urlencoded::Deserializer::new(form_urlencoded::parse(text.as_bytes()));
    serde_path_to_error::deserialize(decoder).map_err(|error| {
        let path = error.path().to_string();
        let message = format!("query string: {}", error.inner());
        if path.is_empty() || path == "." || path == "?" {
            ApiError::new(ErrorCode::InvalidField, message)
        } else {
            ApiError::field(&path, format!("query parameter `{path}`: {}", error.inner()))
        }
    })
}

/// Checks a batch's size: at least one entry, at most `limit`; the error names `field`.
pub(super) fn batch_size(field: &str, len: usize, limit: usize) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::field(field, format!("send at least one entry in `{field}`")));
    }
    if len > limit {
        return Err(ApiError::field(
            field,
            format!("at most {limit} per request, got {len}; split the batch"),
        ));
    }
    Ok(())
}

/// Checks that every entry of a batch is a JSON object, as the document says: anything else
/// is a body of the wrong shape (422), not one bad entry among good ones.
pub(super) fn objects_only(field: &str, entries: &[serde_json::Value]) -> Result<(), ApiError> {
    match entries.iter().position(|entry| !entry.is_object()) {
        Some(at) => Err(ApiError::at(
            ErrorCode::InvalidBody,
            &format!("{field}[{at}]"),
            format!("{field}[{at}]: expected a JSON object, found {}", entries[at]),
        )),
        None => Ok(()),
    }
}

/// Who made a change, for its provenance: the API key's name, `open` on an open server.
pub(super) fn source(caller: Option<axum::Extension<crate::auth::Caller>>) -> String {
    caller.map_or_else(|| "open".to_string(), |c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Read through `Debug` only.
    struct Params {
        k: Option<usize>,
        hours: Option<f64>,
        channel: Option<String>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let fine: Params = query("k=5&channel=web%20shop").unwrap();
        assert_eq!((fine.k, fine.channel.as_deref()), (Some(5), Some("web shop")));
        for (text, field) in [("k=abc", "k"), ("k=-1", "k"), ("hours=soon", "hours")] {
            let error = query::<Params>(text).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{text}: {}", error.message);
            assert_eq!(error.code, ErrorCode::InvalidField);
        }
        let unknown = query::<Params>("kk=3").unwrap_err();
        assert!(unknown.message.contains("kk"), "{}", unknown.message);
        assert_eq!(unknown.code, ErrorCode::InvalidField);
    }
}

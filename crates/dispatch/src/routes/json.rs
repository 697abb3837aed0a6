//! JSON request bodies of the native surface: lenient about fields runbox does not
//! know, strict about the types of those it does, and precise about what is wrong.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

const INVALID_JSON: &str = "Invalid JSON";

/// The body as a JSON object; anything else is 400 (`413` when it is too large).
/// When `empty_is_object`, a body that is empty or `null` is an empty object (a body of
/// options only, all optional).
pub fn json_object(
    body: Result<Bytes, BytesRejection>,
    empty_is_object: bool,
) -> ApiResult<Map<String, Value>> {
    let body = body.map_err(body_rejection)?;
    if empty_is_object && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(Value::Null) if empty_is_object => Ok(Map::new()),
        Ok(_) => Err(ApiError::bad_request_because(
            INVALID_JSON,
            "the body must be a JSON object",
        )),
        Err(err) => Err(ApiError::bad_request_because(INVALID_JSON, err.to_string())),
    }
}

/// Deserializes `fields` into `T`; a wrong type is 400 naming the field by its path
/// (`timeout`, `files[1].path`, `context`).
pub fn from_object<T: DeserializeOwned>(fields: Map<String, Value>) -> ApiResult<T> {
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        if path == "." {
            // A missing field: serde's message names it already.
            ApiError::bad_request(format!("Invalid request: {message}"))
        } else {
            ApiError::invalid_field(path, message)
        }
    })
}

/// A body that could not be read: too large (413) or broken off.
pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::bad_request_because("Invalid JSON", rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        code: String,
        #[serde(default)]
        timeout: Option<f64>,
        #[serde(default)]
        files: Vec<File>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct File {
        path: String,
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let err = from_object::<Body>(object(serde_json::json!({"code": "1", "timeout": "x"})))
            .expect_err("timeout is not a number");
        let body = err.body();
        assert_eq!(body["field"], "timeout");
        assert!(body["error"].as_str().unwrap_or("").contains("timeout"));

        let err = from_object::<Body>(object(
            serde_json::json!({"code": "1", "files": [{"path": "a"}, {"path": 3}]}),
        ))
        .expect_err("a path is not a string");
        assert_eq!(err.body()["field"], "files[1].path");
    }

    #[test]
    fn a_missing_field_is_named_and_unknown_fields_are_ignored() {
        let err = from_object::<Body>(object(serde_json::json!({"timeout": 1})))
            .expect_err("code is missing");
        assert!(err.to_string().contains("`code`"), "{err}");
        assert!(from_object::<Body>(object(serde_json::json!({"code": "", "extra": 1}))).is_ok());
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(json_object(Ok(Bytes::from_static(b"[1]")), false).is_err());
        assert!(json_object(Ok(Bytes::from_static(b"{")), false).is_err());
        assert!(json_object(Ok(Bytes::from_static(b"")), false).is_err());
        assert!(json_object(Ok(Bytes::from_static(b" ")), true).is_ok());
        assert!(json_object(Ok(Bytes::from_static(b"null")), true).is_ok());
        assert!(json_object(Ok(Bytes::from_static(b"null")), false).is_err());
    }
}

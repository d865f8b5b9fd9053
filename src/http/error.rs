//! Errors as HTTP responses: the status from the error's kind, the body
//! `{"error": "..."}`, and the headers some kinds need.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "model \"resnet\" not found"}))]
pub struct ErrorResponse<'a> {
    /// What went wrong, naming the field, the expected and the given value; 5xx carry no
    /// internals.
    pub error: &'a str,
}

/// The HTTP status of a kind.
pub fn status(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (
            status(self.kind),
            axum::Json(ErrorResponse {
                error: &self.message,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        match self.kind {
            ErrorKind::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // A body over --max-body-bytes is refused before its rest is read, so the
            // connection cannot carry another request: say so, or a client's pool reuses
            // it and its next request meets a closed socket. The pipelines' own size
            // limits also answer 413; closing after those costs a reconnect on a request
            // that was refused anyway.
            ErrorKind::PayloadTooLarge => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ErrorKind::TooManyRequests => {
                let secs = self.retry_after.unwrap_or_default().as_secs().max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}

/// A body that could not be read: 413 over the limit, 400 otherwise.
pub fn body_error(e: BytesRejection, limit: usize) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::too_large(format!(
            "request body exceeds the limit of {limit} bytes (--max-body-bytes)"
        ))
    } else {
        Error::bad_request(format!("request body: {e}"))
    }
}

/// A JSON body that does not parse as the route's request: 400 naming serde's finding.
pub fn json_error(e: serde_json::Error) -> Error {
    Error::bad_request(format!("invalid request body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn too_many_requests_says_when_to_come_back() {
        let r = Error::too_many("full", Duration::from_secs(3)).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        let r = Error::too_many("full", Duration::from_millis(10)).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn every_kind_has_its_status() {
        for k in ErrorKind::ALL {
            let r = Error::new(k, "x").into_response();
            assert_eq!(r.status().as_u16(), k.status());
        }
        let r = Error::new(ErrorKind::Unauthorized, "x").into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}

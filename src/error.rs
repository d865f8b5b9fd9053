//! The one place where errors become HTTP statuses. Every layer has its own error type;
//! the handler converts them into [`ApiError`], whose status comes from [`STATUS_TABLE`].
//! Bodies are `{"error": "..."}`; 5xx bodies never carry internals (those go to the log).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::batching::SchedulerError;

/// Errors as clients see them.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ApiError {
    /// The body is not a well-formed request (bad JSON, wrong JSON types, bad binary
    /// framing).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed, but does not fit the model (unknown input, wrong datatype or shape).
    #[error("{0}")]
    Unprocessable(String),
    /// No such model, version or route.
    #[error("{0}")]
    NotFound(String),
    /// API keys are configured and the request carries none (or not as a bearer token).
    #[error("{0}")]
    Unauthorized(String),
    /// The request's key is not one of the configured keys.
    #[error("{0}")]
    Forbidden(String),
    /// The route exists, the method does not (the `Allow` header lists those that do).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body exceeds `--max-body-bytes`.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The model's queue is full: come back after `retry_after`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: Duration,
    },
    /// Not ready, failed to load, or shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// The request's deadline passed before it ran.
    #[error("{0}")]
    Timeout(String),
    /// A server-side fault; the detail is in the log under the request id.
    #[error("internal error; see the server log")]
    Internal,
}

/// Every error kind, its status and its outcome label in metrics: the table the
/// OpenAPI statuses are checked against.
pub const STATUS_TABLE: &[(&str, StatusCode)] = &[
    ("bad_request", StatusCode::BAD_REQUEST),
    ("unauthorized", StatusCode::UNAUTHORIZED),
    ("forbidden", StatusCode::FORBIDDEN),
    ("not_found", StatusCode::NOT_FOUND),
    ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
    ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
    ("unprocessable", StatusCode::UNPROCESSABLE_ENTITY),
    ("too_many_requests", StatusCode::TOO_MANY_REQUESTS),
    ("internal", StatusCode::INTERNAL_SERVER_ERROR),
    ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
    ("timeout", StatusCode::GATEWAY_TIMEOUT),
];

impl ApiError {
    /// The kind: a row of [`STATUS_TABLE`] and the `outcome` label of metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        let kind = self.kind();
        STATUS_TABLE
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<crate::repository::ControlError> for ApiError {
    fn from(e: crate::repository::ControlError) -> ApiError {
        use crate::repository::ControlError;
        match e {
            ControlError::NotFound(_) | ControlError::NotLoaded(_) => {
                ApiError::NotFound(e.to_string())
            }
            ControlError::Invalid(_) | ControlError::Failed { .. } => {
                ApiError::Unprocessable(e.to_string())
            }
        }
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> ApiError {
        match e {
            SchedulerError::QueueFull { retry_after, .. }
            | SchedulerError::BeyondTarget { retry_after, .. } => ApiError::TooManyRequests {
                message: e.to_string(),
                retry_after,
            },
            SchedulerError::ShuttingDown { .. } => ApiError::Unavailable(e.to_string()),
            SchedulerError::Expired { .. } => ApiError::Timeout(e.to_string()),
            SchedulerError::Internal => ApiError::Internal,
        }
    }
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "model \"resnet\" not found (models: mlp)"}))]
pub struct ErrorResponse<'a> {
    /// What went wrong, naming the field, the expected and the given value; 5xx carry no
    /// internals.
    pub error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let mut response =
            (self.status(), axum::Json(ErrorResponse { error: &message })).into_response();
        if let ApiError::Unauthorized(_) = &self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::PayloadTooLarge(_) = &self {
            // A body over --max-body-bytes is refused before its rest is read, so the
            // connection cannot carry another request: say so, or a client's pool reuses
            // it and its next request meets a closed socket (a broken pipe in
            // tests/hostile.rs). The pipelines' own size limits also answer 413; closing
            // after those costs a reconnect on a request that was refused anyway.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            let secs = retry_after.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_in_the_table_once() {
        let all = [
            ApiError::BadRequest(String::new()),
            ApiError::Unprocessable(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::Unauthorized(String::new()),
            ApiError::Forbidden(String::new()),
            ApiError::MethodNotAllowed(String::new()),
            ApiError::PayloadTooLarge(String::new()),
            ApiError::TooManyRequests {
                message: String::new(),
                retry_after: Duration::ZERO,
            },
            ApiError::Unavailable(String::new()),
            ApiError::Timeout(String::new()),
            ApiError::Internal,
        ];
        for e in &all {
            let rows = STATUS_TABLE.iter().filter(|(k, _)| *k == e.kind()).count();
            assert_eq!(rows, 1, "{}", e.kind());
        }
        assert_eq!(all.len(), STATUS_TABLE.len());
    }

    #[test]
    fn queue_full_is_429_with_retry_after() {
        let e: ApiError = SchedulerError::QueueFull {
            model: "m".into(),
            queued: 10,
            limit: 10,
            unit: "rows",
            retry_after: Duration::from_secs(3),
        }
        .into();
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn internal_errors_carry_no_detail() {
        assert_eq!(
            ApiError::Internal.to_string(),
            "internal error; see the server log"
        );
        assert_eq!(
            ApiError::Internal.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

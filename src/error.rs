//! The one list of error kinds. Every layer has its own error type; the core turns them
//! into [`Error`], whose [`ErrorKind`] carries the HTTP status and the `outcome` label
//! of metrics. The mapping to HTTP responses lives in `http::error`; this module knows
//! nothing of HTTP or of the layers above it.

use std::time::Duration;

/// What went wrong, as a client and the metrics see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The body is not a well-formed request (bad JSON, wrong JSON types, bad binary
    /// framing).
    BadRequest,
    /// API keys are configured and the request carries none (or not as a bearer token).
    Unauthorized,
    /// The request's key is not one of the configured keys.
    Forbidden,
    /// No such model, version or route.
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// The body exceeds `--max-body-bytes` or a pipeline's own size limit.
    PayloadTooLarge,
    /// Well-formed, but does not fit the model (unknown input, wrong datatype or shape,
    /// a corrupt image).
    Unprocessable,
    /// The model's queue is full, or the request would finish past its latency target.
    TooManyRequests,
    /// A server-side fault; the detail is in the log under the request id.
    Internal,
    /// Not ready, failed to load, or shutting down.
    Unavailable,
    /// The request's deadline passed before it ran.
    Timeout,
}

impl ErrorKind {
    /// Every kind, in the order the OpenAPI document and metrics list them.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Unprocessable,
        ErrorKind::TooManyRequests,
        ErrorKind::Internal,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
    ];

    /// The `outcome` label of metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::TooManyRequests => "too_many_requests",
            ErrorKind::Internal => "internal",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
        }
    }

    /// The HTTP status code of this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unprocessable => 422,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The kind whose label is `label`.
    pub fn from_label(label: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.label() == label)
    }
}

/// An error as a client sees it: its kind and a message that names the field, the
/// expected and the given value. Internal errors carry no detail (that goes to the log).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// For [`ErrorKind::TooManyRequests`]: when to come back.
    pub retry_after: Option<Duration>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadRequest, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unprocessable, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unavailable, message)
    }

    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::PayloadTooLarge, message)
    }

    pub fn too_many(message: impl Into<String>, retry_after: Duration) -> Error {
        Error {
            retry_after: Some(retry_after),
            ..Error::new(ErrorKind::TooManyRequests, message)
        }
    }

    /// A server-side fault: the message is fixed, the detail belongs in the log.
    pub fn internal() -> Error {
        Error::new(ErrorKind::Internal, "internal error; see the server log")
    }
}

/// The result of every core call.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_statuses_are_unique() {
        let mut labels: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.label()).collect();
        let mut statuses: Vec<u16> = ErrorKind::ALL.iter().map(|k| k.status()).collect();
        labels.sort();
        labels.dedup();
        statuses.sort();
        statuses.dedup();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
        assert_eq!(statuses.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_label(k.label()), Some(k));
            assert!(k.status() >= 400 && k.status() < 600, "{k:?}");
        }
    }

    #[test]
    fn internal_errors_carry_no_detail() {
        let e = Error::internal();
        assert_eq!(e.to_string(), "internal error; see the server log");
        assert_eq!(e.kind.status(), 500);
    }
}

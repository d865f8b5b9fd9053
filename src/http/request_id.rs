//! `x-request-id`: taken from the client when it sends a sane one, generated otherwise,
//! echoed on the response, attached to the request's tracing span and to the log line
//! of a failed batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being handled (a request extension).
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// Longest client-supplied id kept; longer or odd ones are replaced.
const MAX_LEN: usize = 128;

/// Accepts ids of printable ASCII without spaces, up to [`MAX_LEN`].
pub fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A process-unique id: a per-process random prefix and a counter.
fn generate() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        t ^ std::process::id().rotate_left(16)
    });
    format!("{prefix:08x}-{:012x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub async fn layer(mut req: Request, next: Next) -> Response {
    let id: Arc<str> = match req.headers().get(&HEADER).and_then(|v| v.to_str().ok()) {
        Some(given) if acceptable(given) => given.into(),
        _ => generate().into(),
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(acceptable("abc-123_XYZ"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable(&"x".repeat(MAX_LEN + 1)));
        assert_ne!(generate(), generate());
    }
}

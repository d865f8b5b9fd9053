//! Optional bearer-token auth. Off unless keys are configured (`--api-key`, repeatable,
//! or `--api-key-file`, one per line). Then inference, model and admin routes need
//! `Authorization: Bearer <key>`: none → 401 (with `WWW-Authenticate: Bearer`), a wrong
//! one → 403. Health and metrics stay open unless `--auth-health` / `--auth-metrics`.
//! Keys are compared in constant time and never logged.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorKind};

/// A key, whose `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The auth policy of a server.
#[derive(Clone, Debug, Default)]
pub struct AuthPolicy {
    pub keys: Vec<Secret>,
    /// Require a key on `/v2/health/*` too (probes then need one).
    pub health: bool,
    /// Require a key on `/metrics` too.
    pub metrics: bool,
}

/// Which routes a request belongs to, for the policy.
fn is_open(policy: &AuthPolicy, path: &str) -> bool {
    if path.starts_with("/v2/health/") {
        return !policy.health;
    }
    if path == "/metrics" {
        return !policy.metrics;
    }
    // The API description and its UI carry no data.
    path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/")
}

/// Equal in time independent of where the strings differ (length leaks, content not).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// Checks `given` against every key (all compared, so timing does not say which).
pub fn key_matches(keys: &[Secret], given: &str) -> bool {
    keys.iter().fold(false, |found, k| {
        found | constant_time_eq(k.0.as_bytes(), given.as_bytes())
    })
}

/// Decides a request: `Ok` to go on, or the 401/403 to answer.
pub fn check(policy: &AuthPolicy, path: &str, authorization: Option<&str>) -> Result<(), Error> {
    if policy.keys.is_empty() || is_open(policy, path) {
        return Ok(());
    }
    let Some(token) = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            "authorization: this server needs an API key: send `Authorization: Bearer <key>`",
        ));
    };
    if key_matches(&policy.keys, token) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Forbidden,
            "authorization: the API key is not valid",
        ))
    }
}

pub async fn layer(State(policy): State<Arc<AuthPolicy>>, req: Request, next: Next) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match check(&policy, req.uri().path(), authorization) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Reads keys: the given ones plus a file's non-empty, non-`#` lines.
pub fn load_keys(given: &[String], file: Option<&std::path::Path>) -> Result<Vec<Secret>, String> {
    let mut keys: Vec<Secret> = given
        .iter()
        .filter(|k| !k.is_empty())
        .map(|k| Secret(k.clone()))
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--api-key-file {}: {e}", path.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| Secret(l.to_string())),
        );
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AuthPolicy {
        AuthPolicy {
            keys: vec![Secret("alpha-key".into()), Secret("beta-key".into())],
            health: false,
            metrics: false,
        }
    }

    #[test]
    fn missing_is_401_wrong_is_403_right_passes() {
        let p = policy();
        let path = "/v2/models/mlp/infer";
        assert_eq!(check(&p, path, None).unwrap_err().kind.status(), 401);
        assert_eq!(
            check(&p, path, Some("Basic abc"))
                .unwrap_err()
                .kind
                .status(),
            401
        );
        assert_eq!(
            check(&p, path, Some("Bearer nope"))
                .unwrap_err()
                .kind
                .status(),
            403
        );
        assert_eq!(
            check(&p, path, Some("Bearer alpha-ke"))
                .unwrap_err()
                .kind
                .status(),
            403
        );
        assert!(check(&p, path, Some("Bearer beta-key")).is_ok());
        assert!(check(&AuthPolicy::default(), path, None).is_ok());
    }

    #[test]
    fn health_and_metrics_are_open_unless_asked() {
        let mut p = policy();
        assert!(check(&p, "/v2/health/ready", None).is_ok());
        assert!(check(&p, "/metrics", None).is_ok());
        p.health = true;
        p.metrics = true;
        assert!(check(&p, "/v2/health/ready", None).is_err());
        assert!(check(&p, "/metrics", None).is_err());
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let shown = format!("{:?}", policy());
        assert!(!shown.contains("alpha") && shown.contains("***"), "{shown}");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        // Lengths differing by a multiple of 256 must not compare equal.
        assert!(!constant_time_eq(&[0u8; 256], b""));
    }
}

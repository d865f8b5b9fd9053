//! A request's deadline and priority level: what the door read, with the model's
//! defaults filling in the rest.

use std::time::Instant;

use crate::batching::BatchingConfig;
use crate::error::{Error, Result};

use super::request::Schedule;

/// The deadline (`None`: none) and priority level of `s` on a model batching as `cfg`.
pub fn resolve(s: &Schedule, cfg: &BatchingConfig) -> Result<(Option<Instant>, u32)> {
    let timeout = s.timeout.or(cfg.default_timeout);
    let priority = match s.priority {
        None | Some(0) => cfg.default_priority,
        Some(p) if p <= cfg.priority_levels as u64 => p as u32,
        Some(p) => {
            return Err(Error::unprocessable(format!(
                "parameters.priority: expected 0 (the model's default) or a level in 1..={} (1 = highest), got {p}",
                cfg.priority_levels
            )))
        }
    };
    // A timeout too large to add to the clock means no deadline.
    Ok((timeout.and_then(|t| s.arrived.checked_add(t)), priority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_model_fills_in_what_the_request_leaves_out() {
        let cfg = BatchingConfig {
            default_timeout: Some(Duration::from_millis(100)),
            priority_levels: 3,
            default_priority: 2,
            ..BatchingConfig::default()
        };
        let now = Instant::now();
        let mut s = Schedule::new(now, "r".into());
        assert_eq!(
            resolve(&s, &cfg).unwrap(),
            (Some(now + Duration::from_millis(100)), 2)
        );
        s.timeout = Some(Duration::from_micros(5));
        s.priority = Some(1);
        assert_eq!(
            resolve(&s, &cfg).unwrap(),
            (Some(now + Duration::from_micros(5)), 1)
        );
        s.priority = Some(4);
        let e = resolve(&s, &cfg).unwrap_err();
        assert!(e.message.contains("1..=3"), "{e}");
        s.priority = Some(0);
        s.timeout = Some(Duration::MAX);
        assert_eq!(resolve(&s, &cfg).unwrap(), (None, 2));
    }
}

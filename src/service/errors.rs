//! The lower layers' errors as the core's [`Error`]: their kinds decided here, once.

use crate::batching::SchedulerError;
use crate::error::{Error, ErrorKind};
use crate::pipeline::pool::JobPanicked;
use crate::pipeline::PipelineError;
use crate::repository::ControlError;

impl From<SchedulerError> for Error {
    fn from(e: SchedulerError) -> Error {
        match e {
            SchedulerError::QueueFull { retry_after, .. }
            | SchedulerError::BeyondTarget { retry_after, .. } => {
                Error::too_many(e.to_string(), retry_after)
            }
            SchedulerError::ShuttingDown { .. } => Error::unavailable(e.to_string()),
            SchedulerError::Expired { .. } => Error::new(ErrorKind::Timeout, e.to_string()),
            SchedulerError::Internal => Error::internal(),
        }
    }
}

impl From<PipelineError> for Error {
    fn from(e: PipelineError) -> Error {
        match e {
            PipelineError::Input(m) => Error::unprocessable(m),
            PipelineError::TooLarge(m) => Error::too_large(m),
        }
    }
}

impl From<JobPanicked> for Error {
    fn from(_: JobPanicked) -> Error {
        Error::internal()
    }
}

impl From<ControlError> for Error {
    fn from(e: ControlError) -> Error {
        match e {
            ControlError::NotFound(_) | ControlError::NotLoaded(_) => {
                Error::not_found(e.to_string())
            }
            ControlError::Invalid(_) | ControlError::Failed { .. } => {
                Error::unprocessable(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn scheduler_refusals_keep_their_retry_after() {
        let e: Error = SchedulerError::QueueFull {
            model: "m".into(),
            queued: 10,
            limit: 10,
            unit: "rows",
            retry_after: Duration::from_secs(3),
        }
        .into();
        assert_eq!(e.kind, ErrorKind::TooManyRequests);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        let e: Error = SchedulerError::Expired {
            model: "m".into(),
            waited_ms: 5,
        }
        .into();
        assert_eq!(e.kind, ErrorKind::Timeout);
    }
}

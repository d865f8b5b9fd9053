//! The bounded CPU pool pre- and post-processing run on: at most `threads` jobs at once
//! on tokio's blocking threads, so tokenizing or decoding never blocks the async
//! runtime nor a device worker, and a burst of images cannot start 500 threads.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// A job panicked: a bug, answered 500 (the detail is in the log).
#[derive(Debug, thiserror::Error)]
#[error("a pre/post-processing job panicked")]
pub struct JobPanicked;

#[derive(Clone)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
}

impl CpuPool {
    pub fn new(threads: usize) -> CpuPool {
        CpuPool {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `job` on the pool once a slot is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, JobPanicked>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _slot = self.permits.acquire().await.map_err(|_| JobPanicked)?;
        tokio::task::spawn_blocking(job).await.map_err(|e| {
            tracing::error!(error = %e, "pipeline job failed");
            JobPanicked
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_n_jobs_run_at_once_and_panics_are_contained() {
        let pool = CpuPool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            jobs.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap()
            }));
        }
        for j in jobs {
            j.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert!(pool.run(|| panic!("boom")).await.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}

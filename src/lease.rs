//! Leases that outlive a slow call but not a dead process: the holder renews its lease while
//! its work runs, so a lease can be short (a killed worker's claim runs out in seconds) and
//! still never expire under a live holder whose vendor call takes minutes.

use std::future::Future;
use std::time::Duration;

/// Runs `work` to its end, calling `renew` every `every` while it runs.
pub async fn renewing<T, R, Fut>(work: impl Future<Output = T>, every: Duration, mut renew: R) -> T
where
    R: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(every) => renew().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_renewed_while_the_work_runs_and_not_after() {
        let renewals = Arc::new(AtomicUsize::new(0));
        let counted = renewals.clone();
        let out = renewing(
            async {
                tokio::time::sleep(Duration::from_secs(12)).await;
                7
            },
            Duration::from_secs(5),
            move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            },
        )
        .await;
        assert_eq!(out, 7);
        assert_eq!(renewals.load(Ordering::SeqCst), 2, "at 5 s and 10 s");
    }
}

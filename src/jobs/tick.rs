//! The worker's polling clock.
//!
//! apalis 1.0's `IntervalStrategy` replaces its timer when it fires without polling the new one,
//! so when the fetch that follows finds nothing and completes at once, no waker is armed and the
//! worker sleeps forever (seen here on PostgreSQL about one run in six; apalis-sqlite #58 looks
//! like the same loss). This strategy always leaves a timer armed before it returns.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use tokio::time::{Instant, Sleep};

pub struct Tick {
    every: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl Tick {
    pub fn every(every: Duration) -> Self {
        Self {
            every,
            sleep: Box::pin(tokio::time::sleep(every)),
        }
    }
}

impl PollStrategy for Tick {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        // Re-arm until the timer is pending: that poll is what registers `cx`'s waker.
        while self.sleep.as_mut().poll(cx).is_ready() {
            fired = true;
            let next = Instant::now() + self.every;
            self.sleep.as_mut().reset(next);
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// After every tick the next one is armed: the waker fires again without anyone polling
    /// in between, which is exactly what apalis's own interval strategy fails to do.
    #[tokio::test(start_paused = true)]
    async fn a_tick_always_arms_the_next_one() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut tick = Tick::every(Duration::from_millis(100));
        let snapshot = PollSnapshot::default();

        assert!(tick.poll_drive(&mut cx, &snapshot).is_pending());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(tick.poll_drive(&mut cx, &snapshot).is_ready());

        // Not polled again: the armed timer must still wake us.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }
}

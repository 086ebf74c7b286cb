//! The worker's polling clock.
//!
//! apalis 1.0's `IntervalStrategy` replaces its timer when it fires without polling the new one,
//! so when the fetch that follows finds nothing and completes at once, no waker is armed and the
//! worker sleeps forever (seen here on PostgreSQL about one run in six; apalis-sqlite #58 looks
//! like the same loss). This strategy always leaves a timer armed before it returns.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use tokio::time::{Instant, Sleep};

/// Wakes this process's worker now instead of at its next tick: work was just committed
/// (an ingress batch, a job's follow-ups). Other processes still find it on their tick.
#[derive(Debug, Default)]
pub struct WakeSignal {
    pending: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl WakeSignal {
    pub fn wake(&self) {
        self.pending.store(true, Ordering::SeqCst);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn take(&self, cx: &Context<'_>) -> bool {
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        self.pending.swap(false, Ordering::SeqCst)
    }
}

pub struct Tick {
    every: Duration,
    sleep: Pin<Box<Sleep>>,
    wake: Option<Arc<WakeSignal>>,
}

impl Tick {
    pub fn every(every: Duration) -> Self {
        Self {
            every,
            sleep: Box::pin(tokio::time::sleep(every)),
            wake: None,
        }
    }

    /// Also polls as soon as `signal` is woken.
    pub fn woken_by(mut self, signal: Arc<WakeSignal>) -> Self {
        self.wake = Some(signal);
        self
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
        let woken = self.wake.as_ref().is_some_and(|w| w.take(cx));
        if fired || woken {
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
    async fn a_wake_polls_at_once() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let signal = Arc::new(WakeSignal::default());
        let mut tick = Tick::every(Duration::from_secs(60)).woken_by(signal.clone());
        let snapshot = PollSnapshot::default();
        assert!(tick.poll_drive(&mut cx, &snapshot).is_pending());
        signal.wake();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "the worker's waker was called"
        );
        assert!(tick.poll_drive(&mut cx, &snapshot).is_ready());
        assert!(
            tick.poll_drive(&mut cx, &snapshot).is_pending(),
            "one wake, one poll"
        );
    }

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

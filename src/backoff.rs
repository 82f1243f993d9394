//! Waiting between tries: the one backoff of every retry loop in relgate. GitHub API requests
//! (`github::retry`, doubling up to a cap, unless the server names the wait), Prometheus
//! queries (`evidence::slo`, doubling), and ledger appends that lose a race to another writer
//! (`record::ledger`: linear steps with jitter, so racing writers do not retry in lockstep;
//! [`Backoff::linear`] with [`Backoff::with_jitter`] is that schedule).
//!
//! Only the delay is computed here: each caller keeps its own rule for what is worth another
//! try and its own deadline, because those are what differ (a 403 that is a rate limit, a 5xx
//! from Prometheus, a compare-and-swap that found another head).

use std::time::Duration;

/// How the delay grows with the number of failed tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Growth {
    /// `first`, `2 first`, `4 first`, …
    Doubling,
    /// `first`, `2 first`, `3 first`, …
    Linear,
}

/// A backoff schedule: the delay before try `n + 1` after `n` failed tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// The delay after the first failed try.
    pub(crate) first: Duration,
    pub(crate) growth: Growth,
    /// The largest delay the schedule picks (before jitter).
    pub(crate) max: Duration,
    /// A random extra delay below this, added to each delay (zero: none).
    pub(crate) jitter: Duration,
}

impl Backoff {
    /// `first`, doubled after each further failed try, at most `max`.
    pub(crate) const fn doubling(first: Duration, max: Duration) -> Self {
        Self {
            first,
            growth: Growth::Doubling,
            max,
            jitter: Duration::ZERO,
        }
    }

    /// `first` times the number of failed tries, at most `max`.
    pub(crate) const fn linear(first: Duration, max: Duration) -> Self {
        Self {
            first,
            growth: Growth::Linear,
            max,
            jitter: Duration::ZERO,
        }
    }

    /// The same schedule with a random extra delay in `[0, jitter)` on each wait.
    pub(crate) const fn with_jitter(self, jitter: Duration) -> Self {
        Self { jitter, ..self }
    }

    /// The delay before the next try after `failed` failed tries (0 counts as 1), without
    /// jitter: deterministic, for deadlines and tests.
    pub(crate) fn base_delay(&self, failed: u32) -> Duration {
        let failed = failed.max(1);
        let grown = match self.growth {
            // 2^(failed-1), saturating: a shift of 32 or more is u32::MAX, capped by `max`.
            Growth::Doubling => self
                .first
                .saturating_mul(1u32.checked_shl(failed - 1).unwrap_or(u32::MAX)),
            Growth::Linear => self.first.saturating_mul(failed),
        };
        grown.min(self.max)
    }

    /// The delay before the next try after `failed` failed tries, jitter included.
    pub(crate) fn delay(&self, failed: u32) -> Duration {
        self.base_delay(failed).saturating_add(self.jitter_sample())
    }

    /// A random duration in `[0, jitter)`; zero when there is no jitter or no randomness (the
    /// schedule still holds, only without spread).
    fn jitter_sample(&self) -> Duration {
        let micros = u64::try_from(self.jitter.as_micros()).unwrap_or(u64::MAX);
        if micros == 0 {
            return Duration::ZERO;
        }
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            return Duration::ZERO;
        }
        Duration::from_micros(u64::from_le_bytes(bytes) % micros)
    }

    /// Sleeps for [`Backoff::delay`] (blocking; async callers sleep on their runtime).
    pub(crate) fn sleep(&self, failed: u32) {
        std::thread::sleep(self.delay(failed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubling_is_capped_and_saturates() {
        let b = Backoff::doubling(100 * MS, 1000 * MS);
        let delays: Vec<u128> = (0..=6).map(|n| b.base_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 100, 200, 400, 800, 1000, 1000]);
        // Shifts past the width of u32 and huge products saturate into the cap.
        assert_eq!(b.base_delay(40), 1000 * MS);
        assert_eq!(b.base_delay(u32::MAX), 1000 * MS);
        let uncapped = Backoff::doubling(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(uncapped.base_delay(40), Duration::MAX);
        assert_eq!(b.delay(3), b.base_delay(3), "no jitter asked for");
    }

    #[test]
    fn linear_steps_with_jitter_stay_in_their_window() {
        let step = Duration::from_micros(500);
        let b = Backoff::linear(step, 20 * step).with_jitter(Duration::from_micros(2000));
        assert_eq!(b.base_delay(3), 3 * step);
        assert_eq!(b.base_delay(25), 20 * step);
        for failed in [1, 7, 30] {
            let base = b.base_delay(failed);
            for _ in 0..50 {
                let d = b.delay(failed);
                assert!(d >= base && d < base + Duration::from_micros(2000), "{d:?}");
            }
        }
    }
}

//! The inline circuit breaker: a token bucket reduced with every event, so it
//! is exact across rebuilds (docs/protocol.md#circuit-breaker). Time comes from each event's `createdAt`.

use serde::{Deserialize, Serialize};

/// `S/configured`'s `config.circuitBreaker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerConfig {
    pub burst_capacity: f64,
    pub refill_rate_per_minute: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BreakerState {
    pub available_tokens: f64,
    pub last_refill_at_ms: Option<f64>,
    pub burst_capacity: f64,
    pub refill_rate_per_minute: f64,
}

/// Defaults: burst 100000, 100 tokens per ms: effectively off.
impl Default for BreakerState {
    fn default() -> Self {
        Self {
            available_tokens: 100_000.0,
            last_refill_at_ms: None,
            burst_capacity: 100_000.0,
            refill_rate_per_minute: 6_000_000.0,
        }
    }
}

/// How an event acts on the bucket (docs/protocol.md#rules).
#[derive(Debug, Clone, PartialEq)]
pub enum BreakerEffect<'a> {
    /// `S/configured`: adopt the config if present, then refill.
    Configure(Option<&'a BreakerConfig>),
    /// `S/paused`, `S/resumed`: refill, no spend.
    Refill,
    /// `S/woken`: nothing.
    Free,
    /// Everything else spends one token.
    Spend,
}

impl BreakerState {
    pub fn apply(&mut self, effect: BreakerEffect<'_>, t: f64) {
        match effect {
            BreakerEffect::Configure(config) => {
                if let Some(config) = config {
                    self.burst_capacity = config.burst_capacity;
                    self.refill_rate_per_minute = config.refill_rate_per_minute;
                }
                self.refill(t);
            }
            BreakerEffect::Refill => self.refill(t),
            BreakerEffect::Free => {}
            BreakerEffect::Spend => self.spend(t),
        }
    }

    fn refill(&mut self, t: f64) {
        self.available_tokens = self.burst_capacity;
        self.last_refill_at_ms = Some(t);
    }

    fn spend(&mut self, t: f64) {
        let refilled = match self.last_refill_at_ms {
            None => self.burst_capacity,
            Some(last) => {
                // Clamp: a clock regression never drains the bucket.
                let elapsed = (t - last).max(0.0);
                self.burst_capacity.min(self.available_tokens + elapsed * self.refill_rate_per_minute / 60_000.0)
            }
        };
        // Every spend takes a whole token, even from a bucket already in deficit.
        self.available_tokens = refilled - 1.0;
        self.last_refill_at_ms = Some(t);
    }

    /// Below zero after an event; exactly zero is not a deficit.
    pub fn in_deficit(&self) -> bool {
        self.available_tokens < 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(tokens: f64, last: Option<f64>, burst: f64, rate: f64) -> BreakerState {
        BreakerState { available_tokens: tokens, last_refill_at_ms: last, burst_capacity: burst, refill_rate_per_minute: rate }
    }

    #[test]
    fn a_clock_regression_never_drains_the_bucket() {
        let mut b = bucket(5.0, Some(10_000.0), 100_000.0, 6_000_000.0);
        b.apply(BreakerEffect::Spend, 9000.0);
        assert_eq!(b.available_tokens, 4.0);
        assert_eq!(b.last_refill_at_ms, Some(9000.0));
    }

    #[test]
    fn a_fresh_bucket_starts_full_then_goes_into_deficit() {
        let noon = 1_767_614_400_000.0;
        let mut b = bucket(1.0, None, 1.0, 60.0);
        b.apply(BreakerEffect::Spend, noon);
        assert_eq!(b.available_tokens, 0.0);
        assert!(!b.in_deficit());
        b.apply(BreakerEffect::Spend, noon + 500.0);
        assert!((b.available_tokens - -0.5).abs() < 1e-9);
        assert!(b.in_deficit());
    }

    #[test]
    fn every_spend_takes_a_whole_token_even_below_zero() {
        let mut b = BreakerState::default();
        let config = BreakerConfig { burst_capacity: 1.0, refill_rate_per_minute: 1.0 };
        b.apply(BreakerEffect::Configure(Some(&config)), 1000.0);
        assert_eq!(b.available_tokens, 1.0);
        let want = [0.0, -0.983_333_333_333, -1.966_666_666_667, -2.95, -3.933_333_333_333];
        for (i, w) in want.iter().enumerate() {
            b.apply(BreakerEffect::Spend, 2000.0 + 1000.0 * i as f64);
            assert!((b.available_tokens - w).abs() < 1e-9, "{i}: {}", b.available_tokens);
        }
    }

    #[test]
    fn woken_is_free_and_pause_refills() {
        let mut b = bucket(-0.5, Some(0.0), 2.0, 60.0);
        b.apply(BreakerEffect::Free, 5000.0);
        assert_eq!(b, bucket(-0.5, Some(0.0), 2.0, 60.0));
        b.apply(BreakerEffect::Refill, 6000.0);
        assert_eq!(b, bucket(2.0, Some(6000.0), 2.0, 60.0));
    }
}

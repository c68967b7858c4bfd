//! Failed token checks, limited per token, so that a flood of wrong
//! secrets for one token costs neither the Argon2 work nor an audit row
//! each.
//!
//! Within a window of [`WINDOW`], the first [`FREE`] failed checks of a
//! token are checked and audited as usual; later attempts with a secret
//! this process has not verified are refused outright, and counted. The
//! next attempt after the window writes one audit entry with that count.
//! A secret the process has already verified still gets in (it needs no
//! Argon2 work), so a burst against a token does not lock its holder out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a burst lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed checks of one token a window allows before refusing outright.
pub const FREE: u32 = 5;
/// Most tokens tracked; beyond it the memory starts over.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
struct Burst {
    started: Instant,
    failures: u32,
    refused: u32,
}

/// What to do with one attempt.
#[derive(Debug, PartialEq, Eq)]
pub struct Admission {
    /// Whether the secret may be checked.
    pub check: bool,
    /// Attempts refused unchecked in the burst that just ended, to audit
    /// once.
    pub ended_burst: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Throttle {
    bursts: Mutex<HashMap<String, Burst>>,
}

impl Throttle {
    /// Whether an attempt on token `id` may be checked now, at `now`.
    pub fn admit(&self, id: &str, now: Instant) -> Admission {
        let Ok(mut bursts) = self.bursts.lock() else {
            return Admission {
                check: true,
                ended_burst: None,
            };
        };
        let mut ended_burst = None;
        if let Some(b) = bursts.get(id)
            && now.duration_since(b.started) >= WINDOW
        {
            ended_burst = (b.refused > 0).then_some(b.refused);
            bursts.remove(id);
        }
        let check = match bursts.get_mut(id) {
            Some(b) if b.failures >= FREE => {
                b.refused += 1;
                false
            }
            _ => true,
        };
        Admission { check, ended_burst }
    }

    /// Records a failed check of token `id` at `now`.
    pub fn failed(&self, id: &str, now: Instant) {
        if let Ok(mut bursts) = self.bursts.lock() {
            if bursts.len() >= MAX_TRACKED && !bursts.contains_key(id) {
                bursts.clear();
            }
            bursts
                .entry(id.to_string())
                .or_insert(Burst {
                    started: now,
                    failures: 0,
                    refused: 0,
                })
                .failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_checked_five_times_then_counted_and_reported_once() {
        let t = Throttle::default();
        let start = Instant::now();
        for _ in 0..FREE {
            assert!(t.admit("a", start).check);
            t.failed("a", start);
        }
        for _ in 0..100 {
            assert!(!t.admit("a", start).check);
        }
        // Other tokens are not affected.
        assert!(t.admit("b", start).check);
        let later = start + WINDOW;
        assert_eq!(
            t.admit("a", later),
            Admission {
                check: true,
                ended_burst: Some(100)
            }
        );
        assert_eq!(t.admit("a", later).ended_burst, None);
    }
}

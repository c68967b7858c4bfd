//! Failed token checks, limited per principal and per source, so that a
//! flood of wrong tokens costs neither the Argon2 work nor an audit row
//! each.
//!
//! Within a window of [`WINDOW`], the first [`FREE_PER_PRINCIPAL`] failed
//! checks of a principal's tokens, and the first [`FREE_PER_SOURCE`]
//! failed attempts from one source address (any token, well-formed or
//! not), are checked and audited as usual. Later attempts with a secret
//! this process has not verified are refused outright, and counted. The
//! next attempt after the window writes one audit entry with that count.
//! A secret the process has already verified still gets in (it needs no
//! Argon2 work), so a burst does not lock a token's holder out.
//!
//! A source is an IPv4 address, or an IPv6 address's /64 network (one
//! host is commonly given a whole /64).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a burst lasts.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed checks of one principal's tokens a window allows before
/// refusing outright.
pub const FREE_PER_PRINCIPAL: u32 = 5;
/// Failed attempts from one source a window allows before refusing
/// outright: a few clients behind one address may each get a token wrong.
pub const FREE_PER_SOURCE: u32 = 20;
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

/// Both limits.
#[derive(Debug)]
pub struct Throttles {
    pub principals: Throttle,
    pub sources: Throttle,
}

impl Default for Throttles {
    fn default() -> Self {
        Throttles {
            principals: Throttle::new(FREE_PER_PRINCIPAL),
            sources: Throttle::new(FREE_PER_SOURCE),
        }
    }
}

/// The key a source address is limited by.
pub fn source_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// Failed attempts by key (a principal, a source).
#[derive(Debug)]
pub struct Throttle {
    free: u32,
    bursts: Mutex<HashMap<String, Burst>>,
}

impl Throttle {
    /// A throttle allowing `free` failed checks per key and window.
    pub fn new(free: u32) -> Self {
        Throttle {
            free,
            bursts: Mutex::default(),
        }
    }

    /// Whether an attempt on `id` may be checked now, at `now`.
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
            Some(b) if b.failures >= self.free => {
                b.refused += 1;
                false
            }
            _ => true,
        };
        Admission { check, ended_burst }
    }

    /// Records a failed check of `id` at `now`.
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
        let t = Throttle::new(FREE_PER_PRINCIPAL);
        let start = Instant::now();
        for _ in 0..FREE_PER_PRINCIPAL {
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

    #[test]
    fn an_ipv6_source_is_its_64_network_and_a_mapped_ipv4_is_the_ipv4() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_eq!(source_key(a), "2001:db8:1:2::/64");
        let mapped: std::net::IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(source_key(mapped), "10.0.0.7");
    }
}

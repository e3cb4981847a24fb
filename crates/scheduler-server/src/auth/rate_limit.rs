//! Limits on failed client authentications at the token endpoint: per client id and per peer
//! address, in fixed windows, in bounded memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;

/// How many failed client authentications are tolerated before the token endpoint answers
/// `429 Too Many Requests`.
///
/// Failures are counted per client id and per peer address, each in a fixed window that
/// starts at its first failure. While either count has reached `max_failures`, requests for
/// that client id or from that address are refused (even with the right key) until the
/// window ends. Successes do not reset the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Failures allowed per window (default 10).
    pub max_failures: u32,
    /// Window length (default 60 s).
    pub window: Duration,
    /// Most client ids (and, separately, addresses) remembered at once (default 10,000).
    /// When full, expired windows are dropped first, then the oldest.
    pub max_entries: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::from_secs(60),
            max_entries: 10_000,
        }
    }
}

/// Longest client id kept as a key (longer ones are cut, so entries stay small).
const MAX_KEY_LEN: usize = 128;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    count: u32,
}

/// Failure counters per client id and per peer address.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    config: RateLimitConfig,
    by_client: HashMap<String, Window>,
    by_peer: HashMap<IpAddr, Window>,
}

impl FailureLimiter {
    pub(crate) fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            by_client: HashMap::new(),
            by_peer: HashMap::new(),
        }
    }

    /// `Err(retry_after)` if the client id or the peer is over its limit at `now`.
    pub(crate) fn check(
        &self,
        client: Option<&str>,
        peer: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), Duration> {
        let mut wait: Option<Duration> = None;
        if let Some(w) = client.and_then(|c| self.by_client.get(clip(c))) {
            wait = wait.max(self.blocked_for(w, now));
        }
        if let Some(w) = peer.and_then(|p| self.by_peer.get(&p)) {
            wait = wait.max(self.blocked_for(w, now));
        }
        match wait {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    /// Counts one failed authentication.
    pub(crate) fn record_failure(
        &mut self,
        client: Option<&str>,
        peer: Option<IpAddr>,
        now: Timestamp,
    ) {
        let window = self.config.window;
        let max = self.config.max_entries;
        if let Some(c) = client {
            bump(&mut self.by_client, clip(c).to_owned(), now, window, max);
        }
        if let Some(p) = peer {
            bump(&mut self.by_peer, p, now, window, max);
        }
    }

    /// Entries held (client ids, addresses).
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.by_client.len(), self.by_peer.len())
    }

    fn blocked_for(&self, w: &Window, now: Timestamp) -> Option<Duration> {
        if w.count < self.config.max_failures {
            return None;
        }
        remaining(w, now, self.config.window)
    }
}

/// Time left in the window, `None` if it is over.
fn remaining(w: &Window, now: Timestamp, window: Duration) -> Option<Duration> {
    let elapsed = now.duration_since(w.start);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    window.checked_sub(elapsed).filter(|d| !d.is_zero())
}

fn bump<K: Hash + Eq + Clone>(
    map: &mut HashMap<K, Window>,
    key: K,
    now: Timestamp,
    window: Duration,
    max_entries: usize,
) {
    if let Some(w) = map.get_mut(&key) {
        if remaining(w, now, window).is_some() {
            w.count = w.count.saturating_add(1);
        } else {
            *w = Window {
                start: now,
                count: 1,
            };
        }
        return;
    }
    if map.len() >= max_entries.max(1) {
        map.retain(|_, w| remaining(w, now, window).is_some());
    }
    if map.len() >= max_entries.max(1) {
        let oldest = map
            .iter()
            .min_by_key(|(_, w)| w.start)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
    map.insert(
        key,
        Window {
            start: now,
            count: 1,
        },
    );
}

fn clip(s: &str) -> &str {
    if s.len() <= MAX_KEY_LEN {
        return s;
    }
    let mut end = MAX_KEY_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("time")
    }

    #[test]
    fn blocks_after_max_and_recovers_after_window() {
        let mut l = FailureLimiter::new(RateLimitConfig::default());
        let peer: IpAddr = [10, 0, 0, 1].into();
        for i in 0..10 {
            assert!(l.check(Some("c"), Some(peer), at(i)).is_ok());
            l.record_failure(Some("c"), Some(peer), at(i));
        }
        assert_eq!(
            l.check(Some("c"), None, at(10)),
            Err(Duration::from_secs(50))
        );
        assert!(l.check(Some("other"), Some(peer), at(10)).is_err());
        assert!(l.check(Some("other"), None, at(10)).is_ok());
        assert!(l.check(Some("c"), Some(peer), at(60)).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let config = RateLimitConfig {
            max_entries: 4,
            ..RateLimitConfig::default()
        };
        let mut l = FailureLimiter::new(config);
        for i in 0..100u8 {
            l.record_failure(
                Some(&format!("client-{i}")),
                Some([10, 0, 0, i].into()),
                at(i64::from(i)),
            );
        }
        assert_eq!(l.len(), (4, 4));
        // The newest entries are kept.
        l.record_failure(Some("client-99"), None, at(100));
        assert_eq!(l.by_client.get("client-99").map(|w| w.count), Some(2));
    }

    #[test]
    fn long_ids_are_clipped() {
        let mut l = FailureLimiter::new(RateLimitConfig::default());
        let long = "é".repeat(500);
        l.record_failure(Some(&long), None, at(0));
        assert!(l.by_client.keys().all(|k| k.len() <= MAX_KEY_LEN));
    }
}

//! The embedded nonce cache: remembers each nonce for a fixed time, bounded in size.
//! Every entry lives equally long, so insertion order is expiry order and a queue is
//! enough; when full of live entries it refuses rather than forgets (forgetting a live
//! nonce would let it be replayed).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// What claiming a nonce found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: now remembered.
    Fresh,
    /// Seen within the window.
    Replayed,
    /// Capacity reached with live entries; nothing remembered.
    Full,
}

/// A set of strings, each forgotten `ttl` after it was added.
#[derive(Debug)]
pub struct NonceWindow {
    ttl: u64,
    capacity: usize,
    live: HashSet<Arc<str>>,
    queue: VecDeque<(u64, Arc<str>)>,
}

impl NonceWindow {
    /// A window remembering entries for `ttl` units of `now`, at most `capacity` at once.
    pub fn new(ttl: u64, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            live: HashSet::new(),
            queue: VecDeque::new(),
        }
    }

    /// Claims `key` at time `now` (monotonic, in the unit of `ttl`).
    pub fn claim(&mut self, key: &str, now: u64) -> Claim {
        while let Some((expires, old)) = self.queue.front() {
            if *expires > now {
                break;
            }
            self.live.remove(old);
            self.queue.pop_front();
        }
        if self.live.contains(key) {
            return Claim::Replayed;
        }
        if self.live.len() >= self.capacity {
            return Claim::Full;
        }
        let key: Arc<str> = Arc::from(key);
        self.live.insert(key.clone());
        self.queue.push_back((now.saturating_add(self.ttl), key));
        Claim::Fresh
    }

    /// Entries remembered now (expired ones leave on the next claim).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_within_the_window_and_again_after_it() {
        let mut w = NonceWindow::new(600, 10);
        assert_eq!(w.claim("worker:n1", 0), Claim::Fresh);
        assert_eq!(w.claim("worker:n1", 599), Claim::Replayed);
        assert_eq!(w.claim("batch:n1", 599), Claim::Fresh);
        assert_eq!(w.claim("worker:n1", 600), Claim::Fresh);
    }

    #[test]
    fn a_full_window_refuses_instead_of_forgetting_live_nonces() {
        let mut w = NonceWindow::new(10, 2);
        assert_eq!(w.claim("a", 0), Claim::Fresh);
        assert_eq!(w.claim("b", 1), Claim::Fresh);
        assert_eq!(w.claim("c", 2), Claim::Full);
        assert_eq!(w.claim("a", 2), Claim::Replayed);
        assert_eq!(w.len(), 2);
        // Once the first entry expires there is room again.
        assert_eq!(w.claim("c", 10), Claim::Fresh);
        assert_eq!(w.claim("b", 10), Claim::Replayed);
        assert_eq!(w.len(), 2);
    }
}

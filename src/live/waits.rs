//! Frames handed out that may still meet their `tcp_receive_reset` event.
//!
//! On loopback every reset is sent and received in the watched namespace, so every frame
//! waits the grace period for a receive event, which often never comes (nobody held the other
//! end: a reset to a closed port, to a raw socket). Under a reset flood that is hundreds of
//! thousands of frames a second, each waiting about 300 ms: what is kept per frame is only
//! what finds it again (its addresses and its deadline), in arrival order. The index by
//! address pair (frames with the same pair chained in arrival order) is built only when a
//! receive event looks for a frame, for the frames that came since it was last built: a flood
//! that no socket takes never pays for it.

use std::net::SocketAddr;

use rustc_hash::FxHashMap as HashMap;

use super::slab::Slab;

/// Names a frame handed out before its receive event could come.
pub type Ticket = u64;

struct Wait {
    key: u64,
    src: SocketAddr,
    dst: SocketAddr,
    deadline: u64,
    /// The next (newer) wait under the same key.
    next: Option<Ticket>,
}

/// The waiting frames.
pub(super) struct ReceiveWaits {
    slab: Slab<Wait>,
    /// Key -> its oldest wait, for the waits before `indexed`.
    first: HashMap<u64, Ticket>,
    /// Waits from this ticket on are not in `first` yet.
    indexed: Ticket,
}

impl ReceiveWaits {
    pub(super) fn new() -> Self {
        Self {
            slab: Slab::new(),
            first: HashMap::default(),
            indexed: 0,
        }
    }

    /// A frame from `src` to `dst` (its key made from them) waits until `deadline`.
    pub(super) fn push(
        &mut self,
        key: u64,
        src: SocketAddr,
        dst: SocketAddr,
        deadline: u64,
    ) -> Ticket {
        self.slab.push(Wait {
            key,
            src,
            dst,
            deadline,
            next: None,
        })
    }

    /// Put the waits that came since the last call in the index.
    fn index_new(&mut self) {
        let end = self.slab.next_id();
        for t in self.indexed.max(self.slab.front_id())..end {
            let Some(key) = self.slab.get(t).map(|w| w.key) else {
                continue;
            };
            match self.first.entry(key) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(t);
                }
                std::collections::hash_map::Entry::Occupied(o) => {
                    let mut at = *o.get();
                    while let Some(next) = self.slab.get(at).and_then(|w| w.next) {
                        at = next;
                    }
                    if let Some(w) = self.slab.get_mut(at) {
                        w.next = Some(t);
                    }
                }
            }
        }
        self.indexed = end;
    }

    /// The oldest wait under `key` whose addresses `matches` accepts, with its deadline.
    pub(super) fn find(
        &mut self,
        key: u64,
        matches: impl Fn(SocketAddr, SocketAddr) -> bool,
    ) -> Option<(Ticket, u64)> {
        if self.slab.live == 0 {
            return None;
        }
        self.index_new();
        let mut at = self.first.get(&key).copied();
        while let Some(t) = at {
            let w = self.slab.get(t)?;
            if matches(w.src, w.dst) {
                return Some((t, w.deadline));
            }
            at = w.next;
        }
        None
    }

    /// Take wait `t` out (it met its event).
    pub(super) fn take(&mut self, t: Ticket) {
        if let Some(w) = self.slab.take(t) {
            self.unchain(w.key, t, w.next);
        }
    }

    /// The next wait whose deadline is past `now`, taken out.
    pub(super) fn pop_expired(&mut self, now: u64) -> Option<Ticket> {
        loop {
            match self.slab.front()? {
                Some(w) if w.deadline > now => return None,
                _ => {}
            }
            if let Some((t, Some(w))) = self.slab.pop_front() {
                self.unchain(w.key, t, w.next);
                return Some(t);
            }
        }
    }

    /// Waits left.
    pub(super) fn len(&self) -> usize {
        self.slab.live
    }

    /// Unlink `t` (already out of the slab; `next` was its successor) from its key's chain.
    fn unchain(&mut self, key: u64, t: Ticket, next: Option<Ticket>) {
        if t >= self.indexed {
            return;
        }
        let Some(&head) = self.first.get(&key) else {
            return;
        };
        if head == t {
            match next {
                Some(n) => {
                    self.first.insert(key, n);
                }
                None => {
                    self.first.remove(&key);
                }
            }
            return;
        }
        let mut at = head;
        while let Some(w) = self.slab.get_mut(at) {
            if w.next == Some(t) {
                w.next = next;
                return;
            }
            match w.next {
                Some(n) => at = n,
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn waits_under_one_key_are_found_oldest_first_and_unchained_in_any_order() {
        let mut w = ReceiveWaits::new();
        let (x, y, z) = (a("127.0.0.1:1"), a("127.0.0.1:2"), a("127.0.0.1:3"));
        // Three frames under one key (two of the same pair), one under another.
        let t0 = w.push(7, x, y, 100);
        let t1 = w.push(7, x, z, 110);
        let t2 = w.push(7, x, y, 120);
        let t3 = w.push(8, y, x, 130);
        let same = |s, d| move |a, b| a == s && b == d;
        assert_eq!(w.find(7, same(x, y)), Some((t0, 100)));
        assert_eq!(w.find(7, same(x, z)), Some((t1, 110)));
        assert_eq!(w.find(8, same(y, x)), Some((t3, 130)));
        assert_eq!(w.find(8, same(x, y)), None);
        // Out of the middle of the chain, then its head.
        w.take(t1);
        assert_eq!(w.find(7, same(x, z)), None);
        w.take(t0);
        assert_eq!(w.find(7, same(x, y)), Some((t2, 120)));
        assert_eq!(w.len(), 2);
        // Expiry in deadline order, and nothing before its deadline.
        assert_eq!(w.pop_expired(119), None);
        assert_eq!(w.pop_expired(125), Some(t2));
        assert_eq!(w.find(7, same(x, y)), None);
        assert_eq!(w.pop_expired(1000), Some(t3));
        assert_eq!(w.pop_expired(1000), None);
        assert_eq!(w.len(), 0);
        assert!(w.first.is_empty(), "no key left behind");
    }

    #[test]
    fn the_index_is_built_only_when_a_wait_is_looked_for() {
        let mut w = ReceiveWaits::new();
        let (x, y) = (a("127.0.0.1:1"), a("127.0.0.1:2"));
        let t0 = w.push(7, x, y, 100);
        let t1 = w.push(7, x, y, 110);
        assert!(w.first.is_empty(), "pushing indexes nothing");
        // Expired before anything looked: nothing to unchain.
        assert_eq!(w.pop_expired(105), Some(t0));
        let t2 = w.push(7, x, y, 120);
        assert_eq!(w.find(7, |s, d| s == x && d == y), Some((t1, 110)));
        assert_eq!(w.first.get(&7), Some(&t1));
        w.take(t1);
        assert_eq!(w.find(7, |s, d| s == x && d == y), Some((t2, 120)));
        // A wait pushed after the index was built is found too.
        let t3 = w.push(7, x, y, 130);
        w.take(t2);
        assert_eq!(w.find(7, |s, d| s == x && d == y), Some((t3, 130)));
        assert_eq!(w.pop_expired(1000), Some(t3));
        assert!(w.first.is_empty());
    }
}

//! Entries kept in arrival order under increasing ids, for the matcher.

use std::collections::VecDeque;

/// Entries in arrival order under increasing ids: found by id with arithmetic (no hashing), and
/// released from the front when their grace period ends (deadlines grow with the ids).
pub(super) struct Slab<T> {
    /// Id of the front entry.
    base: u64,
    items: VecDeque<Option<T>>,
    pub(super) live: usize,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Self {
            base: 0,
            items: VecDeque::new(),
            live: 0,
        }
    }

    pub(super) fn push(&mut self, t: T) -> u64 {
        self.items.push_back(Some(t));
        self.live += 1;
        self.base + self.items.len() as u64 - 1
    }

    /// The id the next entry will get.
    pub(super) fn next_id(&self) -> u64 {
        self.base + self.items.len() as u64
    }

    /// The id of the front entry (taken or not).
    pub(super) fn front_id(&self) -> u64 {
        self.base
    }

    pub(super) fn slot(&self, id: u64) -> Option<usize> {
        id.checked_sub(self.base).map(|i| i as usize)
    }

    pub(super) fn get(&self, id: u64) -> Option<&T> {
        self.items.get(self.slot(id)?)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let i = self.slot(id)?;
        self.items.get_mut(i)?.as_mut()
    }

    /// Take entry `id` out. Taken entries at the front are dropped at once, so that the
    /// front is the oldest entry still there.
    pub(super) fn take(&mut self, id: u64) -> Option<T> {
        let i = self.slot(id)?;
        let t = self.items.get_mut(i)?.take();
        if t.is_some() {
            self.live -= 1;
        }
        while let Some(None) = self.items.front() {
            self.items.pop_front();
            self.base += 1;
        }
        t
    }

    /// The front entry: `Some(None)` when it was taken already.
    pub(super) fn front(&self) -> Option<Option<&T>> {
        self.items.front().map(Option::as_ref)
    }

    pub(super) fn pop_front(&mut self) -> Option<(u64, Option<T>)> {
        let t = self.items.pop_front()?;
        let id = self.base;
        self.base += 1;
        if t.is_some() {
            self.live -= 1;
        }
        Some((id, t))
    }

    /// The live entries among the first `n` slots (taken ones count), with their ids.
    pub(super) fn front_slots(&self, n: usize) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.items
            .iter()
            .take(n)
            .enumerate()
            .filter_map(move |(i, t)| Some((base + i as u64, t.as_ref()?)))
    }

    /// Live entries with their ids, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.items
            .iter()
            .enumerate()
            .filter_map(move |(i, t)| Some((base + i as u64, t.as_ref()?)))
    }
}

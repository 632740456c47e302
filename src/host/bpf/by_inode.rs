//! One run's records found by socket inode, for the join of the socket table.
//!
//! The table is dumped in the kernel's hash order, the records come by process and
//! descriptor: every lookup lands somewhere else in memory, and at a few hundred thousand
//! sockets nearly every one is a cache miss. So the index is small (8 bytes a slot, open
//! addressing with linear probing) and sockets are looked up a batch at a time, each step for the whole batch before the next step, so that
//! the processor fetches the slots (and then the records) of many sockets at once instead of
//! waiting for one after the other.

use super::program::Record;

/// One slot: the low 32 bits of a socket inode and the position of its first record in the
/// run, or [`Slot::EMPTY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    inode: u32,
    at: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        inode: 0,
        at: u32::MAX,
    };
}

/// Socket inode -> the position of the first record of that inode in a run (processes by
/// pid, descriptors ascending: the lowest pid holding it, its lowest descriptor).
#[derive(Debug)]
pub(super) struct ByInode {
    slots: Vec<Slot>,
    /// log2 of the number of slots.
    bits: u32,
}

impl ByInode {
    /// Index `raws`, in their order: a later record of an inode already indexed is left out.
    /// Socket inodes are 32-bit numbers (the kernel's get_next_ino, and sock_diag's
    /// `idiag_inode`); a record with a wider one can match no socket of a table and is left
    /// out too.
    pub(super) fn new(raws: &[Record]) -> Self {
        // At most three slots in four used.
        let bits = (raws.len() + raws.len() / 3 + 1)
            .next_power_of_two()
            .max(16)
            .trailing_zeros();
        let mut index = ByInode {
            slots: vec![Slot::EMPTY; 1 << bits],
            bits,
        };
        let mask = index.mask();
        for (at, raw) in raws.iter().enumerate() {
            let Ok(inode) = u32::try_from(raw.inode()) else {
                continue;
            };
            let mut i = index.home(inode);
            loop {
                let slot = &mut index.slots[i];
                if slot.at == Slot::EMPTY.at {
                    *slot = Slot {
                        inode,
                        at: at as u32,
                    };
                    break;
                }
                if slot.inode == inode {
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        index
    }

    fn mask(&self) -> usize {
        (1 << self.bits) - 1
    }

    /// The slot an inode's search starts at: the top bits of the inode times 2^64 / phi
    /// (Fibonacci hashing), which spreads any run of inodes over the whole index. (Their low
    /// bits alone would keep neighbours together, but a run of inodes longer than the index
    /// folds onto itself, and linear probing then walks long chains.)
    fn home(&self, inode: u32) -> usize {
        (u64::from(inode).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize
    }

    /// Where the search for `inode` ends, starting from `slot` at `i`.
    fn probe(&self, inode: u32, mut i: usize, mut slot: Slot) -> Option<u32> {
        loop {
            if slot.at == Slot::EMPTY.at {
                return None;
            }
            if slot.inode == inode {
                return Some(slot.at);
            }
            i = (i + 1) & self.mask();
            slot = self.slots[i];
        }
    }

    /// The position of the first record of `inode`.
    pub(super) fn find(&self, inode: u64) -> Option<u32> {
        let inode = u32::try_from(inode).ok()?;
        let i = self.home(inode);
        self.probe(inode, i, self.slots[i])
    }

    /// [`ByInode::find`] for each of `inodes`, into `out` (cleared first). The home slots of
    /// all are read first, in a loop whose reads do not depend on each other.
    pub(super) fn find_all(&self, inodes: &[u64], out: &mut Vec<Option<u32>>) {
        out.clear();
        out.extend(inodes.iter().map(|&inode| {
            let inode = u32::try_from(inode).ok()?;
            let slot = self.slots[self.home(inode)];
            // Decided here unless the search goes on past the home slot.
            if slot.at == Slot::EMPTY.at || slot.inode == inode {
                return (slot.at != Slot::EMPTY.at).then_some(slot.at);
            }
            Some(u32::MAX)
        }));
        for (found, &inode) in out.iter_mut().zip(inodes) {
            if *found == Some(u32::MAX) {
                let inode = inode as u32;
                let i = (self.home(inode) + 1) & self.mask();
                *found = self.probe(inode, i, self.slots[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::bpf::program::WORDS;

    fn record(pid: u32, fd: u32, inode: u64) -> Record {
        let mut words = [0u64; WORDS];
        words[0] = u64::from(pid);
        words[1] = u64::from(fd);
        words[2] = inode;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        Record::from_bytes(&bytes, (13, 3)).unwrap()
    }

    /// Dense inodes, inodes a power of two apart (which all share their low bits), a socket
    /// held twice, an inode wider than 32 bits: each found at its first record, one at a time
    /// and by batch alike.
    #[test]
    fn finds_the_first_record_of_each_inode() {
        let mut raws: Vec<Record> = (0..5000u64)
            .map(|i| record(10, i as u32, 7000 + i))
            .collect();
        raws.extend((0..300u64).map(|i| record(11, i as u32, (i + 1) << 20)));
        raws.push(record(12, 3, 7001));
        raws.push(record(12, 4, 1 << 40));
        let index = ByInode::new(&raws);
        assert!(index.slots.len() >= raws.len() * 4 / 3);
        let mut wanted: Vec<u64> = raws.iter().map(Record::inode).collect();
        wanted.extend([1, 6999, 12_000, 3 << 19, u64::from(u32::MAX), 1 << 40]);
        let mut batch = Vec::new();
        index.find_all(&wanted, &mut batch);
        for (inode, found) in wanted.iter().zip(batch) {
            let first = raws
                .iter()
                .position(|r| r.inode() == *inode && *inode < 1 << 32);
            assert_eq!(found, first.map(|p| p as u32), "inode {inode}");
            assert_eq!(index.find(*inode), found, "inode {inode}");
        }
        assert_eq!(index.find(7001), Some(1));
    }

    #[test]
    fn an_empty_run_finds_nothing() {
        let index = ByInode::new(&[]);
        let mut out = vec![Some(3)];
        index.find_all(&[0, 1, 2], &mut out);
        assert_eq!(out, vec![None, None, None]);
    }
}

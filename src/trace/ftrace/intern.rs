//! Names the kernel prints for socket states and reset reasons, kept once for the whole run.
//!
//! A trace event carries its state and reason as `&'static str` from here instead of a shared,
//! reference-counted string: the reading thread makes hundreds of thousands of events a second
//! under a reset flood and the matching thread drops them, and a count shared by the two would
//! move between their cores twice an event. The kernel has a few dozen such names; past
//! [`MAX_NAMES`] distinct ones (only garbage could get there) the rest are [`TOO_MANY`].

use std::collections::HashSet;
use std::sync::Mutex;

/// Distinct names kept at most.
pub const MAX_NAMES: usize = 4096;

/// Given for any name past [`MAX_NAMES`].
pub const TOO_MANY: &str = "(name not kept: too many distinct names)";

/// A set of kept names, at most `cap` of them.
struct Names {
    set: Option<HashSet<&'static str>>,
    cap: usize,
}

impl Names {
    const fn new(cap: usize) -> Self {
        Self { set: None, cap }
    }

    fn get(&mut self, s: &str) -> &'static str {
        let set = self.set.get_or_insert_with(HashSet::new);
        if let Some(&n) = set.get(s) {
            return n;
        }
        if set.len() >= self.cap {
            return TOO_MANY;
        }
        let n: &'static str = Box::leak(s.to_owned().into_boxed_str());
        set.insert(n);
        n
    }
}

static NAMES: Mutex<Names> = Mutex::new(Names::new(MAX_NAMES));

/// `s`, kept for the rest of the run (the same pointer for the same text).
pub fn name(s: &str) -> &'static str {
    NAMES.lock().unwrap_or_else(|p| p.into_inner()).get(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_is_kept_once() {
        let a = name("NO_SOCKET");
        let b = name(&String::from("NO_SOCKET"));
        assert_eq!(a, "NO_SOCKET");
        assert!(std::ptr::eq(a, b), "one copy per name");
    }

    #[test]
    fn a_flood_of_names_is_capped() {
        let mut names = Names::new(3);
        let kept: Vec<&str> = (0..5).map(|i| names.get(&format!("0x{i:x}"))).collect();
        assert_eq!(kept, ["0x0", "0x1", "0x2", TOO_MANY, TOO_MANY]);
        assert_eq!(names.get("0x1"), "0x1", "names kept before still come back");
    }
}

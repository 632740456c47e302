//! A stop token for long work (the live check, the lab): whoever owns the process (the command
//! layer, on SIGINT or SIGTERM) sets it, and the work polls it and returns normally, so that
//! every guard (ftrace instance, namespaces, files) is dropped on the way out. The library
//! installs no signal handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Cheap to clone: every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A token that nobody has set yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the work to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether stopping was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, for a signal handler of the command layer to set.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_a_stop() {
        let a = Stop::new();
        let b = a.clone();
        assert!(!b.is_stopped());
        a.stop();
        assert!(b.is_stopped());
        assert!(a.flag().load(Ordering::SeqCst));
    }
}

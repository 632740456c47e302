//! What `/healthz` answers: healthy while no part of the check says otherwise.
//!
//! Each part (`tracing`, `audit`, `events`, ...) sets its own state through a shared
//! [`Health`]; the endpoint answers 503 with every failing part's reason, 200 otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The shared health state; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<&'static str, String>>>);

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// `part` works (again).
    pub fn ok(&self, part: &'static str) {
        self.lock().remove(part);
    }

    /// `part` does not work, because of `reason`.
    pub fn failing(&self, part: &'static str, reason: impl Into<String>) {
        self.lock().insert(part, reason.into());
    }

    /// Every failing part with its reason (`audit: ...`), in the order of the parts'
    /// names; empty while healthy.
    pub fn problems(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|(part, why)| format!("{part}: {why}"))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_parts_are_listed_until_they_work_again() {
        let h = Health::new();
        assert!(h.problems().is_empty());
        let shared = h.clone();
        shared.failing("tracing", "the ftrace instance is gone");
        shared.failing("audit", "no audit succeeded for 15m");
        assert_eq!(
            h.problems(),
            [
                "audit: no audit succeeded for 15m",
                "tracing: the ftrace instance is gone"
            ]
        );
        h.ok("audit");
        h.ok("tracing");
        assert!(shared.problems().is_empty());
    }
}

//! Time scaling: a scenario whose real timescale is minutes (keepalive 7200 s
//! against a 300 s idle timeout) runs every duration divided by one factor,
//! so the ratios stay and the lab finishes in seconds.
//!
//! The kernel takes keepalive and conntrack timeouts in whole seconds, so a
//! scaled value is rounded (and never below 1 s). A factor is accepted only
//! when the comparison that decides the outcome (say "keepalive fires before
//! the middlebox forgets the flow") comes out the same at lab scale as at
//! real scale; otherwise a smaller factor (a longer lab run) is tried.

use serde::Serialize;

/// Real seconds per lab second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scale {
    pub factor: f64,
}

impl Scale {
    /// No scaling.
    pub const ONE: Scale = Scale { factor: 1.0 };

    /// A real duration as whole lab seconds for a kernel setting (at least 1).
    pub fn kernel_secs(&self, real: f64) -> u64 {
        ((real / self.factor).round() as u64).max(1)
    }

    /// A real duration in lab seconds, unrounded (for the lab's own sleeps).
    pub fn lab_secs(&self, real: f64) -> f64 {
        real / self.factor
    }
}

/// Pick the largest factor that maps `reference` (real seconds) to one of
/// `targets` (lab seconds, tried in order) while `same_outcome` holds.
/// Returns the scale and whether the outcome is preserved (false: the last
/// target was used anyway and the report must say so).
pub fn choose(
    reference: f64,
    targets: &[u64],
    same_outcome: impl Fn(Scale) -> bool,
) -> (Scale, bool) {
    let mut last = Scale::ONE;
    for &target in targets {
        let scale = if reference <= target as f64 {
            Scale::ONE
        } else {
            Scale {
                factor: reference / target as f64,
            }
        };
        if same_outcome(scale) {
            return (scale, true);
        }
        last = scale;
        if scale.factor == 1.0 {
            break;
        }
    }
    (last, same_outcome(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_against_idle_timeout_keeps_its_order() {
        // keepalive 7200 s and the fix 150 s against a 300 s idle timeout.
        let same = |s: Scale| {
            let t = s.kernel_secs(300.0);
            (s.kernel_secs(7200.0) >= t) && (s.kernel_secs(150.0) < t)
        };
        let (scale, ok) = choose(300.0, &[3, 4, 6], same);
        assert!(ok);
        assert_eq!(scale.factor, 100.0);
        assert_eq!(scale.kernel_secs(7200.0), 72);
        assert_eq!(scale.kernel_secs(150.0), 2);
    }

    #[test]
    fn rounding_that_would_flip_the_outcome_picks_a_longer_run() {
        // 240 s against 300 s: at 3 lab seconds 240 rounds to 2 (< 3, fine);
        // 290 s rounds to 3 (= 3, flips "below") so a longer run is chosen.
        let same = |s: Scale| s.kernel_secs(290.0) < s.kernel_secs(300.0);
        let (scale, ok) = choose(300.0, &[3, 4, 6, 10, 20, 30, 60], same);
        assert!(ok);
        assert!(scale.kernel_secs(290.0) < scale.kernel_secs(300.0));
        assert!(scale.factor < 100.0);
    }

    #[test]
    fn short_real_durations_are_not_scaled() {
        let (scale, ok) = choose(2.0, &[3], |_| true);
        assert!(ok);
        assert_eq!(scale, Scale::ONE);
    }
}

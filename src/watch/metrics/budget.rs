//! Bounded cardinality for one metric family: which label values and which series it holds.
//!
//! A label value, once admitted, keeps its slot while it is used and for [`Limits::idle`]
//! after; a new value that finds every slot of its label taken is exported as [`OTHER`]
//! instead. A series (a whole label set) is likewise kept until idle, and a new series that
//! would pass [`Limits::max_series`] has all its bounded labels set to `other`. Time is
//! given by the caller (`now`), so tests drive it.

use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap as HashMap;

use super::labels::Value;

/// The value that stands for every value past the limit.
pub const OTHER: &str = "other";

/// The bounds of every family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct values of one bounded label of one family (values past it are `other`).
    pub values_per_label: usize,
    /// Series of one family (series past it have every bounded label `other`).
    pub max_series: usize,
    /// How long an unused value or series keeps its place.
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            values_per_label: 200,
            max_series: 10_000,
            idle: Duration::from_secs(3600),
        }
    }
}

/// The values of one label.
#[derive(Debug)]
pub(crate) struct Values {
    pub(crate) name: &'static str,
    /// Each value, with the same `Arc` to hand out, and when it was last used.
    held: HashMap<Arc<str>, (Arc<str>, Instant)>,
    /// Values exported as `other` because every slot was taken.
    pub(crate) overflowed: u64,
}

impl Values {
    /// The value to export for `value`: itself (admitted now, or held already) or `other`.
    /// The empty value (a label that does not apply, such as no container) takes no slot.
    fn admit(&mut self, value: &str, limit: usize, now: Instant, other: &Value) -> Value {
        if value.is_empty() {
            return Value::empty();
        }
        if let Some(slot) = self.held.get_mut(value) {
            slot.1 = now;
            return Value(slot.0.clone());
        }
        if self.held.len() >= limit {
            self.overflowed += 1;
            return other.clone();
        }
        let held: Arc<str> = Arc::from(value);
        self.held.insert(held.clone(), (held.clone(), now));
        Value(held)
    }

    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

/// What a family holds. `S` is its typed label set.
#[derive(Debug)]
pub struct Budget<S> {
    limits: Limits,
    pub(crate) labels: Vec<Values>,
    series: HashMap<S, Instant>,
    /// New series folded into the all-`other` series because the family was full.
    pub(crate) series_overflowed: u64,
    other: Value,
}

impl<S: Clone + Hash + Eq> Budget<S> {
    /// A budget over the bounded labels `names`, in the order [`Budget::admit`] takes them.
    pub fn new(limits: Limits, names: &[&'static str]) -> Self {
        Budget {
            limits,
            labels: names
                .iter()
                .map(|&name| Values {
                    name,
                    held: HashMap::default(),
                    overflowed: 0,
                })
                .collect(),
            series: HashMap::default(),
            series_overflowed: 0,
            other: Value(Arc::from(OTHER)),
        }
    }

    /// Bounded label `i`'s exported value for `value`.
    pub fn admit(&mut self, i: usize, value: &str, now: Instant) -> Value {
        let limit = self.limits.values_per_label;
        self.labels[i].admit(value, limit, now, &self.other)
    }

    /// The series to update for `labels`: itself, or `overflowed(labels)` (its bounded labels
    /// set to `other`) when it is new and the family is full. Marks it used now.
    pub fn series(
        &mut self,
        labels: S,
        now: Instant,
        overflowed: impl FnOnce(S, &Value) -> S,
    ) -> S {
        if let Some(seen) = self.series.get_mut(&labels) {
            *seen = now;
            return labels;
        }
        let labels = if self.series.len() >= self.limits.max_series {
            self.series_overflowed += 1;
            let folded = overflowed(labels, &self.other);
            if let Some(seen) = self.series.get_mut(&folded) {
                *seen = now;
                return folded;
            }
            folded
        } else {
            labels
        };
        self.series.insert(labels.clone(), now);
        labels
    }

    /// Whether `labels` is a series held now.
    pub fn holds(&self, labels: &S) -> bool {
        self.series.contains_key(labels)
    }

    /// The series held now.
    pub fn held(&self) -> impl Iterator<Item = &S> {
        self.series.keys()
    }

    /// Let go of every series and value unused for [`Limits::idle`]; returns the series let
    /// go, for the caller to remove from the exported family.
    pub fn sweep(&mut self, now: Instant) -> Vec<S> {
        let idle = self.limits.idle;
        let old = |seen: &Instant| now.saturating_duration_since(*seen) >= idle;
        let gone: Vec<S> = self
            .series
            .iter()
            .filter(|(_, seen)| old(seen))
            .map(|(s, _)| s.clone())
            .collect();
        for s in &gone {
            self.series.remove(s);
        }
        for values in &mut self.labels {
            values.held.retain(|_, (_, seen)| !old(seen));
        }
        gone
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pair = (Value, Value);

    fn fold((_, _): Pair, other: &Value) -> Pair {
        (other.clone(), other.clone())
    }

    fn limits(values: usize, series: usize) -> Limits {
        Limits {
            values_per_label: values,
            max_series: series,
            idle: Duration::from_secs(3600),
        }
    }

    fn record(b: &mut Budget<Pair>, a: &str, c: &str, now: Instant) -> (String, String) {
        let a = b.admit(0, a, now);
        let c = b.admit(1, c, now);
        let s = b.series((a, c), now, fold);
        (s.0.to_string(), s.1.to_string())
    }

    #[test]
    fn new_values_past_the_limit_are_other_and_held_ones_stay() {
        let t0 = Instant::now();
        let mut b = Budget::new(limits(2, 100), &["container", "comm"]);
        assert_eq!(
            record(&mut b, "web", "nginx", t0),
            ("web".into(), "nginx".into())
        );
        assert_eq!(record(&mut b, "db", "", t0), ("db".into(), "".into()));
        assert_eq!(
            record(&mut b, "cache", "redis", t0),
            ("other".into(), "redis".into())
        );
        assert_eq!(
            record(&mut b, "queue", "nginx", t0),
            ("other".into(), "nginx".into())
        );
        // The values held before the limit was reached keep their series.
        assert_eq!(
            record(&mut b, "web", "nginx", t0),
            ("web".into(), "nginx".into())
        );
        assert_eq!(b.labels[0].overflowed, 2);
        assert_eq!((b.labels[0].len(), b.labels[1].len()), (2, 2));
        assert_eq!(b.len(), 4, "web/nginx, db/'', other/redis, other/nginx");
    }

    #[test]
    fn idle_values_and_series_go_after_an_hour_and_free_their_slot() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut b = Budget::new(limits(1, 100), &["container", "comm"]);
        record(&mut b, "web", "nginx", t0);
        assert_eq!(record(&mut b, "db", "nginx", t0).0, "other");
        // web is used again at 30 min: at 1 h its series is 30 min old and stays.
        record(&mut b, "web", "nginx", t0 + hour / 2);
        let gone = b.sweep(t0 + hour);
        assert_eq!(gone.len(), 1, "only other/nginx, last used at 0");
        assert_eq!(gone[0].0.to_string(), "other");
        assert!(
            b.sweep(t0 + hour + hour / 2 - Duration::from_secs(1))
                .is_empty()
        );
        let gone = b.sweep(t0 + hour + hour / 2);
        assert_eq!(gone.len(), 1);
        assert_eq!((b.len(), b.labels[0].len()), (0, 0));
        // The slot is free: db is itself now.
        assert_eq!(record(&mut b, "db", "nginx", t0 + 2 * hour).0, "db");
    }

    #[test]
    fn series_past_the_limit_fold_into_the_other_series() {
        let t0 = Instant::now();
        let mut b = Budget::new(limits(100, 2), &["container", "comm"]);
        record(&mut b, "a", "x", t0);
        record(&mut b, "b", "y", t0);
        assert_eq!(
            record(&mut b, "c", "z", t0),
            ("other".into(), "other".into())
        );
        assert_eq!(
            record(&mut b, "d", "w", t0),
            ("other".into(), "other".into())
        );
        assert_eq!(b.series_overflowed, 2);
        assert_eq!(b.len(), 3, "two series and the one they fold into");
        assert_eq!(record(&mut b, "a", "x", t0), ("a".into(), "x".into()));
    }
}

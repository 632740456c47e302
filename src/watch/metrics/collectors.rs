//! Metrics read at scrape time: the process's own (`process_*`), the event sink's counts, and
//! the budgets' use. Each is a prometheus-client `Collector`, so the values are current
//! when Prometheus asks and cost nothing between scrapes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::budget::Budget;
use super::labels::{BudgetLabels, DropLabels, DropReason, FamilyLabels};
use crate::host::self_stats;
use crate::watch::events::EventCounters;

/// `process_*`, as Prometheus's client libraries name them, from host::self_stats.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector {
    /// Scrapes at which the process's stats could not be read (then `process_*` is absent).
    pub(crate) failures: AtomicU64,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let failures = match self_stats::read() {
            Ok(s) => {
                counter(
                    &mut encoder,
                    "process_cpu",
                    "Total user and system CPU time spent in seconds.",
                    Some(&Unit::Seconds),
                    s.cpu_seconds,
                )?;
                gauge(
                    &mut encoder,
                    "process_resident_memory",
                    "Resident memory size in bytes.",
                    Some(&Unit::Bytes),
                    s.resident_bytes as f64,
                )?;
                gauge(
                    &mut encoder,
                    "process_virtual_memory",
                    "Virtual memory size in bytes.",
                    Some(&Unit::Bytes),
                    s.virtual_bytes as f64,
                )?;
                gauge(
                    &mut encoder,
                    "process_open_fds",
                    "Number of open file descriptors.",
                    None,
                    s.open_fds as i64,
                )?;
                if let Some(max) = s.max_fds {
                    gauge(
                        &mut encoder,
                        "process_max_fds",
                        "Maximum number of open file descriptors.",
                        None,
                        max as i64,
                    )?;
                }
                gauge(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since unix epoch in seconds.",
                    Some(&Unit::Seconds),
                    s.start_time_seconds,
                )?;
                self.failures.load(Ordering::Relaxed)
            }
            Err(_) => self.failures.fetch_add(1, Ordering::Relaxed) + 1,
        };
        counter(
            &mut encoder,
            "rstaudit_process_stats_failures",
            "Scrapes at which the process's own stats (process_*) could not be read from /proc/self.",
            None,
            failures,
        )
    }
}

/// The event sink's counts.
#[derive(Debug)]
pub(crate) struct EventCollector(pub(crate) Arc<EventCounters>);

impl Collector for EventCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let c = &self.0;
        counter(
            &mut encoder,
            "rstaudit_events_written",
            "JSON-lines events written.",
            None,
            c.written.load(Ordering::Relaxed),
        )?;
        let mut family = encoder.encode_descriptor(
            "rstaudit_events_dropped",
            "JSON-lines events dropped: the writer was behind and its queue full (queue_full), or the file could not be written (write_failed).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (reason, n) in [
            (DropReason::QueueFull, c.queue_full.load(Ordering::Relaxed)),
            (
                DropReason::WriteFailed,
                c.write_failed.load(Ordering::Relaxed),
            ),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&DropLabels { reason })?)?;
        }
        Ok(())
    }
}

/// How much of its budget each bounded family uses.
#[derive(Debug)]
pub(crate) struct BudgetCollector {
    pub(crate) families: Vec<(&'static str, Arc<Mutex<dyn BudgetView>>)>,
    pub(crate) values_per_label: usize,
    pub(crate) max_series: usize,
}

/// A family's name, its labels' use and its series' use.
type FamilyUse = (&'static str, Vec<(&'static str, usize, u64)>, (usize, u64));

/// What the collector reads of a [`Budget`], whatever its label set.
pub(crate) trait BudgetView: Send + fmt::Debug {
    /// (label, values held, values sent to `other`) of every bounded label.
    fn label_use(&self) -> Vec<(&'static str, usize, u64)>;
    /// (series held, new series folded into the all-`other` one).
    fn series_use(&self) -> (usize, u64);
}

impl<S: Clone + std::hash::Hash + Eq + Send + fmt::Debug> BudgetView for Budget<S> {
    fn label_use(&self) -> Vec<(&'static str, usize, u64)> {
        self.labels
            .iter()
            .map(|v| (v.name, v.len(), v.overflowed))
            .collect()
    }

    fn series_use(&self) -> (usize, u64) {
        (self.len(), self.series_overflowed)
    }
}

impl Collector for BudgetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let seen: Vec<FamilyUse> = self
            .families
            .iter()
            .map(|(name, b)| {
                let b = b.lock().unwrap_or_else(PoisonError::into_inner);
                (*name, b.label_use(), b.series_use())
            })
            .collect();
        gauge(
            &mut encoder,
            "rstaudit_label_values_limit",
            "Distinct values one bounded label of one family may hold; new values past it are exported as other.",
            None,
            self.values_per_label as i64,
        )?;
        gauge(
            &mut encoder,
            "rstaudit_series_limit",
            "Series one bounded family may hold; new series past it have every bounded label other.",
            None,
            self.max_series as i64,
        )?;
        let mut values = encoder.encode_descriptor(
            "rstaudit_label_values",
            "Distinct values a bounded label of a family holds now (each kept until idle for the idle time).",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (family, labels, _) in &seen {
            for (label, held, _) in labels {
                let l = BudgetLabels { family, label };
                ConstGauge::new(*held as i64).encode(values.encode_family(&l)?)?;
            }
        }
        let mut overflow = encoder.encode_descriptor(
            "rstaudit_label_overflow",
            "New values of a bounded label exported as other because the label held its limit.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (family, labels, _) in &seen {
            for (label, _, over) in labels {
                let l = BudgetLabels { family, label };
                ConstCounter::new(*over).encode(overflow.encode_family(&l)?)?;
            }
        }
        let mut series = encoder.encode_descriptor(
            "rstaudit_series",
            "Series a bounded family holds now.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (family, _, (held, _)) in &seen {
            ConstGauge::new(*held as i64)
                .encode(series.encode_family(&FamilyLabels { family })?)?;
        }
        let mut folded = encoder.encode_descriptor(
            "rstaudit_series_overflow",
            "New series folded into the family's all-other series because the family held its limit.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (family, _, (_, over)) in &seen {
            ConstCounter::new(*over).encode(folded.encode_family(&FamilyLabels { family })?)?;
        }
        Ok(())
    }
}

fn counter<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: N,
) -> Result<(), fmt::Error>
where
    ConstCounter<N>: EncodeMetric,
{
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: N,
) -> Result<(), fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

//! The metrics of `watch`: one registry, its families with typed label sets, bounded.
//!
//! The families and their labels are in docs/watch.md ("Metrics"). The caller records
//! resets ([`Metrics::record_reset`]) and audits ([`Metrics::set_findings`] with the rows
//! [`finding_rows`] makes of an audit report,
//! [`Metrics::audit_succeeded`]); the endpoint renders ([`Metrics::encode`]) in the
//! Prometheus text format 0.0.4 or in OpenMetrics text, both encoded by prometheus-client.
//! [`Metrics`] is `Sync`: share it in an `Arc` between the thread that records and the one
//! that serves.

pub mod budget;
mod collectors;
pub mod labels;
mod rows;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use budget::{Budget, Limits, OTHER};
use collectors::{BudgetCollector, BudgetView, EventCollector, ProcessCollector};
use labels::{BuildLabels, ExposureLabel, SeverityLabel};
pub use labels::{Direction, FindingLabels, FindingRow, Reset, ResetLabels, Value, Verdict};
pub use rows::{add_rows, finding_rows};

use super::events::EventCounters;

/// How often recording lets go of idle series, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Family names as the budget metrics label them.
const RESETS: &str = "rstaudit_resets_total";
const FINDINGS: &str = "rstaudit_findings";

/// The text format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a q-value above 0 and at least that of any
    /// `text/plain`, the Prometheus text format otherwise (no header, `*/*`, garbage).
    ///
    /// Written here, not taken from a crate: only these two media types matter, and the
    /// few lines read nothing but the type and its `q`.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut open, mut plain) = (None::<f32>, None::<f32>);
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").map(str::trim))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match kind.as_str() {
                "application/openmetrics-text" => &mut open,
                "text/plain" => &mut plain,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old: f32| old.max(q)));
        }
        match open {
            Some(o) if o > 0.0 && o >= plain.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of the answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What [`Metrics::new`] needs.
#[derive(Debug, Clone, Default)]
pub struct MetricsOptions {
    pub limits: Limits,
    /// The event sink's counts (`rstaudit_events_*`); a fresh one when there is no sink.
    pub events: Arc<EventCounters>,
}

/// The registry and its families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    resets: Family<ResetLabels, Counter>,
    reset_budget: Arc<Mutex<Budget<ResetLabels>>>,
    findings: Family<FindingLabels, Gauge>,
    finding_budget: Arc<Mutex<Budget<FindingLabels>>>,
    audit_duration: Gauge<f64, AtomicU64>,
    audit_last_success: Gauge<f64, AtomicU64>,
    last_sweep: Mutex<Option<Instant>>,
}

/// Lock, and go on with the data if a thread panicked while holding it (every update
/// here leaves the data whole).
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    pub fn new(options: MetricsOptions) -> Self {
        let limits = options.limits;
        let mut registry = Registry::default();
        let resets = Family::<ResetLabels, Counter>::default();
        registry.register(
            "rstaudit_resets",
            "TCP resets seen, by direction, cause, the kernel's reason, network namespace, container, systemd unit and process name",
            resets.clone(),
        );
        let findings = Family::<FindingLabels, Gauge>::default();
        registry.register(
            "rstaudit_findings",
            "Findings of the last audit, by namespace, rule, severity, exposure and the live check's verdict; 0 for an hour after a finding cleared",
            findings.clone(),
        );
        let audit_duration = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "rstaudit_audit_duration",
            "How long the last audit took",
            Unit::Seconds,
            audit_duration.clone(),
        );
        let audit_last_success = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "rstaudit_audit_last_success_timestamp",
            "When the last audit that succeeded finished, in seconds since the Unix epoch (0: none yet)",
            Unit::Seconds,
            audit_last_success.clone(),
        );
        registry.register(
            "rstaudit_build",
            "The rstaudit build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let reset_budget = Arc::new(Mutex::new(Budget::new(limits, &ResetLabels::BOUNDED)));
        let finding_budget = Arc::new(Mutex::new(Budget::new(limits, &FindingLabels::BOUNDED)));
        let views: Vec<(&'static str, Arc<Mutex<dyn BudgetView>>)> = vec![
            (RESETS, reset_budget.clone()),
            (FINDINGS, finding_budget.clone()),
        ];
        registry.register_collector(Box::new(BudgetCollector {
            families: views,
            values_per_label: limits.values_per_label,
            max_series: limits.max_series,
        }));
        registry.register_collector(Box::new(EventCollector(options.events)));
        registry.register_collector(Box::new(ProcessCollector::default()));
        Metrics {
            registry,
            resets,
            reset_budget,
            findings,
            finding_budget,
            audit_duration,
            audit_last_success,
            last_sweep: Mutex::new(None),
        }
    }

    /// Count `count` resets of one kind, at `now`.
    pub fn record_reset(&self, reset: &Reset, count: u64, now: Instant) {
        {
            let mut b = lock(&self.reset_budget);
            let labels = ResetLabels {
                direction: reset.direction,
                cause: b.admit(0, reset.cause, now),
                reason: b.admit(1, reset.reason, now),
                netns: b.admit(2, reset.netns, now),
                container: b.admit(3, reset.container, now),
                unit: b.admit(4, reset.unit, now),
                comm: b.admit(5, reset.comm, now),
            };
            let labels = b.series(labels, now, ResetLabels::folded);
            self.resets.get_or_create(&labels).inc_by(count);
        }
        self.maybe_sweep(now);
    }

    /// The findings of the audit that just ended: every row's gauge is set; a series of an
    /// earlier audit that this one lacks is set to 0 (and goes once idle, see [`Limits`]).
    pub fn set_findings(&self, rows: &[FindingRow], now: Instant) {
        {
            let mut b = lock(&self.finding_budget);
            let mut totals: Vec<(FindingLabels, u64)> = Vec::with_capacity(rows.len());
            for row in rows.iter().filter(|r| r.count > 0) {
                let labels = FindingLabels {
                    netns: b.admit(0, &row.netns, now),
                    rule: b.admit(1, &row.rule, now),
                    severity: SeverityLabel(row.severity),
                    exposure: ExposureLabel(row.exposure),
                    verdict: row.verdict,
                };
                let labels = b.series(labels, now, FindingLabels::folded);
                match totals.iter_mut().find(|(l, _)| *l == labels) {
                    Some((_, n)) => *n += row.count,
                    None => totals.push((labels, row.count)),
                }
            }
            for held in b.held() {
                if !totals.iter().any(|(l, _)| l == held) {
                    self.findings.get_or_create(held).set(0);
                }
            }
            for (labels, n) in &totals {
                self.findings
                    .get_or_create(labels)
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
        self.maybe_sweep(now);
    }

    /// An audit succeeded: it took `duration` and ended at `finished_unix_seconds`.
    pub fn audit_succeeded(&self, duration: Duration, finished_unix_seconds: f64) {
        self.audit_duration.set(duration.as_secs_f64());
        self.audit_last_success.set(finished_unix_seconds);
    }

    /// An audit failed after `duration` (the last success stays as it was).
    pub fn audit_failed(&self, duration: Duration) {
        self.audit_duration.set(duration.as_secs_f64());
    }

    /// Let go of the series and label values idle for [`Limits::idle`]. Recording does this
    /// by itself at most once a minute; a caller that records nothing for long may call it.
    pub fn sweep(&self, now: Instant) {
        *lock(&self.last_sweep) = Some(now);
        for gone in lock(&self.reset_budget).sweep(now) {
            self.resets.remove(&gone);
        }
        for gone in lock(&self.finding_budget).sweep(now) {
            self.findings.remove(&gone);
        }
    }

    fn maybe_sweep(&self, now: Instant) {
        let due = lock(&self.last_sweep)
            .is_none_or(|last| now.saturating_duration_since(last) >= SWEEP_EVERY);
        if due {
            self.sweep(now);
        }
    }

    /// The metrics in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String fails only if an encoder does; none of ours does.
        let done = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
        };
        debug_assert!(done.is_ok(), "encoding into a String failed");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Exposure, Severity};

    fn small(values: usize) -> Metrics {
        Metrics::new(MetricsOptions {
            limits: Limits {
                values_per_label: values,
                max_series: 100,
                idle: Duration::from_secs(3600),
            },
            events: Arc::default(),
        })
    }

    fn reset<'a>(container: &'a str, comm: &'a str) -> Reset<'a> {
        Reset {
            direction: Some(Direction::Sent),
            cause: "linger-zero",
            reason: "TCP_ABORT_ON_CLOSE",
            netns: "host",
            container,
            unit: "",
            comm,
        }
    }

    /// The sample lines of `name` (exact metric name, then `{` or a space).
    fn samples(text: &str, name: &str) -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_limit_sends_new_values_to_other_and_says_so() {
        let m = small(2);
        let t0 = Instant::now();
        m.record_reset(&reset("web", "nginx"), 3, t0);
        m.record_reset(&reset("db", "postgres"), 1, t0);
        m.record_reset(&reset("cache", "redis"), 2, t0);
        m.record_reset(&reset("web", "nginx"), 1, t0);
        let text = m.encode(Format::Prometheus);
        let resets = samples(&text, "rstaudit_resets_total");
        assert_eq!(resets.len(), 3, "{text}");
        assert!(resets.contains(&"rstaudit_resets_total{direction=\"sent\",cause=\"linger-zero\",reason=\"TCP_ABORT_ON_CLOSE\",netns=\"host\",container=\"web\",unit=\"\",comm=\"nginx\"} 4".to_string()), "{resets:#?}");
        assert!(
            resets
                .iter()
                .any(|l| l.contains("container=\"other\",unit=\"\",comm=\"other\"} 2")),
            "{resets:#?}"
        );
        assert!(
            text.contains(
                "rstaudit_label_values{family=\"rstaudit_resets_total\",label=\"container\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rstaudit_label_overflow_total{family=\"rstaudit_resets_total\",label=\"comm\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("rstaudit_label_values_limit 2\n"), "{text}");
        assert!(
            text.contains("rstaudit_series{family=\"rstaudit_resets_total\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn an_idle_series_goes_after_an_hour_and_its_value_slot_is_free_again() {
        let m = small(1);
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        m.record_reset(&reset("web", "nginx"), 1, t0);
        m.record_reset(&reset("db", "postgres"), 1, t0 + hour / 2);
        let text = m.encode(Format::Prometheus);
        assert_eq!(
            samples(&text, "rstaudit_resets_total").len(),
            2,
            "web, and db as other"
        );
        // 59 minutes after web's reset: nothing goes (recording sweeps once a minute).
        m.sweep(t0 + hour - Duration::from_secs(60));
        assert_eq!(
            samples(&m.encode(Format::Prometheus), "rstaudit_resets_total").len(),
            2
        );
        m.sweep(t0 + hour);
        let text = m.encode(Format::Prometheus);
        let left = samples(&text, "rstaudit_resets_total");
        assert_eq!(left.len(), 1, "{left:#?}");
        assert!(left[0].contains("container=\"other\""), "{left:#?}");
        // web's slot is free: db is exported by its name now.
        m.record_reset(
            &reset("db", "postgres"),
            1,
            t0 + hour + Duration::from_secs(1),
        );
        let text = m.encode(Format::Prometheus);
        assert!(text.contains("container=\"db\""), "{text}");
        m.sweep(t0 + 3 * hour);
        assert!(samples(&m.encode(Format::Prometheus), "rstaudit_resets_total").is_empty());
    }

    #[test]
    fn a_cleared_finding_is_zero_until_idle() {
        let m = small(10);
        let t0 = Instant::now();
        let row = |rule: &str, verdict, count| FindingRow {
            netns: "host".into(),
            rule: rule.into(),
            severity: Severity::High,
            exposure: Exposure::Exposed,
            verdict,
            count,
        };
        m.set_findings(
            &[
                row("linger-zero", Verdict::Confirmed, 2),
                row("syn-backlog", Verdict::NotSeen, 1),
            ],
            t0,
        );
        let text = m.encode(Format::Prometheus);
        assert!(text.contains("rstaudit_findings{netns=\"host\",rule=\"linger-zero\",severity=\"high\",exposure=\"exposed\",verdict=\"confirmed\"} 2\n"), "{text}");
        m.set_findings(
            &[row("linger-zero", Verdict::Confirmed, 2)],
            t0 + Duration::from_secs(300),
        );
        let text = m.encode(Format::Prometheus);
        assert!(text.contains("rule=\"syn-backlog\",severity=\"high\",exposure=\"exposed\",verdict=\"not_seen\"} 0\n"), "{text}");
        m.set_findings(
            &[row("linger-zero", Verdict::Confirmed, 2)],
            t0 + Duration::from_secs(3700),
        );
        let text = m.encode(Format::Prometheus);
        assert!(!text.contains("syn-backlog"), "{text}");
        assert!(text.contains("rule=\"linger-zero\""), "{text}");
    }

    #[test]
    fn both_formats_name_every_family() {
        let m = small(10);
        m.record_reset(&reset("", "nginx"), 1, Instant::now());
        m.audit_succeeded(Duration::from_millis(1500), 1_800_000_000.0);
        let prom = m.encode(Format::Prometheus);
        let open = m.encode(Format::OpenMetrics);
        for name in [
            "rstaudit_resets_total{",
            "rstaudit_audit_duration_seconds 1.5",
            "rstaudit_audit_last_success_timestamp_seconds 1800000000",
            "rstaudit_events_dropped_total{reason=\"queue_full\"} 0",
            "rstaudit_build_info{version=\"",
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(prom.contains(name), "{name} not in\n{prom}");
            assert!(open.contains(name), "{name} not in\n{open}");
        }
        assert!(
            prom.contains("# TYPE rstaudit_resets_total counter"),
            "{prom}"
        );
        assert!(open.contains("# TYPE rstaudit_resets counter"), "{open}");
        assert!(
            open.contains("# UNIT rstaudit_audit_duration_seconds seconds"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n") && !prom.contains("# EOF"));
    }

    #[test]
    fn accept_headers_choose_the_format() {
        // What Prometheus 2.42 (Debian 12's) sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some(
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"
            )),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some(";;,,q=x")), Format::Prometheus);
    }
}

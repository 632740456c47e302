//! One window of the live check: the loop that feeds the namespace's [`Stream`] from the
//! capture and the trace, takes in the counters and the namespace's facts, tells the caller how
//! far it is, and, at the end, the report of everything the window saw.

use std::time::{Duration, Instant};

use super::attribute::TaskResolver;
use super::error::RunError;
use super::events_file::EventStream;
use super::source::{Background, Tracing};
use super::stream::{Attribution, Stream, WindowSink};
use super::summary::{self, PacketReport, Tally, TracingSummary};
use super::{GRACE_MS, LiveOptions, Observer, Progress};
use crate::host::CounterSample;
use crate::host::counters::SampleError;
use crate::host::workload::{WorkloadConfig, Workloads};
use crate::trace::capture::{Capture, parse_rst};
use crate::trace::ftrace::TraceReceiver;
use crate::trace::pcap::PcapSink;

/// Everything a window holds while it runs.
pub(super) struct Window<'a> {
    pub opts: &'a LiveOptions,
    pub capture: Capture,
    pub trace: Option<TraceReceiver>,
    pub stream: Stream,
    /// What the trace's task events told, for the owners of resets.
    pub resolver: TaskResolver,
    /// The owners' units, containers and pods.
    pub workloads: Workloads,
    pub tally: Tally,
    pub background: Background,
    pub file: Option<EventStream>,
    pub pcap: Option<PcapSink>,
    /// Frames stamped before this (the counters' baseline) are the window's past.
    pub baseline_at: Duration,
    /// The window's clock.
    pub mono: Instant,
    pub notes: Vec<String>,
    pub counter_notes: Vec<String>,
    pub before_baseline: u64,
    pub pcap_error: Option<String>,
    last_drops: u64,
}

impl<'a> Window<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: &'a LiveOptions,
        capture: Capture,
        trace: Option<TraceReceiver>,
        stream: Stream,
        tally: Tally,
        background: Background,
        baseline_at: Duration,
        notes: Vec<String>,
    ) -> Result<Self, RunError> {
        let file = opts
            .events_file
            .as_deref()
            .map(EventStream::create)
            .transpose()?;
        let pcap = opts
            .pcap
            .as_deref()
            .map(|p| PcapSink::create(p, crate::trace::capture::CaptureOptions::default().snaplen))
            .transpose()?;
        Ok(Self {
            opts,
            capture,
            trace,
            stream,
            resolver: TaskResolver::default(),
            workloads: Workloads::new(WorkloadConfig::default()),
            tally,
            background,
            file,
            pcap,
            baseline_at,
            mono: Instant::now(),
            notes,
            counter_notes: Vec::new(),
            before_baseline: 0,
            pcap_error: None,
            last_drops: 0,
        })
    }

    /// A counter sample, or the note that it could not be read (once).
    pub fn sample(&mut self, s: Result<CounterSample, SampleError>) {
        take_sample(&mut self.tally, &mut self.counter_notes, s);
    }

    /// Watch until the window's length or the stop token, then let the trace events of the
    /// last frames arrive. Returns the seconds watched.
    pub fn watch(&mut self, observer: &mut dyn Observer) -> Result<f64, RunError> {
        let window = Duration::from_secs_f64(self.opts.duration);
        let mut last_progress = Instant::now() - Duration::from_secs(1);
        let mut draining_until: Option<Instant> = None;
        let mut watched = 0.0;
        loop {
            let now = Instant::now();
            let stop = self.opts.stop.is_stopped() || now.duration_since(self.mono) >= window;
            if stop && draining_until.is_none() {
                draining_until = Some(now + Duration::from_millis(GRACE_MS));
                watched = now
                    .duration_since(self.mono)
                    .as_secs_f64()
                    .min(self.opts.duration);
            }
            if draining_until.is_some_and(|until| now >= until) {
                return Ok(watched);
            }
            self.step(draining_until.is_none())?;
            if last_progress.elapsed() >= Duration::from_millis(250) {
                last_progress = Instant::now();
                observer.progress(&self.progress());
            }
        }
    }

    /// One round: the capture (frames only while `capturing`), the namespace's facts, the
    /// trace, what is finished, the counters.
    fn step(&mut self, capturing: bool) -> Result<(), RunError> {
        let now_ms = self.mono.elapsed().as_millis() as u64;
        let lo = self.capture.loopback_ifindex;
        let (stream, pcap, pcap_error) = (&mut self.stream, &mut self.pcap, &mut self.pcap_error);
        let (baseline_at, before) = (self.baseline_at, &mut self.before_baseline);
        self.capture
            .poll(
                Duration::from_millis(if capturing { 100 } else { 20 }),
                &mut |f| {
                    if !capturing {
                        return;
                    }
                    if f.ts < baseline_at {
                        *before += 1;
                        return;
                    }
                    let Ok(seg) = parse_rst(f.ip) else { return };
                    if let Some(sink) = pcap.as_mut()
                        && pcap_error.is_none()
                        && let Err(e) = sink.write(f)
                    {
                        *pcap_error = Some(format!("{e:#}"));
                    }
                    stream.frame(
                        super::correlate::CapturedReset {
                            ts_ms: f.ts.as_millis() as u64,
                            dir: f.dir(),
                            ifindex: f.ifindex,
                            loopback: Some(f.ifindex) == lo,
                            seg,
                        },
                        now_ms,
                    );
                },
            )
            .map_err(RunError::CaptureRing)?;
        for later in self.background.facts.try_iter() {
            for n in &later.notes {
                if !self.notes.contains(n) {
                    self.notes.push(n.clone());
                }
            }
            self.stream.facts(later);
        }
        if let Some(rx) = self.trace.as_mut() {
            for ev in rx.try_iter() {
                if let Some(ev) = self.resolver.take_in(ev) {
                    self.stream.trace_event(ev, now_ms);
                }
            }
        }
        if self.stream.ready() {
            let sh = self
                .background
                .shared
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.stream.deliver(
                now_ms,
                Attribution {
                    index: &sh.index,
                    findings: &sh.findings,
                    resolver: &mut self.resolver,
                },
                &mut WindowSink {
                    tally: &mut self.tally,
                    file: self.file.as_mut(),
                    workloads: &mut self.workloads,
                },
            );
        }
        let samples: Vec<_> = self.background.counters.try_iter().collect();
        for s in samples {
            self.sample(s);
        }
        Ok(())
    }

    fn progress(&mut self) -> Progress {
        if let Ok(st) = self.capture.stats() {
            self.last_drops = st.drops;
        }
        Progress {
            elapsed: self.mono.elapsed().as_secs_f64().min(self.opts.duration),
            total: self.opts.duration,
            by_cause: self.tally.by_cause(),
            drops: self.last_drops,
        }
    }

    /// The window is over: stop the threads, hand out what waits, and put the report together.
    pub fn report(
        mut self,
        trace: Tracing,
        mut tracing: TracingSummary,
        header: Header,
    ) -> Result<PacketReport, RunError> {
        let mut notes = std::mem::take(&mut self.notes);
        let shared = self.background.stop(&mut notes);
        self.stream.finish(
            Attribution {
                index: &shared.index,
                findings: &shared.findings,
                resolver: &mut self.resolver,
            },
            &mut WindowSink {
                tally: &mut self.tally,
                file: self.file.as_mut(),
                workloads: &mut self.workloads,
            },
        );
        if let Some(note) = self.file.take().and_then(EventStream::finish) {
            notes.push(note);
        }
        let (send_traced, _) = trace.traced();
        let from_tracepoint = trace
            .session
            .as_ref()
            .is_some_and(|s| s.support.send_reset && !s.sites);
        if let Some(s) = &trace.session {
            tracing.dropped = s.counts.dropped.load(std::sync::atomic::Ordering::Relaxed);
            tracing.overrun = s.overruns();
            tracing.undecoded = s.counts.undecoded();
            notes.extend(reader_notes(tracing.undecoded, s.counts.stopped()));
        }
        let stats = self.stream.match_stats();
        notes.extend(missing_events_note(
            stats.sent_without_event,
            tracing.overrun,
            tracing.dropped,
            from_tracepoint && !tracing.reasons,
        ));
        if self.before_baseline > 0 {
            notes.push(format!(
                "{} resets captured before the counters were first read were left out: \
                 they happened before the window (the baseline of Tcp.OutRsts has them)",
                self.before_baseline
            ));
        }
        if let Some(s) = trace.session
            && let Err(e) = s.finish()
        {
            notes.push(format!("{e:#}"));
        }
        tracing.matching = stats;
        tracing.events = self.stream.trace.events;
        tracing.foreign = self.stream.trace.foreign;
        let capture = self.capture.stats().map_err(RunError::CaptureStats)?;
        drop(self.capture);
        if let Some(sink) = self.pcap.take() {
            sink.finish()?;
        }
        if let Some(e) = &self.pcap_error {
            notes.push(format!("writing the pcap file stopped: {e}"));
        }
        // The counter thread's last sample comes as it stops.
        for s in self.background.join(&mut notes) {
            take_sample(&mut self.tally, &mut self.counter_notes, s);
        }
        for n in std::mem::take(&mut self.counter_notes) {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        let counters = self.tally.counter_window();
        notes.extend(shared.notes.iter().cloned());
        if let Some(e) = &shared.audit_error {
            notes.push(format!(
                "the audit could not run ({e}): no verdicts per finding"
            ));
        }
        if !tracing.reasons && !send_traced {
            notes.push(
                "without the kernel's reasons, resets sent here are counted by direction and counters only"
                    .into(),
            );
        }
        if capture.drops > 0 {
            notes.push(format!(
                "the kernel dropped {} captured resets (ring full): counts are a lower bound; compare Tcp.OutRsts",
                capture.drops
            ));
        }
        let tally = &mut self.tally;
        if tally.omitted > 0 {
            notes.push(format!(
                "the report lists the first {} of {} resets (--max-events); every reset is counted in \
                 the causes, the timeline and the verdicts{}",
                tally.resets - tally.omitted,
                tally.resets,
                match &self.opts.events_file {
                    Some(p) => format!(", and {} has them all", p.display()),
                    None => "; --events-file FILE writes them all".into(),
                }
            ));
        }
        let findings = shared.findings;
        let mut verdicts =
            summary::verdicts(&findings, &tally.evidence, &counters, &trace.reason_note);
        let mut causes = tally.causes();
        // The labels read when their resets were seen (a process may have exited since).
        let workloads = &self.workloads;
        let lists = causes
            .iter_mut()
            .flat_map(|c| [&mut c.top_processes, &mut c.top_peer_processes])
            .chain(verdicts.iter_mut().map(|v| &mut v.processes));
        for p in lists.flatten() {
            p.workload = workloads.cached(p.pid).filter(|w| w.is_labelled());
        }
        Ok(PacketReport {
            schema: summary::SCHEMA_VERSION,
            mode: "live",
            netns: header.netns,
            started_at_ms: header.started_at_ms,
            duration_s: header.watched,
            interrupted: self.opts.stop.is_stopped(),
            iface: self.opts.iface.clone(),
            port: self.opts.port,
            resets: tally.resets,
            sent: tally.sent,
            received: tally.received,
            capture,
            pcap: self.opts.pcap.as_ref().map(|p| p.display().to_string()),
            tracing,
            causes,
            findings: verdicts,
            counters,
            timeline: tally.timeline(header.watched),
            events: tally.take_events(&findings),
            events_omitted: tally.omitted,
            notes,
        })
    }
}

fn take_sample(tally: &mut Tally, notes: &mut Vec<String>, s: Result<CounterSample, SampleError>) {
    match s {
        Ok(s) => tally.add_sample(s),
        Err(e) => {
            let msg = format!("counters: {e:#}");
            if !notes.contains(&msg) {
                notes.push(msg);
            }
        }
    }
}

/// What the report says about the window itself.
pub(super) struct Header {
    pub netns: String,
    pub started_at_ms: u64,
    /// Seconds watched.
    pub watched: f64,
}

fn missing_events_note(missing: u64, overrun: u64, dropped: u64, pre_6_10: bool) -> Option<String> {
    if missing == 0 && overrun + dropped == 0 {
        return None;
    }
    let lost = overrun + dropped;
    Some(if lost > 0 {
        format!(
            "{missing} resets sent here have no trace event: trace events were lost ({overrun} \
             overwritten in the kernel buffer, {dropped} dropped by the reader)"
        )
    } else if pre_6_10 {
        format!(
            "{missing} resets sent here have no trace event: kernels before 6.10 trace a reset only \
             when it is sent for a full socket (not for a closed port, a TIME_WAIT or SYN-RECV \
             entry); none were lost"
        )
    } else {
        format!(
            "{missing} resets sent here have no kernel reason: their trace events did not arrive \
             within {GRACE_MS} ms (none were lost in the trace buffer)"
        )
    })
}

/// What the trace reader could not read, in words: the resets behind it are missing from the
/// events (the counters still have them).
fn reader_notes(undecoded: u64, stopped: Option<String>) -> Vec<String> {
    let mut notes = Vec::new();
    if undecoded > 0 {
        notes.push(format!(
            "{undecoded} trace events could not be decoded: their resets are not in the events \
             (the counters have them)"
        ));
    }
    if let Some(why) = stopped {
        notes.push(format!(
            "the trace stopped being read before the end ({why}): later resets are not in the \
             events (the counters have them)"
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_reader_could_not_read_is_said() {
        assert!(reader_notes(0, None).is_empty());
        let notes = reader_notes(3, Some("reading trace_pipe: Input/output error".into()));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("3 trace events could not be decoded"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("(reading trace_pipe: Input/output error)"),
            "{notes:?}"
        );
    }

    #[test]
    fn missing_events_are_called_lost_only_when_they_were() {
        assert_eq!(missing_events_note(0, 0, 0, false), None);
        let old = missing_events_note(3, 0, 0, true).unwrap();
        assert!(
            old.contains("before 6.10") && !old.contains("were lost ("),
            "{old}"
        );
        let late = missing_events_note(2, 0, 0, false).unwrap();
        assert!(
            late.contains("within 300 ms") && !late.contains("were lost ("),
            "{late}"
        );
        let lost = missing_events_note(2, 5, 1, true).unwrap();
        assert!(lost.contains("were lost (5 overwritten"), "{lost}");
    }
}

//! The kernel matrix: rstaudit on Debian's own kernels, booted in qemu (docs/kernels.md).
//!
//! Each kernel (default: 6.1 from bookworm and 6.12 from bookworm-backports/security; others
//! with `RSTAUDIT_KERNELS="6.1 6.12 linux-image-..."`) is fetched with `apt-get download`,
//! unpacked with `dpkg -x` under target/kernel-matrix/cache, and booted with a throwaway
//! initramfs whose init (kernel_matrix/init.sh) runs the audit, a snapshot, every lab scenario
//! and a short live packet check. The host's own kernel is the rest of the suite. A missing
//! qemu, apt or kernel package fails the test; it never skips. Each boot's console and step
//! output is kept under target/kernel-matrix/RELEASE/ and named in any failure.

mod common;
#[path = "kernel_matrix/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{Boot, Step};
use serde_json::Value;

/// target/ of this build (target/debug/deps/TEST-HASH -> target/).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

fn kernels() -> Vec<String> {
    std::env::var("RSTAUDIT_KERNELS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "6.1 6.12".to_string())
        .split([' ', ','])
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// What went wrong in one kernel (empty: nothing).
struct Checks {
    failures: Vec<String>,
    /// Which kernel, at the start of every failure.
    label: String,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(format!("{}: {}", self.label, what()));
        }
    }
}

fn step<'a>(boot: &'a Boot, c: &mut Checks, name: &str, codes: &[i32]) -> Option<&'a Step> {
    let Some(s) = boot.steps.get(name) else {
        c.check(false, || format!("step {name} did not run"));
        return None;
    };
    c.check(s.rc.is_some_and(|rc| codes.contains(&rc)), || {
        format!(
            "step {name}: exit {:?}, expected one of {codes:?}; stderr:\n{}",
            s.rc, s.stderr
        )
    });
    Some(s)
}

fn parse_json(c: &mut Checks, name: &str, text: &str) -> Option<Value> {
    // Live output has a leading "helper: ..." line.
    let start = text.find(['{', '[']).unwrap_or(0);
    match serde_json::from_str(&text[start..]) {
        Ok(v) => Some(v),
        Err(e) => {
            c.check(false, || format!("step {name}: not JSON ({e}): {text}"));
            None
        }
    }
}

/// Debian's real version from /proc/version ("... #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1 ...").
fn debian_version(proc_version: &str) -> Option<String> {
    let build = proc_version.split_once(" #")?.1;
    let mut words = build.split_whitespace();
    words.find(|w| *w == "Debian")?;
    let v = words.next()?;
    let numeric: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    Some(numeric)
}

fn check_audit(boot: &Boot, c: &mut Checks, release: &str, real: Option<&str>) {
    let shown = match real {
        Some(v)
            if !release.starts_with(&format!("{v}-")) && !release.starts_with(&format!("{v}+")) =>
        {
            format!("{release} ({v})")
        }
        _ => release.to_string(),
    };
    if let Some(s) = step(boot, c, "audit-json", &[0, 1])
        && let Some(report) = parse_json(c, "audit-json", &s.stdout)
    {
        let ns = &report["namespaces"][0];
        c.check(ns["netns"] == "host", || {
            format!("audit netns {}", ns["netns"])
        });
        c.check(ns["kernel"] == shown.as_str(), || {
            format!("audit kernel {} (expected {shown:?})", ns["kernel"])
        });
        let na = ns["not_applicable"].as_array().cloned().unwrap_or_default();
        c.check(
            na.iter().all(|r| {
                r["rule"].as_str().is_some_and(|s| !s.is_empty())
                    && r["reason"].as_str().is_some_and(|s| s.len() > 10)
            }),
            || format!("not applicable rules without a reason: {na:?}"),
        );
        let tw = na.iter().find(|r| r["rule"] == "tw-recycle");
        c.check(
            tw.is_some_and(|r| {
                r["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("does not exist on this kernel")
            }),
            || format!("tw-recycle is not applicable because the key is gone: {na:?}"),
        );
        let passed = ns["passed"].as_array().map_or(0, Vec::len);
        c.check(passed > 5, || format!("only {passed} rules passed: {ns}"));
    }
    if let Some(s) = step(boot, c, "audit-table", &[0, 1]) {
        c.check(
            s.stdout
                .contains(&format!("network namespace host (kernel {shown}, live")),
            || {
                format!(
                    "audit table header: {}",
                    s.stdout.lines().next().unwrap_or("")
                )
            },
        );
        c.check(
            s.stdout.contains("Not applicable here")
                && s.stdout
                    .contains("tw-recycle: net.ipv4.tcp_tw_recycle does not exist"),
            || {
                format!(
                    "audit table lists what is not applicable and why:\n{}",
                    s.stdout
                )
            },
        );
    }
    if let Some(s) = step(boot, c, "snapshot", &[0])
        && let Some(snap) = parse_json(c, "snapshot", &s.stdout)
    {
        c.check(snap["kernel"]["release"] == release, || {
            format!("snapshot release {}", snap["kernel"]["release"])
        });
        if let Some(v) = real {
            let got = &snap["kernel"]["version"];
            let text = format!("{}.{}.{}", got["major"], got["minor"], got["patch"]);
            c.check(text == v, || {
                format!("snapshot version {text}, /proc/version says {v}")
            });
        }
        let keys: Vec<&String> = snap["sysctls"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        c.check(keys.len() > 100, || {
            format!("only {} sysctls read", keys.len())
        });
        c.check(
            keys.iter()
                .all(|k| !k.ends_with(".base_reachable_time") && !k.ends_with(".retrans_time")),
            || "deprecated neigh keys were read".to_string(),
        );
        let sockets = snap["sockets_source"].clone();
        c.check(sockets == "sock_diag", || {
            format!("sockets read with {sockets} (sock_diag expected)")
        });
        // `auto` used the kernel's socket iterator: no note says it fell back to /proc.
        let scan: Vec<&Value> = snap["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["area"] == "scan")
            .collect();
        c.check(scan.is_empty(), || {
            format!("the owner scan fell back to /proc: {scan:?}")
        });
    }
    if let Some(s) = step(boot, c, "netns", &[0])
        && let Some(snap) = parse_json(c, "netns", &s.stdout)
    {
        c.check(snap["netns"]["name"] == "matrix", || {
            format!("under ip netns exec matrix: {}", snap["netns"])
        });
    }
}

/// The kernel's socket iterator runs on this kernel and reads what the /proc pass reads: the
/// owner and every option of each of the helper's sockets.
fn check_owner_scan(boot: &Boot, c: &mut Checks) {
    let Some(s) = step(boot, c, "owner-scan", &[0]) else {
        return;
    };
    let out = &s.stdout;
    let pid: Option<u64> = out
        .lines()
        .find_map(|l| l.strip_prefix("ready "))
        .and_then(|p| p.trim().parse().ok());
    let (Some(pid), Some(bpf_at), Some(proc_at)) = (pid, out.find("== bpf"), out.find("== proc"))
    else {
        c.check(false, || format!("step owner-scan printed:\n{out}"));
        return;
    };
    let (Some(bpf), Some(proc)) = (
        parse_json(c, "owner-scan (bpf)", &out[bpf_at..proc_at]),
        parse_json(c, "owner-scan (proc)", &out[proc_at..]),
    ) else {
        return;
    };
    let held = |snap: &Value| {
        let mut held: Vec<String> = snap["sockets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["owner"]["pid"] == pid)
            .map(|s| {
                format!(
                    "{} {}->{} fd {} {}",
                    s["state"], s["local_port"], s["remote_port"], s["owner"]["fd"], s["options"]
                )
            })
            .collect();
        held.sort();
        held
    };
    let (by_kernel, by_proc) = (held(&bpf), held(&proc));
    c.check(by_kernel.len() == 7, || {
        format!("owner-scan: {} sockets of the helper by the kernel's iterator (7 expected): {by_kernel:#?}", by_kernel.len())
    });
    c.check(by_kernel == by_proc, || {
        format!("owner-scan: the iterator read {by_kernel:#?}\nthe /proc pass read {by_proc:#?}")
    });
    c.check(
        by_kernel.iter().any(|h| h.contains("\"keepidle\":33")),
        || format!("owner-scan: no socket with TCP_KEEPIDLE 33: {by_kernel:#?}"),
    );
}

/// Scenarios whose verdict does not depend on the kernel's version from 6.1 on.
const ALWAYS_CONFIRMED: [&str; 4] = [
    "closed-port",
    "unread-close",
    "linger-zero",
    "write-after-close",
];

fn check_lab(boot: &Boot, c: &mut Checks) {
    if let Some(s) = step(boot, c, "lab", &[0, 1])
        && let Some(lab) = parse_json(c, "lab", &s.stdout)
    {
        let scenarios = lab["scenarios"].as_array().cloned().unwrap_or_default();
        c.check(scenarios.len() >= 9, || {
            format!("{} scenarios ran: {lab}", scenarios.len())
        });
        for sc in &scenarios {
            let verdict = sc["verdict"].as_str().unwrap_or("");
            c.check(
                [
                    "confirmed",
                    "not-reproduced",
                    "not-reproducible-on-this-kernel",
                    "reproduced-but-fix-did-not-help",
                ]
                .contains(&verdict),
                || format!("scenario {} gave verdict {verdict:?}: {sc}", sc["scenario"]),
            );
        }
        let verdict = |name: &str| {
            scenarios
                .iter()
                .find(|s| s["scenario"] == name)
                .map(|s| s["verdict"].as_str().unwrap_or("").to_string())
        };
        for name in ALWAYS_CONFIRMED {
            let v = verdict(name);
            c.check(v.as_deref() == Some("confirmed"), || {
                format!("lab {name}: {v:?}")
            });
        }
        c.check(
            verdict("tw-recycle").as_deref() == Some("not-reproducible-on-this-kernel"),
            || "lab tw-recycle is not reproducible on a kernel without the key".to_string(),
        );
    }
    if let Some(s) = step(boot, c, "lab-left", &[0]) {
        c.check(s.stdout.trim().is_empty(), || {
            format!("the lab left this behind:\n{}", s.stdout)
        });
    }
}

/// The live check names the helper as the process behind its resets, reading the trace both
/// ways (binary records and text). On kernels before 6.10 tcp_send_reset has no reason field:
/// the check must say that reasons are unavailable (without claiming events were lost).
fn check_live(boot: &Boot, c: &mut Checks, reasons: bool) {
    for reader in ["binary", "text"] {
        check_live_with(boot, c, reasons, reader);
    }
    if let Some(s) = step(boot, c, "live-left", &[0]) {
        c.check(s.stdout.trim().is_empty(), || {
            format!("the live check left this behind:\n{}", s.stdout)
        });
    }
}

fn check_live_with(boot: &Boot, c: &mut Checks, reasons: bool, reader: &str) {
    let name = format!("live-{reader}");
    let Some(s) = step(boot, c, &name, &[0]) else {
        return;
    };
    let helper: Option<u64> = s
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("helper: ready "))
        .and_then(|p| p.trim().parse().ok());
    c.check(helper.is_some(), || {
        format!("the helper did not start: {}", s.stdout)
    });
    let Some(report) = parse_json(c, &name, &s.stdout) else {
        return;
    };
    c.check(report["tracing"]["reader"] == reader, || {
        format!(
            "{name}: the trace was not read as {reader}: {}",
            report["tracing"]
        )
    });
    // Every line or record of this kernel's reset events decodes.
    c.check(report["tracing"]["undecoded"] == 0, || {
        format!("{name}: trace events not decoded: {}", report["tracing"])
    });
    let tag = format!("{name}: ");
    let events = report["events"].as_array().cloned().unwrap_or_default();
    let sent: Vec<&Value> = events.iter().filter(|e| e["direction"] == "sent").collect();
    c.check(sent.len() >= 3, || {
        format!("{} resets sent: {report}", sent.len())
    });
    let by_helper = sent
        .iter()
        .filter(|e| e["owner"]["pid"].as_u64() == helper)
        .count();
    // Before 6.10, attributing a sent reset to its process depends on live mode matching
    // tcp_send_reset events that have no reason field.
    if reasons {
        c.check(by_helper >= 3, || {
            format!("{tag}{by_helper} resets attributed to the helper (pid {helper:?}): {report:#}")
        });
    } else {
        // Before 6.10 the kernel traces a reset only when it is sent for a full socket: the
        // closed port's and the TIME_WAIT answer's resets have no event at all (seen on
        // Debian's 6.1.192: 4 resets, 2 events). Every reset that has its event (its state
        // is known) is the helper's, at least the two of its own close() calls, and the
        // others are counted as without an event, not as lost.
        let with_event: Vec<&&Value> = sent.iter().filter(|e| e.get("state").is_some()).collect();
        c.check(
            with_event.len() >= 2
                && with_event
                    .iter()
                    .all(|e| e["owner"]["pid"].as_u64() == helper),
            || {
                format!(
                    "{tag}{by_helper} resets attributed to the helper (pid {helper:?}), {} with a trace event: {report:#}",
                    with_event.len()
                )
            },
        );
        let matching = &report["tracing"]["matching"];
        c.check(
            matching["send_matched"].as_u64() == Some(with_event.len() as u64)
                && matching["sent_without_event"].as_u64()
                    == Some((sent.len() - with_event.len()) as u64),
            || format!("{tag}events and resets do not add up: {matching}"),
        );
        c.check(
            sent.iter().filter(|e| e.get("state").is_some()).all(|e| {
                e["basis"]
                    .as_str()
                    .is_some_and(|b| b.contains("before 6.10"))
            }),
            || {
                format!(
                    "{tag}a reset with its event is not said to lack only the reason: {report:#}"
                )
            },
        );
    }
    c.check(report["tracing"]["reasons"] == reasons, || {
        format!("tracing.reasons should be {reasons}: {}", report["tracing"])
    });
    let notes: Vec<String> = report["notes"]
        .as_array()
        .map(|n| n.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default();
    if reasons {
        // Each kind of reset the helper makes, with its reason, cause and process.
        for (reason, cause) in [
            ("NO_SOCKET", "no-socket"),
            ("TCP_ABORT_ON_CLOSE", "unread-close"),
            ("TCP_STATE", "linger-zero"),
            ("TCP_TIMEWAIT_SOCKET", "data-after-close"),
        ] {
            let found = sent.iter().find(|e| e["reason"] == reason);
            c.check(
                found.is_some_and(|e| e["cause"] == cause && e["owner"]["pid"].as_u64() == helper),
                || format!("{tag}no {reason} ({cause}) reset by the helper: {report:#}"),
            );
        }
    } else {
        c.check(sent.iter().all(|e| e.get("reason").is_none()), || {
            "reasons shown on a kernel without them".to_string()
        });
        // Depends on live mode's handling of pre-6.10 kernels (tcp_send_reset without the
        // reason field): the note below is the one it prints there.
        c.check(
            notes
                .iter()
                .any(|n| n.contains("this kernel does not report reasons (before 6.10)")),
            || format!("{tag}no note that reasons are unavailable: {notes:?}"),
        );
    }
    // The claim of loss reads "trace events were lost (N overwritten, N dropped) ..."; a note
    // that says events are missing by the kernel's design ends "none were lost".
    c.check(
        !notes
            .iter()
            .any(|n| n.contains("events were lost") || n.contains("lost (")),
        || format!("{tag}a note claims lost events: {notes:?}"),
    );
    if !reasons {
        let without = report["tracing"]["matching"]["sent_without_event"]
            .as_u64()
            .unwrap_or(0);
        c.check(
            without == 0
                || notes.iter().any(|n| {
                    n.contains(&format!("{without} resets sent here have no trace event"))
                        && n.contains("none were lost")
                }),
            || format!("{tag}the resets without an event are not explained: {notes:?}"),
        );
    }
}

/// No kernel log line about rstaudit from any of the runs (deprecated sysctls, warnings).
fn check_kernel_log(boot: &Boot, c: &mut Checks) {
    let (Some(before), Some(after)) = (
        step(boot, c, "dmesg-before", &[0]),
        step(boot, c, "dmesg-after", &[0]),
    ) else {
        return;
    };
    let about = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("rstaudit"))
            .map(|l| l.split_once(']').map_or(l, |(_, r)| r).to_string())
            .collect()
    };
    let old = about(&before.stdout);
    let new: Vec<String> = about(&after.stdout)
        .into_iter()
        .filter(|l| !old.contains(l))
        .collect();
    c.check(new.is_empty(), || format!("new kernel log lines: {new:?}"));
}

fn run_kernel(name: &str) -> Result<String, String> {
    let package = harness::resolve(name);
    let base = target_dir().join("kernel-matrix");
    let kernel = harness::fetch(&base.join("cache"), &package);
    let work = base.join(&kernel.release);
    std::fs::create_dir_all(&work).unwrap();
    let rstaudit = Path::new(env!("CARGO_BIN_EXE_rstaudit"));
    let helper = common::sockhelper_path();
    let initrd = harness::initramfs(
        &kernel,
        &work,
        &[("rstaudit", rstaudit), ("sockhelper", &helper)],
    );
    let boot = harness::boot(&kernel, &initrd, &work, Duration::from_secs(420));
    let mut c = Checks {
        failures: Vec::new(),
        label: format!("kernel {} ({package})", kernel.release),
    };
    c.check(boot.done, || {
        format!(
            "the guest did not finish its steps (ran: {:?})",
            boot.steps.keys().collect::<Vec<_>>()
        )
    });
    let proc_version = boot
        .steps
        .get("kernel")
        .map(|s| s.stdout.clone())
        .unwrap_or_default();
    c.check(
        proc_version.starts_with(&format!("{}\n", kernel.release)),
        || format!("booted {proc_version:?}"),
    );
    let real = debian_version(&proc_version);
    step(&boot, &mut c, "modules", &[0]);
    if let Some(s) = boot.steps.get("modules") {
        c.check(!s.stdout.contains("failed"), || {
            format!("modules: {}", s.stdout)
        });
    }
    check_audit(&boot, &mut c, &kernel.release, real.as_deref());
    check_owner_scan(&boot, &mut c);
    check_lab(&boot, &mut c);
    let (major, minor) = {
        let mut n = kernel
            .release
            .split(['.', '-', '+'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    };
    check_live(&boot, &mut c, (major, minor) >= (6, 10));
    check_kernel_log(&boot, &mut c);
    let summary = format!(
        "{}: booted with {} in {:.0} s; console {}, steps {}",
        c.label,
        boot.accel,
        boot.seconds,
        boot.console.display(),
        boot.data.display()
    );
    if c.failures.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}\n  {}", c.failures.join("\n  ")))
    }
}

#[test]
fn rstaudit_on_debian_kernels() {
    common::require_root();
    let names = kernels();
    // The kernels boot side by side (each guest mostly waits on timers).
    let results: Vec<(String, std::thread::Result<Result<String, String>>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .iter()
                .map(|name| (name.clone(), scope.spawn(move || run_kernel(name))))
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| (name, h.join()))
                .collect()
        });
    let mut failed = Vec::new();
    for (name, result) in results {
        match result {
            Ok(Ok(summary)) => eprintln!("ok {summary}"),
            Ok(Err(report)) => failed.push(report),
            Err(panic) => failed.push(format!(
                "kernel {name}: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }
    assert!(failed.is_empty(), "kernel matrix:\n{}", failed.join("\n"));
}

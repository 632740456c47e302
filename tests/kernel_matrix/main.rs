//! The kernel matrix: rstaudit on Debian's own kernels, booted in qemu (docs/kernels.md).
//!
//! Each kernel (default: 6.1 from bookworm and 6.12 from bookworm-backports/security; others
//! with `RSTAUDIT_KERNELS="6.1 6.12 linux-image-..."`) is fetched with `apt-get download`,
//! unpacked with `dpkg -x` under target/kernel-matrix/cache, and booted with a throwaway
//! initramfs whose init (kernel_matrix/init.sh) runs the audit, a snapshot, every lab scenario
//! and a short live packet check. The host's own kernel is the rest of the suite. A missing
//! qemu, apt or kernel package fails the test; it never skips. Each boot's console and step
//! output is kept under target/kernel-matrix/RELEASE/ and named in any failure.

// The integration crate's helpers (tests/it/common); the matrix uses a few of them.
#[allow(dead_code)]
#[path = "../it/common/mod.rs"]
mod common;
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
        .unwrap_or_else(|| "5.10 6.1 6.12".to_string())
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
    // Live output has a leading "helper: ..." line: the JSON starts a line of its own.
    let start = if text.starts_with(['{', '[']) {
        0
    } else {
        text.find("\n{")
            .or_else(|| text.find("\n["))
            .map_or(0, |i| i + 1)
    };
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

fn check_audit(boot: &Boot, c: &mut Checks, release: &str, real: Option<&str>, iterator: bool) {
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
        // `auto` used the kernel's socket iterator (5.11 and later): no note says it fell
        // back to /proc. Before 5.11 one note says the /proc pass ran, and why.
        let scan: Vec<&Value> = snap["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["area"] == "scan")
            .collect();
        if iterator {
            c.check(scan.is_empty(), || {
                format!("the owner scan fell back to /proc: {scan:?}")
            });
        } else {
            c.check(
                scan.len() == 1
                    && scan[0]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("/proc") && m.contains("needs Linux 5.11")),
                || format!("before 5.11 one note says the /proc pass ran and why: {scan:?}"),
            );
        }
    }
    if let Some(s) = step(boot, c, "netns", &[0])
        && let Some(snap) = parse_json(c, "netns", &s.stdout)
    {
        c.check(snap["netns"]["name"] == "matrix", || {
            format!("under ip netns exec matrix: {}", snap["netns"])
        });
    }
}

/// The kernel's socket iterator runs on this kernel (5.11 and later) and reads what the /proc
/// pass reads: the owner and every option of each of the helper's sockets. Before 5.11 the
/// iterator is refused, saying why, and the /proc pass reads them alone.
fn check_owner_scan(boot: &Boot, c: &mut Checks, iterator: bool) {
    let Some(s) = step(boot, c, "owner-scan", &[0]) else {
        return;
    };
    let out = &s.stdout;
    let pid: Option<u64> = out
        .lines()
        .find_map(|l| l.strip_prefix("ready "))
        .and_then(|p| p.trim().parse().ok());
    let (Some(pid), Some(bpf_at), Some(err_at), Some(proc_at)) = (
        pid,
        out.find("== bpf "),
        out.find("== bpf-error"),
        out.find("== proc"),
    ) else {
        c.check(false, || format!("step owner-scan printed:\n{out}"));
        return;
    };
    let bpf_rc = out[bpf_at + 7..].split_whitespace().next().unwrap_or("");
    let Some(proc) = parse_json(c, "owner-scan (proc)", &out[proc_at..]) else {
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
    let by_proc = held(&proc);
    c.check(by_proc.len() == 7, || {
        format!(
            "owner-scan: {} sockets of the helper by the /proc pass (7 expected): {by_proc:#?}",
            by_proc.len()
        )
    });
    c.check(
        by_proc.iter().any(|h| h.contains("\"keepidle\":33")),
        || format!("owner-scan: no socket with TCP_KEEPIDLE 33: {by_proc:#?}"),
    );
    if !iterator {
        let why = &out[err_at..proc_at];
        c.check(bpf_rc == "2" && why.contains("5.11"), || {
            format!("owner-scan: before 5.11 --owner-scan bpf must be refused naming 5.11: exit {bpf_rc}, {why}")
        });
        return;
    }
    let Some(bpf) = parse_json(c, "owner-scan (bpf)", &out[bpf_at..err_at]) else {
        return;
    };
    let by_kernel = held(&bpf);
    c.check(by_kernel == by_proc, || {
        format!("owner-scan: the iterator read {by_kernel:#?}\nthe /proc pass read {by_proc:#?}")
    });
}

/// Scenarios whose verdict does not depend on the kernel's version from 6.1 on.
const ALWAYS_CONFIRMED: [&str; 4] = [
    "closed-port",
    "unread-close",
    "linger-zero",
    "write-after-close",
];

/// The lab on the host's own kernel: the verdict of each scenario, which every kernel must give.
fn host_lab() -> std::collections::BTreeMap<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rstaudit"))
        .args(["packet-check", "--lab", "--all", "--format", "json"])
        .output()
        .expect("rstaudit");
    let lab: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the host's lab gave no JSON ({e}): {out:?}"));
    lab["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["scenario"].as_str().unwrap_or("").to_string(),
                s["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn check_lab(boot: &Boot, c: &mut Checks, host: &std::collections::BTreeMap<String, String>) {
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
        // Every scenario gives the host's verdict.
        for (name, want) in host {
            let got = verdict(name);
            c.check(got.as_deref() == Some(want.as_str()), || {
                format!("lab {name}: {got:?} here, {want:?} on the host's kernel")
            });
        }
    }
    if let Some(s) = step(boot, c, "lab-left", &[0]) {
        c.check(s.stdout.trim().is_empty(), || {
            format!("the lab left this behind:\n{}", s.stdout)
        });
    }
}

/// What the live check answered for the resets of `resetkinds`: one line per sent reset,
/// `FAMILY DIRECTION CAUSE OWNER`, sorted (the owner by name: pids differ between runs).
fn answers(report: &Value) -> Vec<String> {
    let mut lines: Vec<String> = report["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let family = if e["src"].as_str().unwrap_or("").starts_with('[') {
                "ipv6"
            } else {
                "ipv4"
            };
            format!(
                "{family} {} {} {}",
                e["direction"].as_str().unwrap_or("?"),
                e["cause"].as_str().unwrap_or("?"),
                e["owner"]["comm"].as_str().unwrap_or("-")
            )
        })
        .collect();
    lines.sort();
    lines
}

/// The same program under the live check on the host's own kernel, in a namespace of the
/// test's own, started as in the guest (the helper first, its listeners in the first socket
/// table): the answers every kernel must give.
fn host_answers() -> Vec<String> {
    use std::io::{BufRead, Write};
    let ns = common::Netns::new("kmhost");
    let mut helper = ns
        .command(common::example_path("resetkinds"))
        .arg("--wait-line")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("resetkinds");
    let mut helper_out = std::io::BufReader::new(helper.stdout.take().unwrap());
    let mut line = String::new();
    helper_out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready "), "resetkinds on the host: {line}");
    let mut check = std::process::Command::new(env!("CARGO_BIN_EXE_rstaudit"))
        .args([
            "packet-check",
            "--netns",
            &ns.name,
            "--duration",
            "6",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rstaudit");
    let mut err = std::io::BufReader::new(check.stderr.take().unwrap());
    while !line.contains("watching TCP resets") {
        line.clear();
        let n = err.read_line(&mut line).unwrap();
        assert!(n > 0, "packet-check on the host did not start watching");
    }
    writeln!(helper.stdin.take().unwrap(), "go").unwrap();
    line.clear();
    helper_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "done", "resetkinds on the host");
    assert!(helper.wait().unwrap().success());
    let report = check.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).expect("host packet-check JSON");
    let got = answers(&report);
    assert_eq!(got.len(), 8, "the host's kernel saw {got:#?} in {report:#}");
    got
}

/// The live check gives, on this kernel, the host's cause, owner and direction for every reset
/// of `resetkinds`, reading the trace both ways, and with `--cause-source derived`; says how
/// each cause was found; and leaves nothing behind.
fn check_live(boot: &Boot, c: &mut Checks, reasons: bool, host: &[String]) {
    for (name, reader, derived) in [
        ("live-binary", "binary", false),
        ("live-text", "text", false),
        ("live-derived", "binary", true),
    ] {
        check_live_with(boot, c, reasons, host, name, reader, derived);
    }
    if let Some(s) = step(boot, c, "live-left", &[0]) {
        c.check(s.stdout.trim().is_empty(), || {
            format!("the live check left this behind:\n{}", s.stdout)
        });
    }
}

fn check_live_with(
    boot: &Boot,
    c: &mut Checks,
    reasons: bool,
    host: &[String],
    name: &str,
    reader: &str,
    derived: bool,
) {
    let Some(s) = step(boot, c, name, &[0]) else {
        return;
    };
    c.check(
        s.stdout.contains("helper: ready") && s.stdout.contains(" done"),
        || format!("{name}: the helper did not run through: {}", s.stdout),
    );
    let Some(report) = parse_json(c, name, &s.stdout) else {
        return;
    };
    let tag = format!("{name}: ");
    c.check(report["tracing"]["reader"] == reader, || {
        format!(
            "{tag}the trace was not read as {reader}: {}",
            report["tracing"]
        )
    });
    c.check(report["tracing"]["undecoded"] == 0, || {
        format!("{tag}trace events not decoded: {}", report["tracing"])
    });
    let got = answers(&report);
    c.check(got == host, || {
        format!("{tag}answers differ from the host's kernel:\n  here: {got:#?}\n  host: {host:#?}\n{report:#}")
    });
    // How each cause was found: the kernel's reason where it names every cause (6.12 and
    // later) and nothing else is asked for; derived from the probed reset sites otherwise.
    let expect = if reasons && !derived {
        "kernel-reason"
    } else {
        "derived"
    };
    let events = report["events"].as_array().cloned().unwrap_or_default();
    for e in &events {
        c.check(e["cause_source"] == expect, || {
            format!(
                "{tag}cause found as {} (expected {expect}): {e:#}",
                e["cause_source"]
            )
        });
        c.check(e["basis"].as_str().is_some_and(|b| b.len() > 20), || {
            format!("{tag}no basis: {e:#}")
        });
        if expect == "derived" {
            // A derived cause is never shown as the kernel's own reason.
            c.check(
                e.get("reason").is_none() && e["derived_reason"].is_string(),
                || format!("{tag}a derived cause shown as the kernel's reason: {e:#}"),
            );
            // The kernel's stack comes with the resets whose callers tell causes apart: the
            // active ones (and a listener's).
            let wants_stack =
                e["site"]["function"] == "tcp_send_active_reset" || e["state"] == "TCP_LISTEN";
            c.check(
                e["site"].is_object() && e["site"]["stack"] == wants_stack,
                || format!("{tag}no reset site, or its stack is not as expected: {e:#}"),
            );
        }
    }
    c.check(report["tracing"]["sites"] == (expect == "derived"), || {
        format!("{tag}tracing.sites: {}", report["tracing"])
    });
    let notes: Vec<String> = report["notes"]
        .as_array()
        .map(|n| n.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default();
    c.check(
        !notes
            .iter()
            .any(|n| n.contains("events were lost") || n.contains("lost (")),
        || format!("{tag}a note claims lost events: {notes:?}"),
    );
    c.check(
        !notes.iter().any(|n| n.contains("cannot be probed")),
        || format!("{tag}the reset sites could not be probed: {notes:?}"),
    );
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

fn run_kernel(name: &str, host: &Host) -> Result<String, String> {
    let base = target_dir().join("kernel-matrix");
    let apt = harness::apt_for(&harness::series_of(name), &base);
    let package = harness::resolve(name, &apt);
    let kernel = harness::fetch(&base.join("cache"), &package, &apt);
    let work = base.join(&kernel.release);
    std::fs::create_dir_all(&work).unwrap();
    let rstaudit = Path::new(env!("CARGO_BIN_EXE_rstaudit"));
    let helper = common::sockhelper_path();
    let kinds = common::example_path("resetkinds");
    let initrd = harness::initramfs(
        &kernel,
        &work,
        &[
            ("rstaudit", rstaudit),
            ("sockhelper", &helper),
            ("resetkinds", &kinds),
        ],
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
    let (major, minor) = {
        let mut n = kernel
            .release
            .split(['.', '-', '+'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    };
    let iterator = (major, minor) >= (5, 11);
    check_audit(&boot, &mut c, &kernel.release, real.as_deref(), iterator);
    check_owner_scan(&boot, &mut c, iterator);
    check_lab(&boot, &mut c, &host.lab);
    check_live(&boot, &mut c, (major, minor) >= (6, 12), &host.live);
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

/// What the host's own kernel answers, which every kernel must answer too.
struct Host {
    live: Vec<String>,
    lab: std::collections::BTreeMap<String, String>,
}

#[test]
fn rstaudit_on_debian_kernels() {
    common::require_root();
    let names = kernels();
    let host = Host {
        live: host_answers(),
        lab: host_lab(),
    };
    let host = &host;
    // The kernels boot side by side (each guest mostly waits on timers).
    let results: Vec<(String, std::thread::Result<Result<String, String>>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .iter()
                .map(|name| (name.clone(), scope.spawn(move || run_kernel(name, host))))
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

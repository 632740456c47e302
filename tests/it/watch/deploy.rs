//! The deployment files of deploy/, run for real: the systemd unit checked by
//! `systemd-analyze` and its capabilities given to a real `watch` with setpriv (this machine
//! has no systemd as PID 1); the image built and run with rootful podman; the DaemonSet's pod
//! template played as a Pod with `podman kube play` (podman 4.3 plays Pods, not DaemonSets).
//! Every container, pod, image and directory made is removed on drop, however a test ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::support::{Watch, free_port, get, run, sum, tracing_left_by, wait_for};
use crate::common::{Netns, require_root};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rstaudit"))
}

/// The words of every `KEY=` line of the unit (a key given twice adds up, as systemd reads
/// the capability and filter lists).
fn unit_values(key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(deploy("rstaudit-watch.service")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect()
}

/// The unit's capabilities (`CapabilityBoundingSet=`), as `CAP_NAME`.
fn unit_caps() -> Vec<String> {
    let caps = unit_values("CapabilityBoundingSet");
    assert!(!caps.is_empty(), "the unit names its capabilities");
    assert!(caps.iter().all(|c| c.starts_with("CAP_")), "{caps:?}");
    caps
}

/// The mask of these capabilities, numbered as `setpriv --list-caps` lists them (in order).
fn mask(caps: &[String]) -> u64 {
    let names = run(Command::new("setpriv").arg("--list-caps"));
    let names: Vec<&str> = names.lines().collect();
    caps.iter()
        .map(|c| {
            let name = c.trim_start_matches("CAP_").to_ascii_lowercase();
            let bit = names
                .iter()
                .position(|n| *n == name)
                .unwrap_or_else(|| panic!("{c}: not a capability setpriv knows"));
            1u64 << bit
        })
        .fold(0, |a, b| a | b)
}

/// The effective and bounding capabilities of process `pid`.
fn caps_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {status}"));
        u64::from_str_radix(v.trim(), 16).unwrap()
    };
    (field("CapEff:"), field("CapBnd:"))
}

fn ns_of(pid: u32, kind: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap()
}

/// Wait until `addr` answers /metrics with the build info and /healthz with 200.
fn wait_metrics(addr: std::net::SocketAddr, what: &str, log: impl Fn() -> String) -> String {
    wait_for(what, Duration::from_secs(180), || {
        if std::net::TcpStream::connect(addr).is_err() {
            return Err(format!("nothing listens on {addr} yet\n{}", log()));
        }
        let (status, _, body) = get(addr, "/metrics", None);
        if status != 200 || !body.contains("rstaudit_build_info") {
            return Err(format!("/metrics: {status}\n{body}"));
        }
        let (health, _, said) = get(addr, "/healthz", None);
        if health != 200 {
            return Err(format!("/healthz: {health} {said}\n{}", log()));
        }
        Ok(body)
    })
}

/// Whether a capability set as `systemd-analyze security` writes it (`CAP_SYS_ADMIN`,
/// `CAP_NET_(BIND_SERVICE|BROADCAST|RAW)`) holds `cap`.
fn names_cap(set: &str, cap: &str) -> bool {
    match set.split_once('(') {
        None => set == cap,
        Some((prefix, rest)) => rest
            .trim_end_matches(')')
            .split('|')
            .any(|alt| format!("{prefix}{alt}") == cap),
    }
}

#[test]
fn the_unit_passes_systemd_analyze_verify_without_a_remark_and_scores_ok_in_security() {
    require_root();
    // A root of the unit's own: the unit, the programs its Exec lines name (the binary under
    // test linked there), and the system's units it is ordered after and wanted by.
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::copy(
        deploy("rstaudit-watch.service"),
        units.join("rstaudit-watch.service"),
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
    run(Command::new("cp")
        .args(["-a", "/lib/systemd/system"])
        .arg(root.path().join("usr/lib/systemd/system")));
    for key in ["ExecStart", "ExecReload"] {
        let program = unit_values(key).into_iter().next().expect(key);
        let from = if program.ends_with("/rstaudit") {
            binary()
        } else {
            PathBuf::from(&program)
        };
        let to = root.path().join(program.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("rstaudit-watch.service")
        .output()
        .expect("systemd-analyze (Debian package systemd, installed by test.sh)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys, groups and families are only warnings (exit 0): none may be said.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(format!("--root={}", root.path().display()))
        .arg("rstaudit-watch.service")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for rstaudit-watch.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // Measured 3.3 ("OK"): root with four capabilities and the host's network is most of it.
    assert!(level <= 4.0, "exposure {level}:\n{text}");
    // The service keeps every capability the unit names: no other setting takes one away (as
    // ProtectKernelLogs= takes CAP_SYSLOG). A line `✗ CapabilityBoundingSet=~CAP_X` (or a
    // group of them, `~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)`) says it is kept.
    for cap in unit_caps() {
        let line = text
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|w| w.strip_prefix("CapabilityBoundingSet=~"))
                    .is_some_and(|set| names_cap(set, &cap))
            })
            .unwrap_or_else(|| panic!("{cap}: no line in:\n{text}"));
        assert!(line.starts_with('✗'), "{cap} is taken away: {line}");
    }
}

#[test]
fn watch_with_exactly_the_units_capabilities_serves_metrics_audits_and_sees_a_reset_in_a_new_namespace()
 {
    let caps = unit_caps();
    assert_eq!(unit_values("NoNewPrivileges"), ["yes"]);
    assert!(unit_values("User").is_empty(), "the unit runs as root");
    // systemd runs the service as root with this bounding set and no inheritable or ambient
    // capabilities: what root execs then holds exactly the bounding set.
    let ambient = unit_values("AmbientCapabilities");
    assert!(ambient.is_empty(), "{ambient:?}");
    let bounding: String = caps
        .iter()
        .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    let mut setpriv = Command::new("setpriv");
    setpriv
        .args(["--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all"])
        .arg(format!("--bounding-set=-all{bounding}"))
        .arg("--")
        .arg(binary())
        .env("RSTAUDIT_CONFIG", "");
    let mut w = Watch::start_as(setpriv, &["--audit-every", "10s"]);
    let pid = w.pid();
    let want = mask(&caps);
    assert_eq!(caps_of(pid), (want, want), "{caps:?}");

    let ns = Netns::new("wdeploy");
    w.wait_line(
        &format!("watching namespace {}", ns.name),
        Duration::from_secs(30),
    );
    // Resets (no listener on port 9) and a socket whose option (SO_LINGER {1, 0}) the audit
    // must read from its owner: the capture, the trace, the owners and the options at once.
    let comm = "wdeployhelper";
    let _helper = ns.helper_named(
        comm,
        &["listen:7000:16", "linger0:7000", "refused:9", "refused:9"],
    );
    wait_for(
        "the resets, with their owner, in the metrics",
        Duration::from_secs(60),
        || {
            let text = w.metrics();
            let n = sum(
                &text,
                "rstaudit_resets_total",
                &[("netns", &ns.name), ("cause", "no-socket"), ("comm", comm)],
            );
            (n == 2.0).then_some(()).ok_or(format!("{n}\n{text}"))
        },
    );
    // An audit after the helper started (the one made when the namespace was first watched
    // may have come before it; then every 10 s) reads the option from its owner.
    wait_for(
        "the linger-zero finding of the audit",
        Duration::from_secs(180),
        || {
            let text = w.metrics();
            let n = sum(
                &text,
                "rstaudit_findings",
                &[("netns", &ns.name), ("rule", "linger-zero")],
            );
            (n >= 1.0)
                .then_some(())
                .ok_or(format!("{n}\n{}", w.stderr()))
        },
    );
    let (health, _, body) = get(w.addr, "/healthz", None);
    assert_eq!(health, 200, "{body}");
    let (status, err) = w.stop();
    assert!(status.success(), "{err}");
    assert_eq!(tracing_left_by(pid), (false, vec![]), "{err}");
}

/// An image built from deploy/Containerfile for one test, and what was run from it.
struct Image {
    name: String,
    containers: Vec<String>,
    pods: Vec<String>,
    context: tempfile::TempDir,
}

impl Image {
    fn build(tag: &str) -> Image {
        require_root();
        let context = tempfile::tempdir().unwrap();
        run(Command::new(deploy("image-root.sh"))
            .arg(binary())
            .arg(context.path()));
        let name = format!("localhost/rstaudit-deploy:{tag}-{}", std::process::id());
        let image = Image {
            name,
            containers: Vec::new(),
            pods: Vec::new(),
            context,
        };
        run(Command::new("podman")
            .args(["--runtime", "runc", "build", "-q", "-f"])
            .arg(deploy("Containerfile"))
            .args(["-t", &image.name])
            .arg(image.context.path()));
        image
    }

    fn logs(name: &str) -> String {
        let out = Command::new("podman").args(["logs", name]).output();
        out.map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        for p in &self.pods {
            let _ = Command::new("podman")
                .args(["pod", "rm", "-f", "-t", "0", p])
                .output();
        }
        for c in &self.containers {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", c])
                .output();
        }
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.name])
            .output();
    }
}

#[test]
fn the_image_builds_with_podman_and_runs_watch_with_the_units_capabilities() {
    let mut image = Image::build("image");
    let entry = run(Command::new("podman").args([
        "image",
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}}",
        &image.name,
    ]));
    assert_eq!(entry, r#"["/usr/bin/rstaudit","watch"]"#);
    let caps: Vec<String> = unit_caps()
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect();
    let addr = free_port();
    let name = format!("rstaudit-deploy-image-{}", std::process::id());
    image.containers.push(name.clone());
    // As the Containerfile's comment runs it, on a port of the test's own on loopback.
    run(Command::new("podman")
        .args(["--runtime", "runc", "run", "-d", "--name", &name])
        .args(["--pid", "host", "--network", "host", "--cap-drop", "all"])
        .arg(format!("--cap-add={}", caps.join(",")))
        .args(["--security-opt", "no-new-privileges", "--read-only"])
        .args(["-v", "/sys/kernel/tracing:/sys/kernel/tracing"])
        .args(["-v", "/run/netns:/run/netns:ro,rslave"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .arg(&image.name)
        .args(["--listen", &addr.to_string(), "--events", "-"]));
    wait_metrics(addr, "the image's /metrics", || Image::logs(&name));
    let pid: u32 = run(Command::new("podman").args(["inspect", "-f", "{{.State.Pid}}", &name]))
        .parse()
        .unwrap();
    let want = mask(&unit_caps());
    assert_eq!(caps_of(pid).0, want, "{}", Image::logs(&name));
    // podman stop sends SIGTERM: a clean exit that removes the tracing instance.
    run(Command::new("podman").args(["stop", "-t", "30", &name]));
    let code = run(Command::new("podman").args(["inspect", "-f", "{{.State.ExitCode}}", &name]));
    assert_eq!(code, "0", "{}", Image::logs(&name));
    assert_eq!(tracing_left_by(pid), (false, vec![]));
}

#[test]
fn the_daemonsets_pod_template_plays_as_a_pod_with_podman_and_answers_metrics() {
    let text = std::fs::read_to_string(deploy("daemonset.yaml")).unwrap();
    let set: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(set["kind"], "DaemonSet");
    let template = &set["spec"]["template"];
    let spec = &template["spec"];
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["hostNetwork"], true);
    let container = &spec["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    let added: Vec<String> = security["capabilities"]["add"]
        .as_sequence()
        .expect("capabilities.add")
        .iter()
        .map(|c| format!("CAP_{}", c.as_str().unwrap()))
        .collect();
    let mut unit = unit_caps();
    unit.sort();
    let mut sorted = added.clone();
    sorted.sort();
    assert_eq!(sorted, unit, "the DaemonSet adds the unit's capabilities");

    let mut image = Image::build("pod");
    // The template as a Pod: its metadata and spec, with the test's image and its own port on
    // loopback in place of 0.0.0.0:9945.
    let addr = free_port();
    let pod_name = format!("rstaudit-deploy-pod-{}", std::process::id());
    let mut pod_spec = spec.clone();
    let c = &mut pod_spec["containers"][0];
    c["image"] = image.name.clone().into();
    let args: Vec<serde_yaml::Value> = c["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| {
            if a == "0.0.0.0:9945" {
                addr.to_string().into()
            } else {
                a.clone()
            }
        })
        .collect();
    assert!(
        args.iter().any(|a| *a == addr.to_string().as_str()),
        "{args:?}"
    );
    c["args"] = args.into();
    let mut metadata = template["metadata"].clone();
    metadata["name"] = pod_name.clone().into();
    let pod = serde_yaml::to_string(&serde_yaml::Mapping::from_iter([
        ("apiVersion".into(), "v1".into()),
        ("kind".into(), "Pod".into()),
        ("metadata".into(), metadata),
        ("spec".into(), pod_spec),
    ]))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(&manifest, pod).unwrap();
    // What podman 4.3 takes from its configuration, not from the manifest: runc (crun refuses
    // this machine's hybrid cgroups), explicit limits, and the host's PID namespace (its kube
    // play ignores hostPID, asserted above as the manifest's).
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\npidns = \"host\"\n\n[engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    image.pods.push(pod_name.clone());
    run(Command::new("podman")
        .env("CONTAINERS_CONF", &conf)
        .args(["kube", "play"])
        .arg(&manifest));
    let container = format!("{pod_name}-watch");
    wait_metrics(addr, "the pod's /metrics", || Image::logs(&container));
    let pid: u32 =
        run(Command::new("podman").args(["inspect", "-f", "{{.State.Pid}}", &container]))
            .parse()
            .unwrap();
    let me = std::process::id();
    assert_eq!(
        ns_of(pid, "pid"),
        ns_of(me, "pid"),
        "the host's PID namespace"
    );
    assert_eq!(ns_of(pid, "net"), ns_of(me, "net"), "the host's network");
    assert_eq!(caps_of(pid).0, mask(&unit_caps()));
    // readOnlyRootFilesystem: the container's root is mounted read-only.
    let root = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let slash = root
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("the root mount");
    assert!(
        slash.split_whitespace().nth(5).unwrap().starts_with("ro"),
        "{slash}"
    );
}

/// The system calls of a strace `-c` summary.
fn summarised_calls(summary: &str) -> Vec<String> {
    summary
        .lines()
        .skip_while(|l| !l.starts_with("------"))
        .skip(1)
        .take_while(|l| !l.starts_with("------"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

/// The system calls a `SystemCallFilter=` entry allows: a name, or a group expanded by
/// `systemd-analyze syscall-filter` (groups within groups too).
fn expand(entry: &str, into: &mut std::collections::BTreeSet<String>) {
    if !entry.starts_with('@') {
        into.insert(entry.to_string());
        return;
    }
    let listed = run(Command::new("systemd-analyze")
        .args(["syscall-filter", entry])
        .env("SYSTEMD_COLORS", "0"));
    for word in listed
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        expand(word, into);
    }
}

/// systemd cannot run the unit here, so its filter is checked against what watch calls: every
/// system call of a real watch (traced, capturing, auditing a namespace with a reset and a
/// socket option to read), as strace counts them, is one the unit's SystemCallFilter= allows.
#[test]
fn every_system_call_of_a_watch_at_work_is_allowed_by_the_units_filter() {
    let filter = unit_values("SystemCallFilter");
    assert!(
        filter.iter().all(|e| !e.starts_with('~')),
        "an allow list: {filter:?}"
    );
    let mut allowed = std::collections::BTreeSet::new();
    for entry in &filter {
        expand(entry, &mut allowed);
    }
    assert!(
        allowed.contains("read") && allowed.len() > 100,
        "{allowed:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("strace.txt");
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-c", "-o"])
        .arg(&summary)
        .arg(binary())
        .env("RSTAUDIT_CONFIG", "");
    let events = dir.path().join("events.jsonl");
    let mut w = Watch::start_as(
        strace,
        &["--audit-every", "10s", "--events", events.to_str().unwrap()],
    );
    let ns = Netns::new("wsyscall");
    w.wait_line(
        &format!("watching namespace {}", ns.name),
        Duration::from_secs(60),
    );
    let _helper = ns.helper(&["listen:7000:16", "linger0:7000", "refused:9"]);
    wait_for(
        "the reset and the finding, under strace",
        Duration::from_secs(240),
        || {
            let text = w.metrics();
            let resets = sum(&text, "rstaudit_resets_total", &[("netns", &ns.name)]);
            let found = sum(
                &text,
                "rstaudit_findings",
                &[("netns", &ns.name), ("rule", "linger-zero")],
            );
            (resets >= 1.0 && found >= 1.0)
                .then_some(())
                .ok_or(format!("resets {resets}, linger-zero {found}"))
        },
    );
    let _ = get(w.addr, "/healthz", None);
    // strace (given a program and -o) blocks SIGTERM: the watch it runs is stopped, and strace
    // writes the summary as it exits.
    let strace_pid = w.pid();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let watch_pid = children
        .split_whitespace()
        .next()
        .expect("the traced watch");
    run(Command::new("kill").args(["-TERM", watch_pid]));
    let status = wait_for("strace to end", Duration::from_secs(60), || {
        w.child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_string())
    });
    assert!(status.success(), "{status}: {}", w.stderr());
    let calls = summarised_calls(&std::fs::read_to_string(&summary).unwrap());
    assert!(
        calls.iter().any(|c| c == "setns") && calls.iter().any(|c| c == "socket"),
        "{calls:?}"
    );
    let refused: Vec<&String> = calls.iter().filter(|c| !allowed.contains(*c)).collect();
    assert!(
        refused.is_empty(),
        "the unit's filter ({filter:?}) refuses {refused:?} of {calls:?}"
    );
}

#[test]
fn the_logrotate_snippet_parses_and_names_the_units_events_file() {
    require_root();
    let start = unit_values("ExecStart");
    let events = start
        .iter()
        .skip_while(|w| *w != "--events")
        .nth(1)
        .expect("the unit writes events to a file");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("logrotate")
        .arg("--debug")
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(deploy("rstaudit-watch.logrotate"))
        .output()
        .expect("logrotate (Debian package logrotate, installed by test.sh)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(!said.to_lowercase().contains("error"), "{said}");
    assert!(
        said.contains(&format!("rotating pattern: {events} ")),
        "{events}: {said}"
    );
}

//! `fix --emit sysctl|sh|ansible` and `apply --fixes`, end to end, inside
//! network namespaces the tests create. The emitted files are loaded only
//! inside those namespaces.

use crate::common;

use common::{Netns, rstaudit};

/// Reset-prone values the rules flag and fix with sysctls.
const BAD: &[(&str, &str)] = &[
    ("net.ipv4.tcp_abort_on_overflow", "1"),
    ("net.ipv4.tcp_syncookies", "0"),
];

fn bad_namespace(prefix: &str) -> Netns {
    Netns::with_sysctls(prefix, BAD)
}

fn fix(ns: &Netns, emit: &str, file: &std::path::Path) {
    let out = rstaudit()
        .args(["fix", "--netns", &ns.name, "--emit", emit, "-o"])
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
}

#[test]
fn fix_emit_sysctl_loads_with_sysctl_p_and_names_advice_processes() {
    let ns = bad_namespace("fix-sysctl");
    let helper = ns.helper(&["listen:7301:16", "linger0:7301", "sleep:100"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("90-rstaudit.conf");
    fix(&ns, "sysctl", &file);
    let content = std::fs::read_to_string(&file).unwrap();
    assert!(
        content.contains("\nnet.ipv4.tcp_abort_on_overflow = 0\n"),
        "{content}"
    );
    assert!(content.contains("# abort-on-overflow: "), "{content}");
    assert!(
        content.contains("#   replaces: 1\nnet.ipv4.tcp_abort_on_overflow"),
        "{content}"
    );
    assert!(
        content.contains("\nnet.ipv4.tcp_syncookies = 1\n"),
        "{content}"
    );
    // No sysctl fixes SO_LINGER 0: it is advice naming the process.
    assert!(
        content.contains(&format!(
            "# ADVICE [linger-zero] sockhelper (pid {})",
            helper.pid
        )),
        "{content}"
    );
    for line in content
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("net."), "not a sysctl line: {line}");
    }

    // The fragment is for a namespace, not the host: its header says what persists a
    // namespace's values and how to apply these in that namespace, never to install it in
    // the host's sysctl.d.
    let mut lines = content.lines();
    assert!(
        lines.next().unwrap().starts_with("# Managed by rstaudit"),
        "{content}"
    );
    let header = lines.next().unwrap();
    assert!(!header.contains("install as"), "{header}");
    assert!(header.contains("podman run --sysctl"), "{header}");
    assert!(
        header.contains(&format!("`rstaudit apply --fixes --netns {}`", ns.name)),
        "{header}"
    );

    let other = bad_namespace("fix-load");
    common::run(other.command("sysctl").args(["-q", "-p"]).arg(&file));
    assert_eq!(other.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "0");
    assert_eq!(other.read_sysctl("net.ipv4.tcp_syncookies"), "1");
}

#[test]
fn fix_emit_sh_passes_sh_n_and_reverts() {
    let ns = bad_namespace("fix-sh");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fix.sh");
    fix(&ns, "sh", &file);
    common::run(std::process::Command::new("sh").arg("-n").arg(&file));
    let content = std::fs::read_to_string(&file).unwrap();
    let enter = format!("nsenter '--net=/run/netns/{}' -- sysctl -w", ns.name);
    assert!(
        content.contains(&format!("{enter} 'net.ipv4.tcp_abort_on_overflow=0'")),
        "{content}"
    );
    assert!(
        content.contains(&format!("{enter} 'net.ipv4.tcp_abort_on_overflow=1'")),
        "{content}"
    );

    // Run from another namespace, the script still acts on the namespace that was checked
    // (a script that did not enter it would change the namespace it runs in).
    let other = bad_namespace("fix-sh-run");
    common::run(other.command("sh").arg(&file));
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "0");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "1");
    assert_eq!(other.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "1");
    common::run(other.command("sh").arg(&file).arg("revert"));
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "1");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "0");
    assert_eq!(other.read_sysctl("net.ipv4.tcp_syncookies"), "0");
}

/// For a namespace, `ansible.posix.sysctl` (which writes the host's sysctl.d and sets the
/// namespace Ansible runs in) would act on the host: the tasks run `sysctl -w` inside the
/// namespace instead, and running them from another namespace changes only that one.
#[test]
fn fix_emit_ansible_for_a_namespace_sets_that_namespace() {
    let ns = bad_namespace("fix-ansible");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tasks.yml");
    fix(&ns, "ansible", &file);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("ansible.posix.sysctl"), "{text}");
    assert!(!text.contains("sysctl_file"), "{text}");
    assert!(
        text.contains("Kubernetes `securityContext.sysctls`"),
        "{text}"
    );
    let tasks: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let tasks = tasks.as_sequence().expect("a list of tasks");
    let other = bad_namespace("fix-ansible-run");
    let mut keys = Vec::new();
    for task in tasks {
        assert!(task["name"].as_str().is_some(), "{text}");
        let argv: Vec<&str> = task["ansible.builtin.command"]["argv"]
            .as_sequence()
            .unwrap_or_else(|| panic!("task without a command: {text}"))
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        let net = format!("--net=/run/netns/{}", ns.name);
        assert_eq!(
            argv[..5],
            ["nsenter", net.as_str(), "--", "sysctl", "-w"],
            "{text}"
        );
        keys.push(argv[5].to_string());
        common::run(other.command(argv[0]).args(&argv[1..]));
    }
    assert!(
        keys.contains(&"net.ipv4.tcp_abort_on_overflow=0".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"net.ipv4.tcp_syncookies=1".to_string()),
        "{keys:?}"
    );
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "0");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "1");
    assert_eq!(other.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "1");
    assert_eq!(other.read_sysctl("net.ipv4.tcp_syncookies"), "0");
}

#[test]
fn apply_fixes_applies_the_same_fixes_and_rolls_back() {
    let ns = bad_namespace("apply-fixes");
    let state = tempfile::tempdir().unwrap();
    let out = rstaudit()
        .args(["apply", "--fixes", "--netns", &ns.name, "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert!(
        common::text(&out).contains("abort-on-overflow"),
        "{}",
        common::text(&out)
    );
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "0");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "1");
    let out = rstaudit()
        .args(["rollback", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "1");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "0");
}

/// On a stock namespace (tcp_keepalive_time 7200 against the 300 s default idle timeout) and
/// one with time 299, `apply --fixes` once leaves no finding with a sysctl fix: the keepalive
/// keys are chosen together (no keepalive-retry-above-idle-timeout after the time fix, and
/// never an interval of 1 s).
#[test]
fn apply_fixes_once_clears_every_fixed_finding_on_the_kernel() {
    for (prefix, time) in [("converge-stock", "7200"), ("converge-299", "299")] {
        let ns = Netns::with_sysctls(
            prefix,
            &[
                ("net.ipv4.tcp_keepalive_time", time),
                ("net.ipv4.tcp_keepalive_intvl", "75"),
                ("net.ipv4.tcp_syncookies", "0"),
            ],
        );
        let state = tempfile::tempdir().unwrap();
        let out = rstaudit()
            .args(["apply", "--fixes", "--netns", &ns.name, "--state-dir"])
            .arg(state.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
        let time: u64 = ns
            .read_sysctl("net.ipv4.tcp_keepalive_time")
            .parse()
            .unwrap();
        let intvl: u64 = ns
            .read_sysctl("net.ipv4.tcp_keepalive_intvl")
            .parse()
            .unwrap();
        assert!(
            time + intvl < 300 && intvl >= 10,
            "{prefix}: {time} + {intvl}"
        );
        let out = rstaudit()
            .args([
                "audit",
                "--netns",
                &ns.name,
                "--format",
                "json",
                "--fail-on",
                "never",
            ])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let left: Vec<&serde_json::Value> = report["namespaces"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["fix"]["sysctls"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty())
            })
            .collect();
        assert!(left.is_empty(), "{prefix}: {left:#?}");
    }
}

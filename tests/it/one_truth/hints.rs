//! The command lines rstaudit prints for the user to run select the target that was checked,
//! shell-quoted: each is run here and checked to act on it.

use super::*;
use crate::common::write_file;

/// verify's hint to persist, for a namespace that is not the host's: no sysctl.d, but what
/// keeps a namespace's values.
#[test]
fn verify_suggests_no_sysctl_d_for_a_namespace() {
    let ns = Netns::with_sysctls("otvfy", &[("net.core.somaxconn", "8192")]);
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "p.yaml",
        "description: x\nsysctls:\n  net.core.somaxconn:\n    at_least: 4096\n    reason: r\n",
    );
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let out = in_ns(
        &ns,
        &[
            "verify",
            "--profile",
            profile.to_str().unwrap(),
            "--sysctl-root",
            root.to_str().unwrap(),
        ],
    );
    let t = common::exits(&out, 0);
    assert!(t.contains("no configuration file keeps it"), "{t}");
    assert!(!t.contains("--persist"), "{t}");
    assert!(!t.contains("rstaudit apply"), "{t}");
    assert!(
        t.contains("not into namespace") && t.contains("podman run --sysctl"),
        "{t}"
    );
}

/// verify's hint in the initial namespace names the profile and the persist file checked, and
/// running it persists there: verify then passes.
#[test]
fn verify_persist_hint_persists_the_file_that_was_checked() {
    let ns = Netns::with_sysctls("otpst", &[("net.core.somaxconn", "8192")]);
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "my profile.yaml",
        "description: x\nsysctls:\n  net.core.somaxconn:\n    at_least: 4096\n    reason: r\n",
    );
    let etc = dir.path().join("etc d");
    std::fs::create_dir(&etc).unwrap();
    let persist = etc.join("90 x.conf");
    let p = profile.to_str().unwrap();
    let f = persist.to_str().unwrap();
    let out = sandboxed(&ns, &["verify", "--profile", p, "--persist", f]);
    let t = common::exits(&out, 1);
    let words = common::hint_after(&t, "Persist with ");
    assert_eq!(
        words,
        ["rstaudit", "apply", "--profile", p, "--persist", f],
        "{t}"
    );
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    common::exits(&sandboxed(&ns, &args), 0);
    let kept = std::fs::read_to_string(&persist).unwrap();
    assert!(kept.contains("net.core.somaxconn = 8192"), "{kept}");
    common::exits(
        &sandboxed(&ns, &["verify", "--profile", p, "--persist", f]),
        0,
    );
}

/// The rollback command an apply prints undoes that apply, in its namespace, from its state
/// directory; for several namespaces, every one of them.
#[test]
fn the_rollback_hints_undo_the_apply_that_printed_them() {
    let a = Netns::with_sysctls("otrba", &[("net.core.somaxconn", "1000")]);
    let b = Netns::with_sysctls("otrbb", &[("net.core.somaxconn", "1000")]);
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "p.yaml",
        "description: x\nsysctls:\n  net.core.somaxconn:\n    at_least: 4096\n    reason: r\n",
    );
    let p = profile.to_str().unwrap();
    let state = dir.path().join("state dir");
    let s = state.to_str().unwrap();

    // The comparison after the apply looks only at this test's namespaces.
    let scope = a.name.clone();
    let out = in_ns(
        &a,
        &[
            "apply",
            "--profile",
            p,
            "--state-dir",
            s,
            "--netns-scope",
            &scope,
        ],
    );
    let t = common::exits(&out, 0);
    assert_eq!(a.read_sysctl("net.core.somaxconn"), "4096");
    let words = common::hint_after(&t, "undo with ");
    assert_eq!(words[..2], ["rstaudit", "rollback"], "{t}");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    common::exits(&in_ns(&a, &args), 0);
    assert_eq!(a.read_sysctl("net.core.somaxconn"), "1000");

    let list = format!("{},{}", a.name, b.name);
    let out = plain(&["apply", "--profile", p, "--netns", &list, "--state-dir", s]);
    let t = common::exits(&out, 0);
    assert_eq!(b.read_sysctl("net.core.somaxconn"), "4096");
    let words = common::hint_after(&t, "Undo every namespace of this apply with ");
    assert_eq!(words, ["rstaudit", "rollback", "--state-dir", s], "{t}");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    common::exits(&plain(&args), 0);
    assert_eq!(a.read_sysctl("net.core.somaxconn"), "1000");
    assert_eq!(b.read_sysctl("net.core.somaxconn"), "1000");
}

/// After an apply in one namespace, the hint for the others applies the same profile with the
/// same state directory; run (narrowed to this test's namespaces), it sets the other one and
/// one rollback undoes it.
#[test]
fn the_apply_there_too_hint_applies_the_same_profile_elsewhere() {
    let a = Netns::with_sysctls("otthr", &[("net.core.somaxconn", "1000")]);
    let b = Netns::with_sysctls("otthr", &[("net.core.somaxconn", "1000")]);
    let scope = a.name.rsplit_once('-').unwrap().0.to_string();
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "p.yaml",
        "description: x\nsysctls:\n  net.core.somaxconn:\n    at_least: 4096\n    reason: r\n",
    );
    let p = profile.to_str().unwrap();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    let out = in_ns(
        &a,
        &[
            "apply",
            "--profile",
            p,
            "--state-dir",
            s,
            "--netns-scope",
            &scope,
        ],
    );
    let t = common::exits(&out, 0);
    let mut words = common::hint_after(&t, "Apply there too with ");
    assert_eq!(
        words,
        [
            "rstaudit",
            "apply",
            "--profile",
            p,
            "--netns",
            "all",
            "--state-dir",
            s
        ],
        "{t}"
    );
    // `all` would mean every namespace of this machine: the hidden test flag keeps it to ours.
    words.extend(["--netns-scope".to_string(), scope.clone()]);
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    common::exits(&in_ns(&a, &args), 0);
    assert_eq!(b.read_sysctl("net.core.somaxconn"), "4096");
    common::exits(&in_ns(&a, &["rollback", "--state-dir", s]), 0);
    assert_eq!(b.read_sysctl("net.core.somaxconn"), "1000");
}

/// The rollback example of `rollback --help` names a file of the form apply writes.
#[test]
fn the_rollback_example_names_a_file_rstaudit_writes() {
    let help = String::from_utf8(plain(&["rollback", "--help"]).stdout).unwrap();
    let example = help
        .split_whitespace()
        .find(|w| w.contains("/rollback-"))
        .unwrap_or_else(|| panic!("no rollback file in: {help}"));
    let ns = Netns::with_sysctls("othelp", &[("net.core.somaxconn", "1000")]);
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "p.yaml",
        "description: x\nsysctls:\n  net.core.somaxconn:\n    at_least: 4096\n    reason: r\n",
    );
    let state = dir.path().join("state");
    common::exits(
        &in_ns(
            &ns,
            &[
                "apply",
                "--profile",
                profile.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
            ],
        ),
        0,
    );
    let written: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let shape = |name: &str| -> String {
        name.chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect()
    };
    let example_name = Path::new(example).file_name().unwrap().to_str().unwrap();
    // The pid and sequence are as long as they happen to be; the time stamp is fixed.
    let fixed = |name: &str| {
        let s = shape(name);
        s.split('-').take(2).collect::<Vec<_>>().join("-")
    };
    assert_eq!(
        fixed(example_name),
        fixed(&written[0]),
        "{example} vs {written:?}"
    );
    assert!(example_name.ends_with(".json") && written[0].ends_with(".json"));
    assert_eq!(
        example_name.split('-').count(),
        written[0].split('-').count(),
        "{example} vs {written:?}"
    );
    assert!(Path::new(example).starts_with("/var/lib/rstaudit"));
}

/// The apply that the header of a namespace's fixes names applies them in that namespace.
#[test]
fn the_fix_header_applies_the_fixes_in_the_namespace_that_was_checked() {
    let ns = Netns::with_sysctls("otfixh", &[("net.ipv4.tcp_syncookies", "0")]);
    let out = plain(&["fix", "--netns", &ns.name]);
    let t = common::exits(&out, 0);
    let words = common::hint_after(&t, "or apply them now with ");
    assert_eq!(
        words,
        ["rstaudit", "apply", "--fixes", "--netns", ns.name.as_str()],
        "{t}"
    );
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    common::exits(&sandboxed(&ns, &args), 0);
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "1");
}

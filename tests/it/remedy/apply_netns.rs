//! `apply` and `verify` over several network namespaces, and what an apply in one namespace
//! says about the others.
//!
//! Every namespace is one the test creates. The "host" side of a test runs inside one of
//! them (`ip netns exec A rstaudit ...`), and `--netns all` is scoped to the test's own
//! namespaces with the hidden `--netns-scope PREFIX` (only /run/netns names starting with
//! PREFIX, and the caller's own), so the host's namespaces are neither read nor changed.
//! `--sysctl-root` points at an empty tree, so the host's sysctl.d files play no part.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::transcript::{Transcript, fixed_dir};
use common::{Netns, rstaudit, write_file};

const PRE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "0"),
    ("net.ipv4.tcp_abort_on_overflow", "1"),
    ("net.core.somaxconn", "128"),
];

/// The values `baseline` leaves PRE's keys at.
const AFTER: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.tcp_abort_on_overflow", "0"),
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_rfc1337", "1"),
];

struct World {
    ns: Vec<Netns>,
    /// `rsta-PREFIX-PID-`: every namespace of this test, and no other.
    scope: String,
    state: tempfile::TempDir,
    dir: tempfile::TempDir,
}

fn world(prefix: &str, n: usize) -> World {
    let ns: Vec<Netns> = (0..n).map(|_| Netns::with_sysctls(prefix, PRE)).collect();
    let scope = format!("rsta-{prefix}-{}-", std::process::id());
    assert!(ns.iter().all(|n| n.name.starts_with(&scope)));
    let dir = fixed_dir();
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    World {
        ns,
        scope,
        state: fixed_dir(),
        dir,
    }
}

impl World {
    fn common_args(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.state.path().display().to_string(),
            "--sysctl-root".into(),
            self.dir.path().join("empty").display().to_string(),
        ]
    }
    /// `rstaudit apply ARGS` run in the caller's namespace (never the host's own values:
    /// ARGS always name the test's namespaces).
    fn apply(&self, args: &[&str]) -> Output {
        rstaudit()
            .arg("apply")
            .args(args)
            .args(self.common_args())
            .output()
            .unwrap()
    }
    /// `rstaudit CMD ARGS` run inside namespace `i`.
    fn inside(&self, i: usize, cmd: &str, args: &[&str]) -> Output {
        let mut c: Command = self.ns[i].command(env!("CARGO_BIN_EXE_rstaudit"));
        c.arg(cmd).args(args);
        if cmd != "verify" {
            c.args(["--state-dir", self.state.path().to_str().unwrap()]);
        }
        if cmd != "rollback" {
            c.args([
                "--sysctl-root",
                self.dir.path().join("empty").to_str().unwrap(),
                "--netns-scope",
                &self.scope,
            ]);
        }
        c.output().unwrap()
    }
    fn values(&self, i: usize, set: &[(&str, &str)]) -> bool {
        set.iter().all(|(k, v)| self.ns[i].read_sysctl(k) == *v)
    }
    fn in_effect(&self) -> usize {
        std::fs::read_dir(self.state.path())
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".json")
                })
                .count()
            })
            .unwrap_or(0)
    }
}

#[test]
fn apply_in_one_namespace_names_the_per_namespace_keys_and_the_namespaces_that_differ() {
    let w = world("nsdiff", 3);
    // The third already holds baseline's values; the second does not.
    for (k, v) in AFTER {
        w.ns[2].sysctl(k, v);
    }
    let out = w.inside(0, "apply", &["--profile", "baseline"]);
    let t = common::exits(&out, 0);
    assert!(w.values(0, AFTER), "{t}");
    assert!(w.values(1, PRE), "the other namespace was changed: {t}");
    assert!(
        // Under `ip netns exec NAME` the namespace is called by its name (not "host", not
        // its inode), as the audit calls it.
        t.contains(&format!(
            "Per network namespace (set in namespace {} only)",
            w.ns[0].name
        )) && t.contains("net.core.somaxconn"),
        "{t}"
    );
    assert!(
        t.contains("1 of 2 other network namespace(s) differ:"),
        "{t}"
    );
    assert!(
        t.contains(&format!("  {}: ", w.ns[1].name)) && t.contains("net.core.somaxconn=128"),
        "{t}"
    );
    assert!(!t.contains(&format!("  {}: ", w.ns[2].name)), "{t}");
    assert!(t.contains("--netns all"), "{t}");

    // JSON says the same; a second apply changes nothing and still compares.
    let out = w.inside(0, "apply", &["--profile", "baseline", "--format", "json"]);
    common::exits(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let others = &json["other_namespaces"];
    assert_eq!(others["count"], 2, "{json}");
    assert_eq!(others["differ"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(
        others["differ"][0]["netns"],
        w.ns[1].name.as_str(),
        "{json}"
    );
}

#[test]
fn apply_netns_all_is_one_transaction_and_rollback_restores_every_namespace() {
    let w = world("nsall", 3);
    // The JSON of a dry run has every namespace's rows, each with its namespace.
    let out = w.inside(
        0,
        "apply",
        &[
            "--profile",
            "baseline",
            "--netns",
            "all",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    common::exits(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changing = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["change"] == true)
        .count();
    assert_eq!(changing, 12, "{json}");
    assert_eq!(json["namespaces"].as_array().unwrap().len(), 3, "{json}");
    assert!(w.values(0, PRE) && w.values(1, PRE) && w.values(2, PRE));

    let out = w.inside(0, "apply", &["--profile", "baseline", "--netns", "all"]);
    let t = common::exits(&out, 0);
    for i in 0..3 {
        assert!(w.values(i, AFTER), "namespace {i}: {t}");
    }
    assert_eq!(w.in_effect(), 3, "one rollback file per namespace: {t}");
    for n in &w.ns[1..] {
        assert!(
            t.contains(&format!("namespace {}: applied 4 key(s)", n.name)),
            "{t}"
        );
    }

    // verify --netns all: every namespace matches; a change in one is drift there.
    let out = w.inside(0, "verify", &["--profile", "baseline", "--netns", "all"]);
    let t = common::exits(&out, 0);
    assert!(
        t.contains("OK: every one of 3 network namespaces matches."),
        "{t}"
    );
    w.ns[2].sysctl("net.core.somaxconn", "256");
    let out = w.inside(
        0,
        "verify",
        &[
            "--profile",
            "baseline",
            "--netns",
            "all",
            "--format",
            "json",
        ],
    );
    common::exits(&out, 1);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bad: Vec<&str> = json["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["ok"] == false)
        .map(|n| n["netns"].as_str().unwrap())
        .collect();
    assert_eq!(bad, [w.ns[2].name.as_str()], "{json}");

    // One rollback restores every namespace of the apply.
    let out = w.inside(0, "rollback", &[]);
    let t = common::exits(&out, 0);
    for i in 0..2 {
        assert!(w.values(i, PRE), "namespace {i} not restored: {t}");
    }
    assert_eq!(w.ns[2].read_sysctl("net.ipv4.tcp_syncookies"), "0", "{t}");
    assert_eq!(w.in_effect(), 0, "{t}");
}

/// A profile with a key that exists only where a veth pair named `va` exists.
fn veth_profile(dir: &Path) -> std::path::PathBuf {
    write_file(
        dir,
        "va.yaml",
        "description: x\nsysctls:\n  net.core.somaxconn:\n    at_least: 4096\n    reason: r\n  \
         net.ipv4.conf.va.accept_local:\n    value: 1\n    reason: r\n",
    )
}

fn veth(ns: &Netns) {
    common::run(Command::new("ip").args([
        "-n", &ns.name, "link", "add", "va", "type", "veth", "peer", "name", "va2",
    ]));
}

#[test]
fn a_problem_in_one_namespace_stops_the_apply_in_every_namespace() {
    let w = world("nsvalid", 2);
    veth(&w.ns[0]);
    let profile = veth_profile(w.dir.path());
    let list = format!("{},{}", w.ns[0].name, w.ns[1].name);
    let out = w.apply(&["--profile", profile.to_str().unwrap(), "--netns", &list]);
    common::refused(
        &out,
        &[
            &format!(
                "namespace {}: net.ipv4.conf.va.accept_local: does not exist",
                w.ns[1].name
            ),
            "nothing was written in any",
        ],
    );
    assert!(w.values(0, PRE) && w.values(1, PRE));
    assert_eq!(w.ns[0].read_sysctl("net.ipv4.conf.va.accept_local"), "0");
    assert_eq!(w.in_effect(), 0);
}

#[test]
fn a_failure_in_a_later_namespace_restores_the_namespaces_already_done() {
    let w = world("nsundo", 2);
    veth(&w.ns[0]);
    veth(&w.ns[1]);
    let profile = veth_profile(w.dir.path());
    let list = format!("{},{}", w.ns[0].name, w.ns[1].name);
    // The first namespace is applied, then held 2 s; meanwhile the second namespace loses
    // its `va`, so the kernel refuses the write there.
    let child = rstaudit()
        .arg("apply")
        .args(["--profile", profile.to_str().unwrap(), "--netns", &list])
        .args([
            "--inject-fault",
            "pause-after-write:net.ipv4.conf.va.accept_local",
        ])
        .args(w.common_args())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while w.ns[0].read_sysctl("net.ipv4.conf.va.accept_local") != "1" {
        assert!(
            start.elapsed().as_secs() < 20,
            "the first namespace was never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    common::run(Command::new("ip").args(["-n", &w.ns[1].name, "link", "del", "va"]));
    let out = child.wait_with_output().unwrap();
    common::refused(
        &out,
        &[
            &format!("in network namespace {}", w.ns[1].name),
            &format!(
                "the namespaces already done were restored ({})",
                w.ns[0].name
            ),
        ],
    );
    assert!(w.values(0, PRE), "{}", common::text(&out));
    assert!(w.values(1, PRE), "{}", common::text(&out));
    assert_eq!(w.ns[0].read_sysctl("net.ipv4.conf.va.accept_local"), "0");
    assert_eq!(w.in_effect(), 0, "{}", common::text(&out));
}

#[test]
fn rollback_of_several_namespaces_skips_one_that_is_gone_and_says_so() {
    let mut w = world("nsgone", 2);
    let list = format!("{},{}", w.ns[0].name, w.ns[1].name);
    let out = w.apply(&["--profile", "baseline", "--netns", &list]);
    common::exits(&out, 0);
    assert!(w.values(0, AFTER) && w.values(1, AFTER));
    let gone = w.ns.remove(1);
    let gone_name = gone.name.clone();
    drop(gone);
    let out = rstaudit()
        .args(["rollback", "--state-dir", w.state.path().to_str().unwrap()])
        .output()
        .unwrap();
    let t = common::exits(&out, 0);
    assert!(w.values(0, PRE), "{t}");
    assert!(
        t.contains(&format!(
            "the network namespace it belongs to ({gone_name}) is gone"
        )) && t.contains("nothing to restore there"),
        "{t}"
    );
    assert!(t.contains("Rollback file marked gone: "), "{t}");
    assert_eq!(w.in_effect(), 0, "{t}");
}

/// What apply, verify and rollback print for several namespaces (`--netns A,B` from outside
/// them, `--netns all` from inside one), and for an apply in the caller's own namespace that
/// compares the others, pinned byte for byte.
#[test]
fn apply_verify_and_rollback_print_the_same_for_several_namespaces() {
    let w = world("snapm", 3);
    let profile = write_file(w.dir.path(), "snap.yaml", common::transcript::PROFILE);
    let p = profile.to_str().unwrap();
    let mut t = Transcript::default();
    for (i, n) in w.ns.iter().enumerate() {
        t.name(n.name.clone(), &format!("[NS{i}]"));
    }
    t.name(w.state.path().to_str().unwrap(), "[STATE]")
        .name(w.dir.path().to_str().unwrap(), "[DIR]")
        .name(w.scope.clone(), "[SCOPE]");
    let list = format!("{},{}", w.ns[0].name, w.ns[1].name);
    let flags = w.common_args();
    let outside = |t: &mut Transcript, args: &[&str], code: i32| {
        let mut all: Vec<&str> = args.to_vec();
        if args[0] != "rollback" {
            all.extend(flags[2..].iter().map(String::as_str));
        }
        if args[0] != "verify" {
            all.extend(flags[..2].iter().map(String::as_str));
        }
        let out = rstaudit().args(&all).output().unwrap();
        t.add(&all, &out);
        common::exits(&out, code);
    };
    let apply = ["apply", "--profile", p, "--netns", &list];
    let verify = ["verify", "--profile", p, "--netns", &list];
    outside(&mut t, &[&apply[..], &["--dry-run"][..]].concat(), 0);
    outside(
        &mut t,
        &[&apply[..], &["--dry-run", "--format", "json"][..]].concat(),
        0,
    );
    outside(&mut t, &apply, 0);
    outside(&mut t, &verify, 0);
    outside(
        &mut t,
        &[&verify[..], &["--format", "json"][..]].concat(),
        0,
    );
    outside(&mut t, &["rollback", "--dry-run"], 0);
    outside(&mut t, &["rollback"], 0);
    outside(&mut t, &[&apply[..], &["--format", "json"][..]].concat(), 0);
    w.ns[1].sysctl("net.core.somaxconn", "2048");
    outside(&mut t, &verify, 1);
    outside(
        &mut t,
        &[&verify[..], &["--format", "json"][..]].concat(),
        1,
    );
    outside(&mut t, &["rollback"], 0);
    assert!(w.values(0, PRE) && w.values(1, PRE));

    // A key that one namespace lacks: nothing is written in any.
    veth(&w.ns[0]);
    let va = veth_profile(w.dir.path());
    let bad = ["apply", "--profile", va.to_str().unwrap(), "--netns", &list];
    outside(&mut t, &bad, 2);
    outside(&mut t, &[&bad[..], &["--format", "json"][..]].concat(), 2);

    // From inside the first namespace: its own apply compares the others (the third holds
    // the profile's values already), and `--netns all` is all three.
    for (k, v) in AFTER {
        w.ns[2].sysctl(k, v);
    }
    let inside = |t: &mut Transcript, cmd: &str, args: &[&str], code: i32| {
        let out = w.inside(0, cmd, args);
        t.add(&[&[cmd][..], args].concat(), &out);
        common::exits(&out, code);
    };
    inside(&mut t, "apply", &["--profile", p], 0);
    inside(&mut t, "rollback", &[], 0);
    inside(&mut t, "apply", &["--profile", p, "--format", "json"], 0);
    inside(&mut t, "rollback", &[], 0);
    let all = ["--profile", p, "--netns", "all", "--dry-run"];
    inside(&mut t, "apply", &all, 0);
    inside(
        &mut t,
        "apply",
        &[&all[..], &["--format", "json"][..]].concat(),
        0,
    );
    inside(&mut t, "verify", &["--profile", p, "--netns", "all"], 1);

    // `--persist` with the initial namespace among them (the first, seen from inside it as
    // its PID 1): the file holds its values.
    let persist = w.dir.path().join("90-snap.conf");
    let st = w.state.path().to_str().unwrap();
    let root = w.dir.path().join("empty");
    let as_init = |t: &mut Transcript, args: &[&str], code: i32| {
        let out = w.ns[0]
            .as_init(env!("CARGO_BIN_EXE_rstaudit"))
            .args(args)
            .output()
            .unwrap();
        t.add(args, &out);
        common::exits(&out, code);
    };
    let mut all = vec!["apply", "--profile", p, "--netns", "all", "--state-dir", st];
    all.extend([
        "--netns-scope",
        &w.scope,
        "--sysctl-root",
        root.to_str().unwrap(),
    ]);
    all.extend(["--persist", persist.to_str().unwrap()]);
    as_init(&mut t, &all, 0);
    assert!(persist.exists() && w.values(0, &AFTER[..3]) && w.values(1, &AFTER[..3]));
    as_init(&mut t, &["rollback", "--state-dir", st], 0);
    all.extend(["--format", "json"]);
    as_init(&mut t, &all, 0);
    as_init(&mut t, &["rollback", "--state-dir", st], 0);
    assert!(!persist.exists());
    assert!(w.values(0, PRE) && w.values(1, PRE) && w.values(2, AFTER));

    // A failure in the second namespace restores the first; a namespace gone since the apply
    // is skipped by the rollback, and said so.
    let fault = [
        "--inject-fault",
        "write:net.ipv4.tcp_syncookies",
        "--format",
        "json",
    ];
    outside(&mut t, &[&apply[..], &fault[..]].concat(), 2);
    outside(&mut t, &apply, 0);
    let mut w = w;
    drop(w.ns.remove(1));
    let out = rstaudit()
        .args(["rollback", "--state-dir", w.state.path().to_str().unwrap()])
        .output()
        .unwrap();
    t.add(&["rollback", "--state-dir", "[STATE]"], &out);
    common::exits(&out, 0);
    assert!(w.values(0, PRE));
    assert_eq!(w.in_effect(), 0);
    insta::assert_snapshot!(t.finish());
}

/// With several namespaces, `--persist` needs the initial one among them (the persist file
/// holds its values); without it the apply is refused, with `--dry-run` too, and nothing is
/// written in any.
#[test]
fn persist_with_several_namespaces_is_refused_without_the_initial_one() {
    let w = world("nspersist", 2);
    let file = w.dir.path().join("90-rstaudit.conf");
    let list = format!("{},{}", w.ns[0].name, w.ns[1].name);
    let persisting = ["--profile", "baseline", "--persist", file.to_str().unwrap()];
    let problem = "persist: a sysctl.d file is loaded into the initial network namespace at \
                   boot (`sysctl --system`), and it is not among these 2 namespaces";
    for extra in [&[][..], &["--dry-run"], &["--dry-run", "--format", "json"]] {
        // A list from outside, and `all` from inside the first (which is not the initial one).
        let outside = w.apply(&[&persisting[..], &["--netns", &list], extra].concat());
        let inside = w.inside(
            0,
            "apply",
            &[&persisting[..], &["--netns", "all"], extra].concat(),
        );
        for out in [outside, inside] {
            common::refused(&out, &[problem, "nothing was written in any"]);
            if extra.contains(&"json") {
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let problems = json["problems"].as_array().unwrap();
                assert_eq!(problems.len(), 1, "{json}");
                assert!(problems[0].as_str().unwrap().starts_with(problem), "{json}");
            }
            assert!(
                w.values(0, PRE) && w.values(1, PRE),
                "{}",
                common::text(&out)
            );
            assert!(!file.exists());
            assert_eq!(w.in_effect(), 0);
        }
    }
}

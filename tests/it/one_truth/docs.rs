//! The commands in the fenced blocks of README.md and docs/*.md run as written: each exits 0
//! or 1 (ran; findings or drift), never 2 (could not run), and none panics.
//!
//! They run in order, as one shell script, inside a network namespace this test creates, as
//! PID 1 of a PID namespace of their own (so the namespace is the initial one as rstaudit
//! sees it, and `--netns all` finds only it), in a mount namespace where the host's sysctl
//! configuration, /var/lib (the default state directory), /tmp, /etc/rstaudit and /run/netns
//! are empty tmpfs. In /run/netns the namespace is `blue`, as the documentation calls it.
//! Placeholders become files the script makes first (`host.json`, `rstaudit-results/`,
//! `/srv/copied-host`, a process for `/proc/812`, the newest rollback file for the one the
//! documentation names, and an apply still in effect before each `rollback`). The host's
//! global keys are compared before and after.

use super::*;

/// Commands that are not run, and why.
const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "packet-check --lab",
        "runs lab scenarios for tens of seconds each; tests/it/lab.rs runs them",
    ),
    (
        "packet-check --duration 60",
        "watches for a minute; tests/it/packet runs the live check",
    ),
];

/// The top-level commands (a word after `rstaudit` that starts a command line).
const COMMANDS: &[&str] = &[
    "audit",
    "snapshot",
    "fix",
    "apply",
    "verify",
    "rollback",
    "profiles",
    "rules",
    "explain",
    "report",
    "packet-check",
    "completions",
    "man",
    "watch",
];

/// One command of the documentation.
#[derive(Debug)]
struct DocCommand {
    place: String,
    line: String,
}

/// Every command line in a fenced block: from the word `rstaudit` followed by a command to
/// the end of the line (continuation lines joined), outside comments. A command between
/// backticks is output that quotes a hint, not a command of the page.
fn doc_commands() -> Vec<DocCommand> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let name = file.strip_prefix(root).unwrap().display().to_string();
        let mut fenced = false;
        let mut i = 0;
        while i < lines.len() {
            let number = i + 1;
            let mut line = lines[i].to_string();
            i += 1;
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if !fenced {
                continue;
            }
            while line.ends_with('\\') && i < lines.len() {
                line.pop();
                line.push(' ');
                line.push_str(lines[i].trim());
                i += 1;
            }
            if let Some(command) = command_in(&line) {
                out.push(DocCommand {
                    place: format!("{name}:{number}"),
                    line: command,
                });
            }
        }
    }
    out
}

fn command_in(line: &str) -> Option<String> {
    let mut from = 0;
    while let Some(at) = line[from..].find("rstaudit ").map(|p| p + from) {
        from = at + 1;
        let before = &line[..at];
        let starts_word = before
            .chars()
            .last()
            .is_none_or(|c| matches!(c, ' ' | '/' | '\'' | '"' | '(' | '|'));
        let commented = before.starts_with('#') || before.contains(" #");
        let next = line[at + "rstaudit ".len()..].split_whitespace().next();
        if starts_word && !commented && next.is_some_and(|w| COMMANDS.contains(&w)) {
            let command = &line[at..];
            // `sh 'rstaudit ...'`: the quote closes outside the command.
            let command = match before.ends_with('\'') {
                true => command.trim_end().trim_end_matches('\''),
                false => command,
            };
            return Some(command.to_string());
        }
    }
    None
}

/// The placeholders of the documentation, as the script makes them.
fn substituted(line: &str) -> String {
    line.replace("/proc/812/", "/proc/$HELPER/")
        .replace(
            "/var/lib/rstaudit/rollback-20261123T192800.123Z-4242-0000.json",
            "\"$(ls -1 /var/lib/rstaudit/rollback-*.json | tail -n 1)\"",
        )
        .replace("/srv/copied-host", "\"$T/copied-host\"")
}

/// What the sandbox does before the commands: an empty world, and the files they name.
const SETUP: &str = r#"set -u
hide() { if [ -d "$1" ]; then mount -t tmpfs -o mode=0755 rstaudit-docs "$1" || exit 90; fi; }
# Only this namespace: the other namespaces' mounts are not in this mount namespace.
sed -n 's/^[^ ]* [^ ]* [^ ]* [^ ]* \([^ ]*\) .* - nsfs .*$/\1/p' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m"; done
hide /run/netns
: > /run/netns/blue && mount --bind /proc/self/ns/net /run/netns/blue || exit 91
# What the run needs ($KEEP: the repository, the binary's directory, $T) may lie under a
# directory hidden below (a clone in /tmp): each is bound to /mnt/N first, then back.
[ -d /mnt ] && mount -t tmpfs rstaudit-keep /mnt || exit 88
set -f; IFS='
'
i=0
for p in $KEEP; do mkdir "/mnt/$i" && mount --bind "$p" "/mnt/$i" || exit 88; i=$((i + 1)); done
for d in /etc/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d \
    /var/lib /tmp /etc/rstaudit /srv; do hide "$d"; done
i=0
for p in $KEEP; do
    if [ ! -d "$p" ]; then mkdir -p "$p" && mount --bind "/mnt/$i" "$p" || exit 88; fi
    i=$((i + 1))
done
set +f; unset IFS
if [ -e /etc/sysctl.conf ]; then mount --bind /dev/null /etc/sysctl.conf || exit 92; fi
mkdir -p /var/lib/node_exporter/textfile
sleep 600 & HELPER=$!
export HELPER PATH="$T/bin:$PATH" RSTAUDIT_CONFIG= s=host.json
cd "$T/work" || exit 93
mkdir -p reports rstaudit-results roles/net/tasks
cp "$FIXTURE" host.json
rstaudit snapshot --snapshot host.json --format yaml -o host.yaml || exit 94
rstaudit audit --snapshot host.json --format json --fail-on never -o rstaudit-results/web-1.json || exit 95
cp rstaudit-results/web-1.json web-1.json && cp rstaudit-results/web-1.json db-1.json || exit 96
printf 'description: d\nsysctls:\n  net.core.somaxconn:\n    value: 4096\n    reason: r\n' > "$T/in-effect.yaml"
# "The latest apply still in effect": one, before each rollback.
in_effect() {
    sysctl -q -w net.core.somaxconn=1000 &&
        rstaudit apply --profile "$T/in-effect.yaml" > /dev/null 2>&1 || exit 97
}
"#;

/// The host's global keys (shared by every namespace), to show that nothing changed them.
fn host_globals() -> Vec<(String, Option<String>)> {
    [
        "ipv4/tcp_mem",
        "ipv4/tcp_max_orphans",
        "core/netdev_max_backlog",
        "core/rmem_max",
        "core/wmem_max",
        "netfilter/nf_conntrack_max",
    ]
    .iter()
    .map(|k| {
        let v = std::fs::read_to_string(Path::new("/proc/sys/net").join(k)).ok();
        (k.to_string(), v)
    })
    .collect()
}

#[test]
fn the_documented_commands_run() {
    let commands = doc_commands();
    assert!(
        commands.len() > 40,
        "only {} commands found in the documentation: {commands:#?}",
        commands.len()
    );
    let t = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for d in ["bin", "work", "out"] {
        std::fs::create_dir(t.path().join(d)).unwrap();
    }
    std::os::unix::fs::symlink(bin(), t.path().join("bin/rstaudit")).unwrap();
    common::copied_proc_tree(
        &t.path().join("copied-host"),
        &["netstat", "snmp"],
        "6.18.0",
    );
    let mut script = SETUP.to_string();
    let mut run = Vec::new();
    for (n, c) in commands.iter().enumerate() {
        if let Some((_, why)) = EXCEPTIONS.iter().find(|(e, _)| c.line.contains(e)) {
            assert!(!why.is_empty());
            continue;
        }
        if c.line.starts_with("rstaudit rollback") {
            script.push_str("in_effect\n");
        }
        script.push_str(&format!(
            // On a line of its own: a comment at the end of the command ends with it.
            "(\n{}\n) > \"$T/out/{n}.txt\" 2>&1 < /dev/null; echo $? > \"$T/out/{n}.rc\"\n",
            substituted(&c.line)
        ));
        run.push((n, c));
    }
    assert!(run.len() > 30, "{} commands left to run", run.len());
    let before = host_globals();
    let ns = Netns::new("otdocs");
    let out = ns
        .command("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
        ])
        .arg(&script)
        .env("T", t.path())
        // Outermost first: one bound back makes those inside it visible again.
        .env(
            "KEEP",
            [
                Path::new(env!("CARGO_MANIFEST_DIR")),
                Path::new(bin()).parent().unwrap(),
                t.path(),
            ]
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        )
        .env("FIXTURE", snapshot())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the setup failed: {}",
        common::text(&out)
    );
    assert_eq!(
        host_globals(),
        before,
        "a documented command changed a global key"
    );
    let mut failures = Vec::new();
    for (n, c) in &run {
        let rc = std::fs::read_to_string(t.path().join(format!("out/{n}.rc")))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "(did not run)".into());
        let text =
            std::fs::read_to_string(t.path().join(format!("out/{n}.txt"))).unwrap_or_default();
        if !(rc == "0" || rc == "1") || text.contains("panicked") {
            failures.push(format!("{}: `{}` exited {rc}:\n{text}", c.place, c.line));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documented commands did not run:\n\n{}",
        failures.len(),
        run.len(),
        failures.join("\n")
    );
}

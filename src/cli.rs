//! The command-line surface of rstaudit (clap derive).
//!
//! Every command and flag of rstaudit lives here, with its help text
//! and an example. Nothing in this module does any work: `main.rs` dispatches
//! to `commands::*`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Resets listed whole in a packet-check report unless `--max-events` says otherwise.
const DEFAULT_MAX_EVENTS: usize = 10_000;

/// Find why Linux connections get reset, and fix it.
///
/// rstaudit reads the kernel's network settings, the socket tables and the
/// socket options of running processes, flags what makes TCP resets likely,
/// recommends and applies sysctl fixes, and confirms findings by watching real
/// resets or reproducing them in throwaway network namespaces.
///
/// Exit codes: 0 = ran, nothing at or above the threshold; 1 = findings at or
/// above --fail-on, or drift; 2 = could not run.
#[derive(Debug, Parser)]
#[command(name = "rstaudit", version, propagate_version = true)]
#[command(
    after_help = "Example:\n  sudo rstaudit audit\n  rstaudit audit --format json --fail-on high"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// When to colour the output: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(
        long,
        value_enum,
        global = true,
        value_name = "WHEN",
        default_value_t = ColorWhen::Auto
    )]
    pub color: ColorWhen,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit this host (or a snapshot) for settings that make resets likely.
    #[command(
        after_help = "Examples:\n  sudo rstaudit audit\n  sudo rstaudit audit --format json --fail-on high\n  rstaudit audit --snapshot host.json --set idle_timeout=350"
    )]
    Audit(AuditArgs),
    /// Save what the host looks like (sysctls, counters, sockets, owners, options).
    #[command(
        after_help = "Examples:\n  sudo rstaudit snapshot -o host.json\n  sudo rstaudit snapshot --netns all --format yaml"
    )]
    Snapshot(SnapshotArgs),
    /// Print the fixes for today's findings (sysctl.d, shell or Ansible).
    #[command(
        after_help = "Examples:\n  sudo rstaudit fix --emit sysctl -o /tmp/99-rstaudit.conf\n  sudo rstaudit fix --emit ansible"
    )]
    Fix(FixArgs),
    /// Apply a sysctl profile or today's fixes, as one transaction.
    #[command(
        after_help = "Examples:\n  sudo rstaudit apply --profile baseline --dry-run\n  sudo rstaudit apply --profile behind-load-balancer --persist /etc/sysctl.d/90-rstaudit.conf"
    )]
    Apply(ApplyArgs),
    /// Compare live values with a profile; exit 1 on drift.
    #[command(
        after_help = "Examples:\n  rstaudit verify --profile baseline\n  rstaudit verify --profile baseline --format json"
    )]
    Verify(VerifyArgs),
    /// Restore the values recorded before an apply.
    #[command(
        after_help = "Examples:\n  sudo rstaudit rollback\n  sudo rstaudit rollback /var/lib/rstaudit/rollback-20261123T192800.123Z-4242-0000.json\n  sudo rstaudit rollback --skip-persist"
    )]
    Rollback(RollbackArgs),
    /// List or show the sysctl profiles.
    #[command(
        after_help = "Examples:\n  rstaudit profiles list\n  rstaudit profiles show baseline"
    )]
    Profiles(ProfilesArgs),
    /// List, explain or lint the rules.
    #[command(
        after_help = "Examples:\n  rstaudit rules list\n  rstaudit rules explain linger-zero\n  rstaudit rules lint ./my-rules"
    )]
    Rules(RulesArgs),
    /// Look up a symptom: the causes of an error message, the rules, how to confirm, what to change.
    #[command(
        after_help = "Examples:\n  rstaudit explain 'java.net.SocketException: Connection reset'\n  rstaudit explain 'connection reset after 60 s idle behind a load balancer'\n  rstaudit explain ECONNREFUSED\n  rstaudit explain 4 --format json\n  journalctl -u app -n 20 | rstaudit explain -\n\nExit codes: 0 = a cause matched; 1 = nothing matched (examples are shown); 2 = could not run."
    )]
    Explain(ExplainArgs),
    /// Render one view of many hosts' JSON audits: rules x hosts, common findings and fixes.
    #[command(
        after_help = "Examples:\n  rstaudit report rstaudit-results/\n  rstaudit report rstaudit-results/ --format html -o fleet.html\n  rstaudit report web-*.json --max-age 12h --fail-on high --format json\n\nExit codes: 0 = nothing at or above --fail-on across the fleet; 1 = findings at or above it; 2 = could not run (no usable audit among the files)."
    )]
    Report(ReportArgs),
    /// Watch real resets (live) or reproduce findings in throwaway namespaces (--lab).
    #[command(name = "packet-check")]
    #[command(
        after_help = "Examples:\n  sudo rstaudit packet-check --duration 30\n  sudo rstaudit packet-check --port 443 --pcap resets.pcap\n  sudo rstaudit packet-check --lab --all\n  sudo rstaudit packet-check --lab --rule abort-on-overflow --with net.ipv4.tcp_abort_on_overflow=1"
    )]
    PacketCheck(PacketCheckArgs),
    /// The always-on check: resets in every namespace, the audit every few minutes, /metrics,
    /// /healthz and JSON-lines events, until stopped.
    #[command(
        after_help = "Examples:\n  sudo rstaudit watch\n  sudo rstaudit watch --listen 0.0.0.0:9945 --events /var/log/rstaudit/events.jsonl\n  sudo rstaudit watch --audit-every 10m --window 15m --events - | jq -c 'select(.type == \"reset\")'\n\nSignals: SIGINT or SIGTERM stop it (the tracing instance and probes are removed); SIGHUP reloads the rules, profiles and config file (a bad file keeps the old ones and says why) and reopens the event file (logrotate).\nExit codes: 0 = stopped by a signal; 2 = could not start."
    )]
    Watch(WatchArgs),
    /// Print a shell completion script, or write all of them into a directory.
    #[command(
        after_help = "Examples:\n  rstaudit completions bash > /etc/bash_completion.d/rstaudit\n  rstaudit completions --dir target/assets/completions"
    )]
    Completions {
        /// The shell to generate for.
        #[arg(required_unless_present = "dir", conflicts_with = "dir")]
        shell: Option<CompletionShell>,
        /// Write rstaudit (bash), _rstaudit (zsh) and rstaudit.fish into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the man page (roff) for rstaudit, or write every page into a directory.
    #[command(
        after_help = "Examples:\n  rstaudit man > /usr/local/share/man/man1/rstaudit.1\n  rstaudit man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write rstaudit.1 and one page per command (rstaudit-audit.1, ...) into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Where the host picture comes from: the live host (default), a copied tree or a saved snapshot.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Network namespace: a name under /run/netns, a path such as /proc/PID/ns/net, or `all`
    /// (the host's, every /run/netns name, every bind-mounted one and every process's).
    #[arg(long, value_name = "NAME|PATH|all")]
    pub netns: Option<String>,
    /// Audit a saved snapshot (from `rstaudit snapshot`) instead of the live host.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["root", "netns"])]
    pub snapshot: Option<PathBuf>,
    /// Read a copied tree (DIR/proc/sys/net, DIR/proc/net, ...) instead of the live /proc.
    #[arg(long, value_name = "DIR", conflicts_with = "netns")]
    pub root: Option<PathBuf>,
    /// Sample the counters twice, SECONDS apart, and judge the change (live host only: a
    /// saved snapshot holds the samples it was taken with).
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["snapshot", "root"])]
    pub interval: Option<f64>,
    /// How to find each socket's process and read its options: bpf (one BPF iterator over
    /// every process's descriptors, in the kernel: root, BTF, Linux 5.11), proc (/proc/*/fd
    /// and duplicated descriptors, several system calls a socket), or auto (bpf where the
    /// kernel allows it, else proc with a note saying why).
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        default_value_t = OwnerScanArg::Auto,
        conflicts_with_all = ["snapshot", "root"]
    )]
    pub owner_scan: OwnerScanArg,
}

/// `--owner-scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OwnerScanArg {
    #[default]
    Auto,
    Bpf,
    Proc,
}

/// Parameters for the rules: a profile's and `--set` overrides.
#[derive(Debug, Clone, Default, Args)]
pub struct RuleSelectArgs {
    /// Extra rule directory; its rules add to and override the built-in ones by id.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Run only these rules.
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Skip these rules.
    #[arg(long, value_name = "ID,...", value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Take rule parameters from a profile (a name from `profiles list`, or a file).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Set a rule parameter, e.g. idle_timeout=350.
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Yaml,
    Junit,
    Prometheus,
    Html,
}

/// `--fail-on`: `never`, `SEVERITY` (exposed and observed findings) or `EXPOSURE:SEVERITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailOn(pub Option<crate::rules::Threshold>);

impl Default for FailOn {
    fn default() -> Self {
        Self(Some(crate::rules::Threshold::default()))
    }
}

pub(crate) fn parse_fail_on(s: &str) -> Result<FailOn, String> {
    if s == "never" {
        return Ok(FailOn(None));
    }
    crate::rules::Threshold::parse(s)
        .map(|t| FailOn(Some(t)))
        .map_err(|e| format!("{e}; expected SEVERITY, EXPOSURE:SEVERITY or never, e.g. medium, latent:medium, observed:low"))
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
    pub format: AuditFormat,
    /// Exit 1 on findings at or above this threshold. SEVERITY (info, low, medium, high,
    /// critical) counts exposed and observed findings only; EXPOSURE:SEVERITY sets the
    /// least exposure too (latent:medium also fails on settings nothing depends on now,
    /// observed:low only on what counters show happening); never disables it.
    /// [default: medium, or fail_on of the config file]
    #[arg(long, value_name = "[EXPOSURE:]SEVERITY", value_parser = parse_fail_on)]
    pub fail_on: Option<FailOn>,
    /// Config file (YAML) with the audit's settings for this host: profile, fail_on, rules,
    /// accept, only, skip, params; flags given here override it (docs/config.md). Default:
    /// /etc/rstaudit/config.yaml if it exists (RSTAUDIT_CONFIG names another default; empty:
    /// none); a file named here must exist.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accept file (YAML): waivers naming findings that are accepted, each with a reason
    /// and an expiry date. Accepted findings are still shown and do not count against
    /// --fail-on; an expired or unused waiver is reported and fails the audit unless
    /// --fail-on is never (docs/accept.md).
    #[arg(long, value_name = "FILE")]
    pub accept: Option<PathBuf>,
    /// Write the report to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub select: RuleSelectArgs,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DataFormat::Json)]
    pub format: DataFormat,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    Sysctl,
    Sh,
    Ansible,
}

#[derive(Debug, Args)]
pub struct FixArgs {
    /// What to emit.
    #[arg(long, value_enum, default_value_t = Emit::Sysctl)]
    pub emit: Emit,
    /// Write to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub select: RuleSelectArgs,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["profile", "fixes"])))]
pub struct ApplyArgs {
    /// The profile to apply: a name from `profiles list`, or a file.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Apply the sysctl fixes of today's findings.
    #[arg(long)]
    pub fixes: bool,
    /// Show the diff and validate, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the values to this sysctl.d file (atomically; only a file rstaudit created).
    #[arg(long, value_name = "FILE")]
    pub persist: Option<PathBuf>,
    /// Network namespace(s) to apply in: a name under /run/netns or a path, several
    /// (`A,B`), or `all` (this one and every other one found); several are one transaction,
    /// with one rollback file per namespace (`rollback` restores them all).
    #[arg(long, value_name = "NAME|PATH|A,B|all")]
    pub netns: Option<String>,
    /// Tests: `all` (and the comparison after an apply) means only this namespace and the
    /// names under /run/netns that start with PREFIX.
    #[arg(long, value_name = "PREFIX", hide = true)]
    pub netns_scope: Option<String>,
    /// Where rollback files are kept.
    #[arg(long, value_name = "DIR", default_value = crate::remedy::state::DEFAULT_DIR)]
    pub state_dir: PathBuf,
    /// Set a rule parameter, e.g. idle_timeout=350 (with --fixes).
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    pub set: Vec<String>,
    /// Change these keys even though a sysctl.d / sysctl.conf file rstaudit does not manage
    /// sets them (without it, such a key is refused and nothing is changed).
    #[arg(long, value_name = "KEY,...", value_delimiter = ',')]
    pub override_owned: Vec<String>,
    /// Tests: read the sysctl configuration under DIR (DIR/etc/sysctl.d, ...,
    /// DIR/etc/sysctl.conf) instead of the system's.
    #[arg(long, value_name = "DIR", hide = true)]
    pub sysctl_root: Option<PathBuf>,
    /// Output format of the diff.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
    /// Make one step of the transaction fail on purpose (tests of the rollback path):
    /// validate, rollback-file, write:KEY, read-back:KEY, persist-write, persist-rename,
    /// restore:KEY; pause-after-write:KEY holds the run 2 s after KEY is written.
    #[arg(long, value_name = "STEP", hide = true)]
    pub inject_fault: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The profile to compare with: a name from `profiles list`, or a file.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: String,
    /// Network namespace(s) to check: a name under /run/netns or a path, several (`A,B`), or
    /// `all` (this one and every other one found).
    #[arg(long, value_name = "NAME|PATH|A,B|all")]
    pub netns: Option<String>,
    /// Tests: `all` means only this namespace and the names under /run/netns that start
    /// with PREFIX.
    #[arg(long, value_name = "PREFIX", hide = true)]
    pub netns_scope: Option<String>,
    /// Check persistence in this sysctl.d file (default: every file sysctl --system reads).
    #[arg(long, value_name = "FILE")]
    pub persist: Option<PathBuf>,
    /// Tests: read the sysctl configuration under DIR (DIR/etc/sysctl.d, ...,
    /// DIR/etc/sysctl.conf) instead of the system's.
    #[arg(long, value_name = "DIR", hide = true)]
    pub sysctl_root: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The rollback file to restore (default: the latest in --state-dir).
    pub file: Option<PathBuf>,
    /// Where rollback files are kept.
    #[arg(long, value_name = "DIR", default_value = crate::remedy::state::DEFAULT_DIR)]
    pub state_dir: PathBuf,
    /// Show what would be restored, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore the values only; leave the persist file the rollback file records as it
    /// is (not written, not removed). For rollback files whose persist path is refused,
    /// such as a relative path recorded by an earlier version.
    #[arg(long)]
    pub skip_persist: bool,
    /// Make one step fail on purpose (tests): validate, write:KEY, read-back:KEY,
    /// persist-write, persist-rename, restore:KEY; pause-after-write:KEY holds the run 2 s.
    #[arg(long, value_name = "STEP", hide = true)]
    pub inject_fault: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ProfilesArgs {
    #[command(subcommand)]
    pub action: ProfilesAction,
}

#[derive(Debug, Subcommand)]
pub enum ProfilesAction {
    /// List the built-in profiles.
    List,
    /// Show one profile, with `extends:` resolved.
    Show {
        /// A name from `profiles list`, or a file.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub action: RulesAction,
}

#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// List the rules (built-in, plus --rules DIR).
    List {
        /// Extra rule directory.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Explain one rule: why it matters, what it checks, the fix (or, for a text that is no
    /// rule id, look it up as a symptom, as `rstaudit explain`).
    Explain {
        /// Rule id (or a symptom: an error message, an errno, a cause's name).
        id: String,
        /// Extra rule directory.
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
    /// Check rule files and report every problem at once (default: the built-in rules).
    Lint {
        /// Directory of rule files.
        dir: Option<PathBuf>,
    },
    /// Print docs/rules.md (the rule reference) generated from the rules.
    Doc,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The symptom: an error message as printed, an errno name or number, or a cause's name
    /// (several words are joined with spaces); `-` reads it from standard input.
    #[arg(required = true, value_name = "TEXT")]
    pub text: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
    /// Show at most N causes, best first (0: every cause that matches).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub limit: usize,
    /// Extra rule directory: its rules add to and override the built-in ones by id.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Rank the causes by what a saved snapshot shows instead of this host.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["root", "text_only"])]
    pub snapshot: Option<PathBuf>,
    /// Rank the causes by what a copied tree (DIR/proc/...) shows instead of this host.
    #[arg(long, value_name = "DIR", conflicts_with = "text_only")]
    pub root: Option<PathBuf>,
    /// Rank the causes by the text alone: do not look at this host.
    #[arg(long)]
    pub text_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PacketFormat {
    Table,
    Json,
    Prometheus,
    Html,
}

#[derive(Debug, Args)]
pub struct PacketCheckArgs {
    /// Reproduce findings in throwaway network namespaces instead of watching live traffic.
    #[arg(long)]
    pub lab: bool,
    /// With --lab: the rule (or scenario) to reproduce.
    #[arg(long, value_name = "ID", requires = "lab")]
    pub rule: Vec<String>,
    /// With --lab: run every scenario.
    #[arg(long, requires = "lab", conflicts_with = "rule")]
    pub all: bool,
    /// With --lab: use this value inside the lab instead of the host's (KEY=VALUE).
    #[arg(long = "with", value_name = "KEY=VALUE", requires = "lab")]
    pub with: Vec<String>,
    /// How long to watch, in seconds (above 0, at most 604800: a week).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub duration: f64,
    /// Capture on this interface only (default: all).
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Only resets to or from this port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Network namespace to watch (name under /run/netns or a path).
    #[arg(long, value_name = "NAME|PATH")]
    pub netns: Option<String>,
    /// Write the captured resets to a pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// List at most N resets whole in the report; every reset is still counted in the causes,
    /// the timeline and the verdicts.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EVENTS, conflicts_with = "lab")]
    pub max_events: usize,
    /// Also write every reset to FILE as it is seen, one JSON object a line.
    #[arg(long, value_name = "FILE", conflicts_with = "lab")]
    pub events_file: Option<PathBuf>,
    /// Extra rule directory for the audit behind the check: adds to and overrides the built-in
    /// rules by id (as `audit --rules`).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Use the tracefs at DIR for the kernel's reset reasons (default: /sys/kernel/tracing,
    /// then /sys/kernel/debug/tracing, mounting tracefs if neither is there).
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
    /// How to read the kernel's trace: binary records (per-CPU trace_pipe_raw, the cheapest),
    /// text (trace_pipe), or auto (binary where the kernel's layouts can be read, else text).
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        default_value_t = TraceReaderArg::Auto,
        conflicts_with = "lab"
    )]
    pub trace_reader: TraceReaderArg,
    /// Where sent resets' causes come from: the kernel's reason (6.10 and later), derived from
    /// where the kernel sent them (kprobes on the reset sites, the packet, the socket table:
    /// kernels before 6.10, and any kernel to cross-check), or auto (the kernel's reason where
    /// it names every cause, 6.12 and later; derived otherwise).
    #[arg(
        long,
        value_enum,
        value_name = "FROM",
        default_value_t = CauseSourceArg::Auto,
        conflicts_with = "lab"
    )]
    pub cause_source: CauseSourceArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PacketFormat::Table)]
    pub format: PacketFormat,
    /// Write the report to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Set a rule parameter, e.g. idle_timeout=350.
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    pub set: Vec<String>,
}

/// Default address of `watch`'s endpoint.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9945";

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Serve GET /metrics (Prometheus text, or OpenMetrics when asked by Accept) and GET
    /// /healthz on ADDR:PORT. [default: 127.0.0.1:9945, or watch.listen of the config file]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Write one JSON object per reset and per finding change to PATH (appended to; reopened
    /// on SIGHUP), or to standard output with `-`. [default: none, or watch.events]
    #[arg(long, value_name = "PATH|-")]
    pub events: Option<PathBuf>,
    /// Audit every namespace this often, e.g. 5m, 90s, 1h. [default: 5m, or watch.audit_every]
    #[arg(long, value_name = "DURATION", value_parser = rstaudit::config::parse_duration)]
    pub audit_every: Option<std::time::Duration>,
    /// Judge each finding's verdict over the resets of this last stretch of time.
    /// [default: 5m, or watch.window]
    #[arg(long, value_name = "DURATION", value_parser = rstaudit::config::parse_duration)]
    pub window: Option<std::time::Duration>,
    /// Distinct values a free-text label of a metric family holds before new ones are
    /// exported as `other`. [default: 200, or watch.values_per_label]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub values_per_label: Option<u64>,
    /// Series a metric family holds before new ones are counted in its all-`other` series.
    /// [default: 10000, or watch.max_series]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_series: Option<u64>,
    /// Config file (YAML): the audit's keys (profile, rules, only, skip, params) and the
    /// `watch:` ones; flags given here override it (docs/config.md). Default:
    /// /etc/rstaudit/config.yaml if it exists (RSTAUDIT_CONFIG names another default; empty:
    /// none); a file named here must exist. Read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ask this API socket of a container runtime (podman, docker) for container names, e.g.
    /// podman=/run/user/1000/podman/podman.sock. [default: /run/podman/podman.sock and
    /// /run/docker.sock, or watch.runtime_sockets]
    #[arg(long = "runtime-socket", value_name = "RUNTIME=PATH")]
    pub runtime_socket: Vec<String>,
    #[command(flatten)]
    pub select: RuleSelectArgs,
    /// Use the tracefs at DIR for the kernel's reset reasons (as packet-check --tracefs).
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
    /// How to read the kernel's trace (as packet-check --trace-reader).
    #[arg(long, value_enum, value_name = "HOW", default_value_t = TraceReaderArg::Auto)]
    pub trace_reader: TraceReaderArg,
    /// Where sent resets' causes come from (as packet-check --cause-source).
    #[arg(long, value_enum, value_name = "FROM", default_value_t = CauseSourceArg::Auto)]
    pub cause_source: CauseSourceArg,
}

/// `--cause-source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CauseSourceArg {
    Auto,
    Kernel,
    Derived,
}

/// `--trace-reader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceReaderArg {
    Auto,
    Binary,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Html,
    Prometheus,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Audit files (`rstaudit audit --format json` output), or directories: every *.json in
    /// a directory is read (not its subdirectories). The host is the file name without .json.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Exit 1 when a finding on any host is at or above this threshold (the same syntax as
    /// `audit --fail-on`: SEVERITY, EXPOSURE:SEVERITY or never).
    #[arg(
        long,
        value_name = "[EXPOSURE:]SEVERITY",
        default_value = "medium",
        value_parser = parse_fail_on
    )]
    pub fail_on: FailOn,
    /// An audit older than this is stale: SECONDS, or a number with s, m, h or d (`12h`, `2d`).
    /// Its age is taken from the audit's `taken_at_ms`, or the file's modification time.
    #[arg(long, value_name = "AGE", default_value = "2d", value_parser = parse_age)]
    pub max_age: u64,
    /// Write the report to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `90`, `90s`, `30m`, `12h`, `2d` -> seconds.
fn parse_age(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not an age; expected e.g. 3600, 90m, 12h, 2d"))?;
    let mult = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{other:?} is not a unit of age (s, m, h, d)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90"), Ok(90));
        assert_eq!(parse_age("30m"), Ok(1800));
        assert_eq!(parse_age("12h"), Ok(43_200));
        assert_eq!(parse_age("2d"), Ok(172_800));
        assert!(parse_age("2 weeks").is_err());
        assert!(parse_age("h").is_err());
    }
}

//! Where the time of one `rstaudit audit` goes: its parts timed one by one, in one process,
//! in the calling thread's network namespace (run it next to bench/loadgen.rs, as
//! bench/run.sh `-p` sets it up). Root.
//!
//!   ip netns exec NS target/release/examples/audit_parts [REPS]    # default 7
//!
//! Every round times, in this order:
//! - `dump`: the sock_diag dump alone (`host::sockets::dump_sock_diag`), every socket parsed
//!   and dropped, on this thread;
//! - `iter`: one run of the kernel's socket iterator (`bpf::Reader::read`: the run, the
//!   records copied out, their index by inode), the program loaded once before the rounds;
//! - `collect`: the whole collection as the audit does it (`host::collect_into`: loading
//!   the program, its first run, counters, sysctls, the dump with every socket joined to its
//!   owner on the way), into a sink that only counts;
//! - `audit`: the same with the rules judging every socket (`rules::eval::Fold`), their
//!   findings made, and the report built; `rules` is `audit` - `collect`;
//! - `output`: rendering that report as the default table (written nowhere).
//!
//! Prints one line per part, `part median min max` in milliseconds (medians of REPS
//! rounds), then `sockets N` (what the dump saw) and `records N` (what the iterator saw).

use std::time::Instant;

use rstaudit::host::{self, CollectOptions, OwnerScan, Socket, SocketSink, Source};
use rstaudit::report::{self, AuditReport};
use rstaudit::rules::{self, Selection};

/// Counts what it is given, and drops it.
#[derive(Default)]
struct Count(usize);

impl SocketSink for Count {
    fn socket(&mut self, socket: Socket) {
        self.0 += 1;
        std::hint::black_box(socket);
    }
    fn restart(&mut self) {
        self.0 = 0;
    }
}

fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("audit_parts: {what}: {e}");
    std::process::exit(2)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse().unwrap_or_else(|e| die("REPS", e)))
        .unwrap_or(7)
        .max(1);
    let opts = CollectOptions {
        source: Source::Live,
        netns: None,
        interval: None,
        owners: true,
        options: true,
        scan: OwnerScan::Bpf,
    };
    let set = rules::load::builtin().unwrap_or_else(|e| die("built-in rules", e));
    let plan = Selection::default()
        .plan(&set)
        .unwrap_or_else(|e| die("rule selection", e));
    let (reader, first) = host::bpf::read().unwrap_or_else(|e| die("socket iterator", e));
    let records = first.iter().count();
    drop(first);
    let names = ["dump", "iter", "collect", "audit", "rules", "output"];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); names.len()];
    let mut sockets = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let mut count = Count::default();
        host::sockets::dump_sock_diag(&mut Vec::new(), &mut count)
            .unwrap_or_else(|e| die("sock_diag dump", e));
        times[0].push(ms(t));
        sockets = count.0;

        let t = Instant::now();
        std::hint::black_box(reader.read().unwrap_or_else(|e| die("socket iterator", e)));
        times[1].push(ms(t));

        let t = Instant::now();
        let collected = host::collect_into(&opts, &mut |_| Count::default())
            .unwrap_or_else(|e| die("collect", e));
        let collect = ms(t);
        times[2].push(collect);
        std::hint::black_box(collected);

        let t = Instant::now();
        let collected = host::collect_into(&opts, &mut |h| {
            rules::eval::Fold::new(&plan.rules, &plan.params, h)
        })
        .unwrap_or_else(|e| die("collect", e));
        let (snapshots, outcomes): (Vec<_>, Vec<_>) = collected
            .into_iter()
            .map(|(snapshot, fold)| {
                let outcome = fold.finish(&snapshot);
                (snapshot, outcome)
            })
            .unzip();
        let report = AuditReport::new(snapshots.iter().zip(outcomes).collect(), None);
        let audit = ms(t);
        times[3].push(audit);
        times[4].push(audit - collect);

        let t = Instant::now();
        std::hint::black_box(report::table::table(&report, report::term::Term::PLAIN));
        times[5].push(ms(t));
    }
    for (name, mut t) in names.iter().zip(times) {
        t.sort_by(f64::total_cmp);
        println!(
            "{name} {:.1} {:.1} {:.1}",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1]
        );
    }
    println!("sockets {sockets}");
    println!("records {records}");
}

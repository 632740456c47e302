//! Fleet generator for the `rstaudit report` benchmark: N host audit files from one real
//! audit.
//!
//! Usage: `fleetgen AUDIT.json N OUTDIR [BAD_PER_THOUSAND]`. Writes OUTDIR/host-00001.json
//! ... Each host is the real audit with a deterministic variation (seeded by its number):
//! some findings dropped, exposures moved (a few observed), `taken_at_ms` spread over the
//! last four days (so some are stale), the somaxconn fix value varied, a second namespace
//! on one host in ten. BAD_PER_THOUSAND files (default 5) are broken on purpose (empty,
//! truncated, another schema), as a real fleet has. Registered as a cargo example; run by
//! bench/fleet.sh.

use serde_json::{Value, json};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: fleetgen AUDIT.json N OUTDIR [BAD_PER_THOUSAND]");
        std::process::exit(2);
    }
    let base: Value = serde_json::from_slice(&std::fs::read(&args[0]).expect("read the audit"))
        .expect("the audit is JSON");
    let n: u64 = args[1].parse().expect("N is a number");
    let out = std::path::Path::new(&args[2]);
    let bad: u64 = args
        .get(3)
        .map_or(5, |b| b.parse().expect("BAD_PER_THOUSAND"));
    std::fs::create_dir_all(out).expect("create OUTDIR");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let exposures = [
        "latent", "latent", "exposed", "latent", "exposed", "observed",
    ];
    let mut bytes_total = 0usize;
    for i in 1..=n {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ i.wrapping_mul(0x1000_0001));
        let path = out.join(format!("host-{i:05}.json"));
        if rng.below(1000) < bad {
            let text = match rng.below(3) {
                0 => String::new(),
                1 => "{\"schema\": 2, \"namespaces\": [".to_string(),
                _ => "{\"schema\": 3}".to_string(),
            };
            std::fs::write(&path, text).expect("write");
            continue;
        }
        let mut v = base.clone();
        v["taken_at_ms"] = json!(now_ms - rng.below(4 * 86_400_000));
        if rng.below(10) == 0 {
            let mut second = v["namespaces"][0].clone();
            second["netns"] = json!(format!("pid {} (app)", 1000 + rng.below(30_000)));
            v["namespaces"].as_array_mut().unwrap().push(second);
        }
        for ns in v["namespaces"].as_array_mut().unwrap() {
            let findings = ns["findings"].as_array_mut().unwrap();
            findings.retain(|_| rng.below(4) != 0);
            for f in findings.iter_mut() {
                f["exposure"] = json!(exposures[rng.below(exposures.len() as u64) as usize]);
                if let Some(s) = f.pointer_mut("/fix/sysctls").and_then(Value::as_array_mut) {
                    for s in s {
                        if s["key"] == "net.core.somaxconn" {
                            s["value"] = json!(["4096", "8192", "16384"][rng.below(3) as usize]);
                        }
                    }
                }
            }
        }
        let text = serde_json::to_vec_pretty(&v).unwrap();
        bytes_total += text.len();
        std::fs::write(&path, text).expect("write");
    }
    println!(
        "wrote {n} files, {} MB of audits, to {}",
        bytes_total >> 20,
        out.display()
    );
}

//! nftables inside a lab namespace, through the `nft` program.
//!
//! `nft` is started from a thread that has entered the lab namespace, so the
//! child process (and the ruleset it loads) lives in that namespace only.
//! Tables die with the namespace; the lab never names the host's ruleset.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;

use super::netns::LabNs;

/// Where `nft` is, or a message saying how to install it.
pub fn find() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join("nft");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "the lab needs the `nft` program (nftables) for its middlebox and path-cut scenarios; \
         install it with `apt-get install nftables` (Debian/Ubuntu) or `dnf install nftables`"
    )
}

/// Run `nft` with `args` inside `ns`, feeding `stdin`; returns standard output.
pub fn run(ns: &LabNs, args: &[&str], stdin: &str) -> anyhow::Result<String> {
    let nft = find()?;
    ns.run(|| {
        let mut child = Command::new(&nft)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", nft.display()))?;
        child
            .stdin
            .take()
            .context("nft stdin")?
            .write_all(stdin.as_bytes())
            .context("writing the ruleset to nft")?;
        let out = child.wait_with_output().context("waiting for nft")?;
        if !out.status.success() {
            anyhow::bail!(
                "nft {} in the lab's {} namespace failed: {}",
                args.join(" "),
                ns.role,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
}

/// Load a ruleset (`nft -f -`).
pub fn load(ns: &LabNs, ruleset: &str) -> anyhow::Result<()> {
    run(ns, &["-f", "-"], ruleset).map(|_| ())
}

/// The packets counted by all `counter` statements of table `inet NAME`.
pub fn counted_packets(ns: &LabNs, table: &str) -> anyhow::Result<u64> {
    let text = run(ns, &["-j", "list", "table", "inet", table], "")?;
    let json: serde_json::Value =
        serde_json::from_str(&text).context("reading `nft -j list table` output")?;
    Ok(sum_counters(&json))
}

fn sum_counters(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                if k == "counter" {
                    v.get("packets").and_then(|p| p.as_u64()).unwrap_or(0)
                } else {
                    sum_counters(v)
                }
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter().map(sum_counters).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_rule_counters() {
        // Shape of `nft -j list table inet t` (nftables 1.0).
        let v: serde_json::Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{"version":"1.0.9"}},{"table":{"family":"inet","name":"t"}},
            {"rule":{"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":"invalid"}},
            {"counter":{"packets":2,"bytes":104}},{"reject":{"type":"tcp reset"}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(super::sum_counters(&v), 2);
    }
}

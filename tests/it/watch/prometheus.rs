//! A real Prometheus server (Debian's 2.42) scrapes a running `rstaudit watch`; the test
//! makes known resets in a namespace of its own (loopback only, the socket helper under a
//! program name of its own) and in a podman container, and PromQL queries through
//! Prometheus's HTTP API return them by cause and by container. Prometheus's web UI, loaded
//! in headless Chromium, graphs them: the legend names the test's series, and the screenshot
//! is the one docs/watch.md shows (docs/img/watch-prometheus-graph.sh writes it there).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::support::{
    Podman, PodmanApi, Prometheus, Watch, encode, helper_in_container, namespace_of, wait_for,
};
use crate::common::Netns;

/// `sum by (LABELS)` answers as (label values joined by `/`) -> value.
fn by(result: &serde_json::Value, labels: &[&str]) -> BTreeMap<String, f64> {
    result
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| {
            let key: Vec<&str> = labels
                .iter()
                .map(|l| r["metric"][*l].as_str().unwrap_or(""))
                .collect();
            let value = r["value"][1].as_str().unwrap_or("NaN").parse().unwrap();
            (key.join("/"), value)
        })
        .collect()
}

fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn a_real_prometheus_scraping_watch_returns_the_tests_resets_by_cause_and_container() {
    let api = PodmanApi::start("wprom");
    let socket = format!("podman={}", api.socket.display());
    let mut w = Watch::start(&["--audit-every", "1h", "--runtime-socket", &socket]);
    let prometheus = Prometheus::start(&[w.addr]);

    let ns = Netns::new("wprom");
    w.wait_line(
        &format!("watching namespace {}", ns.name),
        Duration::from_secs(30),
    );
    let mut podman = Podman::new("wprom");
    let (ctr, pid) = podman.run("c", &["/bin/busybox", "sleep", "600"]);
    let ctr_ns = namespace_of(&mut w, pid, Duration::from_secs(60));

    // The test's own resets: those of its namespace and those of its container. They are
    // picked by namespace and container, not by process name: the helper has a name of its
    // own, but when the trace is flooded (another run's resets by the thousand a second) a
    // process is at times counted under the name it had before its exec (docs/watch.md).
    let comm = "wpromhelper";
    let ours = format!(
        "rstaudit_resets_total{{netns=\"{}\"}} or rstaudit_resets_total{{container=\"{ctr}\"}}",
        ns.name
    );
    let by_cause_and_container = format!("sum by (cause, container) ({ours})");
    let wait_until = |want: BTreeMap<String, f64>| {
        wait_for(
            "Prometheus to return the test's resets",
            Duration::from_secs(90),
            || {
                let got = by(
                    &prometheus.query(&by_cause_and_container),
                    &["cause", "container"],
                );
                if got == want {
                    Ok(())
                } else {
                    let scraped: Vec<String> = w
                        .metrics()
                        .lines()
                        .filter(|l| l.contains(&ctr) || l.contains(&ns.name))
                        .map(str::to_string)
                        .collect();
                    Err(format!(
                        "{got:?}, want {want:?}\nup: {}\nwatch serves: {scraped:#?}\n{}",
                        prometheus.query("up"),
                        w.stderr()
                    ))
                }
            },
        )
    };

    // First round: three refused connections and a close with unread data in the namespace,
    // two closes with unread data and a refused connection in the container. Each helper
    // waits a second first, so that its resets come well after the exec that named it.
    let first = ns.helper_named(
        comm,
        &[
            "sleep:1000",
            "refused:9",
            "refused:9",
            "refused:9",
            "unread-close",
        ],
    );
    let specs = ["sleep:1000", "unread-close", "unread-close", "refused:9"];
    podman.exec(&ctr, &helper_in_container(&specs));
    wait_until(expect(&[
        ("no-socket/", 3.0),
        ("unread-close/", 1.0),
        (&format!("no-socket/{ctr}"), 1.0),
        (&format!("unread-close/{ctr}"), 2.0),
    ]));
    // A few scrapes apart, a second round in the namespace: the graph shows a step.
    std::thread::sleep(Duration::from_secs(5));
    let second = ns.helper_named(comm, &["sleep:1000", "refused:9", "refused:9"]);
    wait_until(expect(&[
        ("no-socket/", 5.0),
        ("unread-close/", 1.0),
        (&format!("no-socket/{ctr}"), 1.0),
        (&format!("unread-close/{ctr}"), 2.0),
    ]));

    // By cause alone, and the labels Prometheus and watch put on each series.
    let causes = by(
        &prometheus.query(&format!("sum by (cause) ({ours})")),
        &["cause"],
    );
    assert_eq!(causes, expect(&[("no-socket", 6.0), ("unread-close", 3.0)]));
    let series = prometheus.query(&ours);
    for s in series.as_array().unwrap() {
        let m = &s["metric"];
        assert_eq!(m["job"], "rstaudit", "{s}");
        assert_eq!(m["instance"], w.addr.to_string(), "{s}");
        let in_ns = m["netns"] == ns.name.as_str() && m["container"].is_null();
        // (The container's process name is not pinned: containers.rs says why.)
        let in_ctr = m["container"] == ctr.as_str() && m["netns"] == ctr_ns.as_str();
        assert!(in_ns || in_ctr, "{s}");
    }
    // The namespace's counts rose by the second round's two refused connections in the last
    // minute, and its one unread-close did not. Taken over the sum by cause (a subquery): a
    // reset counted under another process name is a new series, whose first sample is no
    // increase of its own (see above). The subquery's steps end at the last whole second, so
    // the increase shows a moment after the count.
    let rose = format!(
        "increase((sum by (cause) (rstaudit_resets_total{{netns=\"{}\"}}))[1m:1s])",
        ns.name
    );
    let rose = wait_for("the increase", Duration::from_secs(30), || {
        let r = by(&prometheus.query(&rose), &["cause"]);
        match r.get("no-socket") {
            Some(v) if *v > 1.0 => Ok(r),
            _ => Err(format!("{r:?}")),
        }
    });
    assert_eq!(rose.get("unread-close"), Some(&0.0), "{rose:?}");

    // Prometheus's web UI graphs them: Chromium loads the graph page, the legend names each
    // series of the query, and the screenshot is kept for docs/watch.md when asked.
    let url = format!(
        "http://{}/graph?g0.expr={}&g0.tab=0&g0.stacked=0&g0.range_input=30s",
        prometheus.web,
        encode(&by_cause_and_container)
    );
    let dom = chromium(&url, &["--dump-dom"]);
    for label in [
        "{cause=\"no-socket\"}".to_string(),
        "{cause=\"unread-close\"}".to_string(),
        format!("{{cause=\"no-socket\", container=\"{ctr}\"}}"),
        format!("{{cause=\"unread-close\", container=\"{ctr}\"}}"),
    ] {
        let compact = label.replace(", ", ",");
        assert!(
            dom.contains(&label) || dom.contains(&compact),
            "the graph's legend has no {label}:\n{dom}"
        );
    }
    let shot = prometheus.dir.path().join("graph.png");
    chromium(
        &url,
        &[
            "--hide-scrollbars",
            "--window-size=1200,1000",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A page with a graph and its legend, not a blank one.
    assert!(png.len() > 20_000, "{} bytes", png.len());
    if let Some(keep) = std::env::var_os("RSTAUDIT_WATCH_GRAPH") {
        std::fs::write(Path::new(&keep), &png).unwrap();
    }

    drop((first, second));
    drop(podman);
    let (status, err) = w.stop();
    assert!(status.success(), "{err}");
}

/// Load `url` in headless Chromium (its JavaScript run for up to 15 s of virtual time) with
/// `args`; its standard output.
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium is needed for this test (Debian package `chromium`, see test.sh)");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

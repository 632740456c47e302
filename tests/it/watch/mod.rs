//! `rstaudit watch`: its parts against real tools (`parts`), the command itself in namespaces
//! the tests make (`command`), resets in real podman containers (`containers`), a real
//! Prometheus server scraping a running watch (`prometheus`), the rule files and dashboard
//! of docs/prometheus/ against promtool (`rules`), the pages against the command's flags and
//! config keys (`docs`), and the deployment files (`deploy`: the systemd unit, the image, the
//! DaemonSet's pod). `support` holds what they share.
//!
//! A missing tool (promtool, prometheus, podman, runc, chromium, systemd-analyze, strace,
//! logrotate) or missing root fails the test; none is skipped.

mod command;
mod containers;
mod deploy;
mod docs;
mod parts;
mod prometheus;
mod rules;
mod support;

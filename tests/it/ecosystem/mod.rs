//! rstaudit with the software around it: Ansible, JUnit consumers, Prometheus, a browser for
//! the HTML reports, shells and man for completions and man pages, and real servers (haproxy,
//! nginx, redis) whose resets are attributed. A missing tool fails its test; none is skipped.

mod ansible;
mod html;
mod junit;
mod prometheus;
mod real_servers;
mod tooling;

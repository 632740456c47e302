//! The integration tests of rstaudit: one test crate, one module per feature, each module a
//! folder of files (or one file). They run the real binary (`common::rstaudit`), read the
//! fixtures under tests/fixtures, and, as root, create and remove network namespaces of their
//! own; the host's settings are never changed.
//!
//! One crate instead of a crate per file: the library and the helpers are linked once, and
//! every test runs in one process (`cargo test --test it MODULE::` runs one module). The kernel
//! matrix, which boots kernels in qemu, is its own test target (tests/kernel_matrix/), so that
//! `cargo test --test kernel_matrix` runs it alone. A new test file goes into the folder of its
//! feature and is declared in that folder's mod.rs; `layout` fails on a file that is not.

mod common;
mod peer;

mod audit;
mod cli;
mod ecosystem;
mod explain;
mod fleet;
mod host;
mod lab;
mod layers;
mod layout;
mod one_truth;
mod packet;
mod parsers;
mod remedy;
mod rules;
mod watch;

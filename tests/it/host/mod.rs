//! The collectors on a live host and in namespaces the tests create: `rstaudit snapshot`,
//! owners and socket options, and what they say about the kernel.

mod kernel;
mod owners_options;
mod snapshot;

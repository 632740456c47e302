//! Collectors: what the host looks like, as a [`Snapshot`].
//!
//! Everything here reads the kernel (or a copied tree, or a saved file) and
//! nothing here knows about rules. A fact that could not be read becomes a
//! [`Note`] with the reason; it is never replaced by a silent default.

mod collect;
mod model;
mod saved;

pub mod bpf;
pub mod counters;
pub mod facts;
pub mod files;
pub mod held;
pub mod identity;
pub mod kallsyms;
pub mod kernel;
pub mod netns;
pub mod options;
pub mod owners;
pub mod process;
pub mod self_stats;
pub mod sockets;
pub mod sysctl;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod workload;
pub mod write;

pub use collect::{
    CollectError, CollectOptions, GONE_NETNS, Source, SourceError, collect, collect_into,
};
pub use held::OwnerScan;
pub use model::*;
pub use saved::{SavedError, file_holds_list, load, parse_saved};

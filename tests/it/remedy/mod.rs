//! Fixes and profiles end to end, in namespaces the tests create: `fix`, `apply`, `verify`,
//! `rollback`, over several namespaces, with the other owners of a key, under injected faults,
//! and fixes that converge.

mod apply_netns;
mod apply_owners;
mod faults;
mod fix;
mod fix_converge;
mod transaction;

//! The symptom lookup (`rstaudit explain TEXT`): people arrive with an error message, not a
//! rule id. The seed's causes live as data in rules/causes/*.yaml (one file per cause: what
//! happens, the words and errno values of its symptoms, the rules that check for it beyond
//! those whose `cause:` it is, the application-side advice); [`catalogue`] loads and checks
//! them.
//!
//! Nothing here reads the host or prints.

pub mod catalogue;
pub mod errno;
pub mod raw;
pub mod words;

pub use catalogue::{Catalogue, Cause, CausesError};

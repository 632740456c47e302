//! The symptom lookup (`rstaudit explain TEXT`): people arrive with an error message, not a
//! rule id. The causes live as data in rules/causes/*.yaml (one file per cause: what
//! happens, the words and errno values of its symptoms, when and on which side it shows,
//! the rules that check for it beyond those whose `cause:` it is, the application-side
//! advice); [`catalogue`] loads and checks them, [`lookup()`] ranks them for a text (by
//! its words, how it fits ([`fit`]) and what a host shows ([`host`])), [`text`] renders
//! the answer.
//!
//! Nothing here reads the host or prints.

pub mod catalogue;
pub mod errno;
pub mod fit;
pub mod host;
pub mod lookup;
pub mod raw;
pub mod text;
pub mod words;

pub use catalogue::{Catalogue, Cause, CausesError};
pub use host::HostView;
pub use lookup::{CauseMatch, Confirm, ConfirmKind, Explanation, Why, lookup};

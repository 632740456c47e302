//! The rule library and `rstaudit rules`: every rule on its fixtures, each claim checked on
//! the kernel, and `rules lint` / `rules doc`.

mod claims;
mod cli;
mod library;

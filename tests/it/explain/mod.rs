//! `rstaudit explain TEXT`: from a symptom to causes, rules and fixes, and what it says about
//! errno values checked on the kernel.

mod kernel;
mod symptoms;

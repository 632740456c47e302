//! An error written with its causes, each after a colon (`connect: Connection refused (os
//! error 111)`), as the command layer prints one: for the library's notes and summaries that
//! carry an error into a report. std only.

/// `err` and its causes, each after a colon.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

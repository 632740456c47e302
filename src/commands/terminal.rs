//! The terminal, as the commands see it: whether standard output is one and how wide
//! (terminal_size), whether to colour (`--color auto|always|never`, NO_COLOR), and progress
//! on standard error for long work (indicatif), shown only on a terminal and never with
//! `--format json`. The renderers get the answer as a [`Term`]; nothing below the command
//! layer asks the terminal.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ColorWhen;
use crate::report::term::Term;

static COLOR: OnceLock<ColorWhen> = OnceLock::new();

/// Remember `--color` for the run (set once, by dispatch).
pub fn init(color: ColorWhen) {
    let _ = COLOR.set(color);
}

/// Whether to colour text written to standard output (or to a file, `to_file`): `always`
/// does, `never` does not; `auto` does on a terminal when NO_COLOR is unset or empty
/// (https://no-color.org).
#[expect(
    clippy::disallowed_methods,
    reason = "the command layer asks whether standard output is a terminal"
)]
pub fn color(to_file: bool) -> bool {
    match COLOR.get().copied().unwrap_or_default() {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            !to_file
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// Where a command's text goes: standard output (`to_file` false) or a file.
pub fn term(to_file: bool) -> Term {
    Term {
        width: if to_file { None } else { stdout_width() },
        color: color(to_file),
    }
}

/// The width of standard output when it is a terminal.
#[expect(
    clippy::disallowed_methods,
    reason = "the command layer asks how wide standard output is"
)]
fn stdout_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
}

/// Whether progress may be drawn: standard error is a terminal and the output is for a
/// person (`machine` false: not JSON or another format a program reads).
#[expect(
    clippy::disallowed_methods,
    reason = "the command layer asks whether standard error is a terminal"
)]
pub fn progress_allowed(machine: bool) -> bool {
    !machine && std::io::stderr().is_terminal()
}

/// A spinner with a message on standard error, ticking on its own; hidden where progress is
/// not allowed. Finish it with [`done`].
pub fn spinner(show: bool, message: impl Into<String>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>3} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar of `len` steps on standard error; hidden where progress is not allowed.
pub fn bar(show: bool, len: u64, message: impl Into<String>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:24} {pos}/{len} {elapsed:>3} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Clear a spinner or bar from the terminal.
pub fn done(bar: &ProgressBar) {
    bar.finish_and_clear();
}

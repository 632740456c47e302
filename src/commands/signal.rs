//! SIGINT and SIGTERM as a stop token for long work (the live check, the lab): the work
//! returns normally and every guard (ftrace instance, namespaces) is dropped on the way out.
//! The one place that installs signal handlers; the library only polls the token.

use anyhow::Context;

use crate::stop::Stop;

/// A token that SIGINT and SIGTERM set instead of killing the process. A second signal of the
/// same kind while the token is set terminates at once (exit 130).
pub fn stop_on_signals() -> anyhow::Result<Stop> {
    let stop = Stop::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.flag())
            .context("installing a signal handler")?;
        signal_hook::flag::register(sig, stop.flag()).context("installing a signal handler")?;
    }
    Ok(stop)
}

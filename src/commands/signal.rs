//! SIGINT and SIGTERM as a stop token for long work (the live check, the lab, watch): the work
//! returns normally and every guard (ftrace instance, namespaces) is dropped on the way out;
//! SIGHUP as a flag for watch's reload. The one place that installs signal handlers; the
//! library only polls the token and the flag.

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

/// A flag that SIGHUP sets (the caller clears it when it has reloaded), instead of ending the
/// process.
pub fn flag_on_hangup() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone())
        .context("installing a signal handler")?;
    Ok(flag)
}

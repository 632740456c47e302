//! SIGINT/SIGTERM as a flag, so a trace session (of the live check or the lab) is removed on
//! the way out.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

/// Make SIGINT and SIGTERM set the returned flag instead of killing the process, so the
/// capture loop can return and every guard (ftrace instance, namespaces) is dropped.
/// A second signal of the same kind while the flag is set terminates at once.
pub fn install_signal_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
            .context("installing a signal handler")?;
        signal_hook::flag::register(sig, flag.clone()).context("installing a signal handler")?;
    }
    Ok(flag)
}

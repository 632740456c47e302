//! TCP states and socket timers as the numbers the engine compares.

use crate::host::{TcpState, Timer};

/// The numeric code of a TCP state name.
pub fn state_code(name: &str) -> Option<f64> {
    (1u8..=12)
        .find(|n| TcpState::from_kernel(*n).is_some_and(|s| s.as_str() == name))
        .map(f64::from)
}

/// Timer names as rules write them.
pub(super) const TIMER_NAMES: [(&str, Timer); 5] = [
    ("none", Timer::None),
    ("retransmit", Timer::Retransmit),
    ("keepalive", Timer::Keepalive),
    ("time_wait", Timer::TimeWait),
    ("zero_window_probe", Timer::ZeroWindowProbe),
];

/// The numeric code of a timer name.
pub fn timer_code(name: &str) -> Option<f64> {
    TIMER_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| timer_num(*t))
}

/// A timer as a number.
pub fn timer_num(t: Timer) -> f64 {
    match t {
        Timer::None => 0.0,
        Timer::Retransmit => 1.0,
        Timer::Keepalive => 2.0,
        Timer::TimeWait => 3.0,
        Timer::ZeroWindowProbe => 4.0,
    }
}

//! When the kernel gives up retransmitting: the arithmetic of net/ipv4/tcp_timer.c, for
//! rules that judge tcp_retries2, tcp_rto_min_us and tcp_rto_max_ms by the time they allow
//! (the rule functions `tcp_model_timeout_ms`, `tcp_model_retries`, `tcp_give_up_ms` and
//! `tcp_syn_give_up_ms`, docs/rule-format.md).
//!
//! An established connection whose data goes unacknowledged is retransmitted each time its
//! retransmission timer fires; the timeout doubles each time, up to tcp_rto_max_ms
//! (`icsk_rto = min(icsk_rto << 1, tcp_rto_max(sk))`, tcp_retransmit_timer). Before each
//! retransmission tcp_write_timeout asks retransmits_timed_out whether the time since the
//! first retransmission (`retrans_stamp`) has reached the budget tcp_model_timeout gives
//! for tcp_retries2: the sum of the timeouts of that many retransmissions doubling from
//! TCP_RTO_MIN (200 ms, a constant: not tcp_rto_min_us) up to tcp_rto_max_ms. The first
//! timer expiry past the budget ends the connection (ETIMEDOUT). A connect() is judged the
//! same way with tcp_syn_retries, from the first SYN, with the base TCP_TIMEOUT_INIT (1 s)
//! and the first tcp_syn_linear_timeouts (6.7) retransmissions not doubling. Pure
//! arithmetic: no I/O.

/// TCP_RTO_MIN (include/net/tcp.h): the base of tcp_model_timeout for established sockets.
pub const TCP_RTO_MIN_MS: f64 = 200.0;
/// TCP_TIMEOUT_INIT: the first SYN timeout, and the base of tcp_model_timeout in SYN_SENT.
pub const TCP_TIMEOUT_INIT_MS: f64 = 1000.0;
/// TCP_RTO_MAX: the largest retransmission timeout before tcp_rto_max_ms existed (6.15).
pub const TCP_RTO_MAX_MS: f64 = 120_000.0;
/// tcp_retries2 is a u8 sysctl.
pub const MAX_RETRIES: u32 = 255;

/// tcp_model_timeout(sk, boundary, rto_base) in ms: how long the kernel keeps
/// retransmitting before it may give up, for `boundary` = tcp_retries2 (`base_ms`
/// TCP_RTO_MIN, counted from the first retransmission) or tcp_syn_retries (`base_ms`
/// TCP_TIMEOUT_INIT, counted from the first SYN), and the largest timeout `rto_max_ms`.
pub fn model_timeout_ms(boundary: u32, base_ms: f64, rto_max_ms: f64) -> f64 {
    let base = base_ms.max(1.0);
    let rto_max = rto_max_ms.max(1.0);
    let ratio = (rto_max / base).floor().max(1.0) as u64;
    let thresh = ratio.ilog2();
    let boundary = boundary.min(MAX_RETRIES);
    if boundary <= thresh {
        ((2u64 << boundary) - 1) as f64 * base
    } else {
        ((2u64 << thresh) - 1) as f64 * base + f64::from(boundary - thresh) * rto_max
    }
}

/// The smallest boundary whose [`model_timeout_ms`] is at least `budget_ms`
/// ([`MAX_RETRIES`] when none is).
pub fn model_retries(budget_ms: f64, base_ms: f64, rto_max_ms: f64) -> u32 {
    (0..=MAX_RETRIES)
        .find(|r| model_timeout_ms(*r, base_ms, rto_max_ms) >= budget_ms)
        .unwrap_or(MAX_RETRIES)
}

/// Milliseconds from the first transmission of unacknowledged data to the kernel giving up
/// (ETIMEDOUT), when the retransmission timeout starts at `rto_ms` (at least the floor
/// tcp_rto_min_us; the round trip adds to it) and doubles up to `rto_max_ms`: the first
/// timer expiry at which the time since the first retransmission has reached
/// [`model_timeout_ms`]. A tail loss probe sent before the first timeout can delay every
/// expiry by up to one timeout.
pub fn give_up_ms(retries: u32, rto_ms: f64, rto_max_ms: f64) -> f64 {
    let rto_max = rto_max_ms.max(1.0);
    let budget = model_timeout_ms(retries, TCP_RTO_MIN_MS, rto_max);
    let mut rto = rto_ms.clamp(1.0, rto_max);
    // The first expiry retransmits and sets retrans_stamp; icsk_retransmits was 0, so
    // retransmits_timed_out said no.
    let first = rto;
    let mut at = first;
    loop {
        rto = (rto * 2.0).min(rto_max);
        at += rto;
        if at - first >= budget {
            return at;
        }
    }
}

/// Milliseconds from the first SYN of a connect() whose SYNs go unanswered to ETIMEDOUT:
/// the SYN timeout starts at TCP_TIMEOUT_INIT, stays there for the first `linear`
/// retransmissions (tcp_syn_linear_timeouts) and then doubles up to `rto_max_ms`; the
/// kernel gives up at the first expiry, after at least one retransmission, at which the time
/// since the first SYN has reached the budget for `retries` (tcp_syn_retries).
pub fn syn_give_up_ms(retries: u32, linear: u32, rto_max_ms: f64) -> f64 {
    let rto_max = rto_max_ms.max(1.0);
    let budget = model_timeout_ms(retries, TCP_TIMEOUT_INIT_MS, rto_max);
    let mut rto = TCP_TIMEOUT_INIT_MS.min(rto_max);
    let mut at = 0.0;
    let mut sent = 0u32;
    loop {
        at += rto;
        if sent >= 1 && at >= budget {
            return at;
        }
        sent += 1;
        if sent > linear {
            rto = (rto * 2.0).min(rto_max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ip-sysctl.rst: "The default value of 15 yields a hypothetical timeout of 924.6
    /// seconds"; tcp_retries2 8 is the 100 s its text gives as the RFC 1122 minimum.
    #[test]
    fn the_model_gives_the_numbers_the_kernel_documents() {
        assert_eq!(
            model_timeout_ms(15, TCP_RTO_MIN_MS, TCP_RTO_MAX_MS),
            924_600.0
        );
        assert_eq!(
            model_timeout_ms(8, TCP_RTO_MIN_MS, TCP_RTO_MAX_MS),
            102_200.0
        );
        assert_eq!(model_timeout_ms(3, TCP_RTO_MIN_MS, TCP_RTO_MAX_MS), 3_000.0);
        // ilog2(1000 / 200) = 2: three doublings, then 1 s each.
        assert_eq!(
            model_timeout_ms(5, TCP_RTO_MIN_MS, 1_000.0),
            1_400.0 + 3_000.0
        );
        assert_eq!(
            model_timeout_ms(15, TCP_RTO_MIN_MS, 1_000.0),
            1_400.0 + 13_000.0
        );
    }

    #[test]
    fn model_retries_inverts_the_model() {
        assert_eq!(model_retries(924_600.0, TCP_RTO_MIN_MS, TCP_RTO_MAX_MS), 15);
        assert_eq!(model_retries(924_601.0, TCP_RTO_MIN_MS, TCP_RTO_MAX_MS), 16);
        assert_eq!(model_retries(100_000.0, TCP_RTO_MIN_MS, 1_000.0), 101);
        assert_eq!(model_retries(0.0, TCP_RTO_MIN_MS, 1_000.0), 0);
        assert_eq!(model_retries(1e12, TCP_RTO_MIN_MS, 1_000.0), MAX_RETRIES);
    }

    /// ip-sysctl.rst: tcp_syn_retries 6 "corresponds to 127 seconds"; with 6.7's four
    /// linear timeouts the SYNs go out at 1, 2, 3, 4, 5, 7, 11, ... s (measured on 6.18:
    /// tests/it/rules/claims.rs).
    #[test]
    fn connect_gives_up_at_the_first_syn_timeout_past_the_budget() {
        assert_eq!(
            model_timeout_ms(6, TCP_TIMEOUT_INIT_MS, TCP_RTO_MAX_MS),
            127_000.0
        );
        assert_eq!(syn_give_up_ms(6, 0, TCP_RTO_MAX_MS), 127_000.0);
        assert_eq!(syn_give_up_ms(3, 0, TCP_RTO_MAX_MS), 15_000.0);
        assert_eq!(syn_give_up_ms(6, 4, TCP_RTO_MAX_MS), 131_000.0);
        assert_eq!(syn_give_up_ms(3, 4, TCP_RTO_MAX_MS), 19_000.0);
        assert_eq!(syn_give_up_ms(2, 4, TCP_RTO_MAX_MS), 7_000.0);
        // ilog2(1000 / 1000) = 0: 1 s, then 1 s per retry.
        assert_eq!(syn_give_up_ms(6, 4, 1_000.0), 7_000.0);
        assert_eq!(syn_give_up_ms(3, 0, 2_000.0), 7_000.0);
    }

    /// The kernel gives up one expiry after the budget is reached, counting from the first
    /// retransmission (measured on 6.18: tests/it/rules/claims.rs).
    #[test]
    fn giving_up_waits_for_the_first_expiry_past_the_budget() {
        // 0.2, 0.6, 1.4, 3.0 (2.8 after the first: short of 3.0), 6.2.
        assert_eq!(give_up_ms(3, 200.0, TCP_RTO_MAX_MS), 6_200.0);
        // 0.5, 1.5 (1.0 after the first: short of 1.4), 3.5.
        assert_eq!(give_up_ms(2, 500.0, TCP_RTO_MAX_MS), 3_500.0);
        // 1, 2, 3, 4, 5, 6: 5 s after the first reach the 4.4 s budget.
        assert_eq!(give_up_ms(5, 1_000.0, 1_000.0), 6_000.0);
        // The RTO never exceeds the maximum, whatever the floor.
        assert_eq!(give_up_ms(5, 5_000.0, 1_000.0), 6_000.0);
        // The defaults on a path whose RTO stays at 200 ms: 924.4 s after the first
        // retransmission is short of 924.6, so one more 120 s timeout.
        assert_eq!(give_up_ms(15, 200.0, TCP_RTO_MAX_MS), 1_044_600.0);
        for r in 0..=20 {
            for rto in [1.0, 200.0, 230.0, 1_000.0, 5_000.0] {
                let t = give_up_ms(r, rto, TCP_RTO_MAX_MS);
                assert!(
                    t >= rto.min(TCP_RTO_MAX_MS)
                        + model_timeout_ms(r, TCP_RTO_MIN_MS, TCP_RTO_MAX_MS)
                );
            }
        }
    }
}

//! The kernel's own reason for each reset, from a private ftrace instance.
//!
//! Why this module exists: a captured RST says who sent it, not why. Since
//! 6.10 the `tcp:tcp_send_reset` tracepoint carries the kernel's reason
//! (`enum sk_rst_reason`), and `tcp:tcp_receive_reset` marks resets a local
//! socket accepted. This module
//!
//! - finds tracefs (mounting it on /sys/kernel/tracing when it is not mounted),
//! - reads which events and which reason names this kernel has from the
//!   events' `format` files (never hard-coded numbers: they move between
//!   versions; the text pipe prints the names through the kernel's own
//!   `__print_symbolic` table),
//! - creates a private instance `instances/rstaudit-PID` so the host's global
//!   trace buffer is untouched, enables the two events there, and reads its
//!   `trace_pipe` in a thread,
//! - removes the instance when the [`TraceSession`] is dropped (the caller turns
//!   SIGINT/SIGTERM into a normal return through a [`crate::stop::Stop`] token, so the
//!   drop runs), and removes stale `rstaudit-PID` instances whose process is gone
//!   ([`clean_stale`]).
//!
//! The tracepoints are not filtered by network namespace: events from every
//! namespace arrive here, and the caller must match them to its own packets
//! or addresses. Nothing here interprets reasons.

mod event;
mod format;
pub mod intern;
mod layout;
mod line;
pub mod probes;
mod raw;
mod session;
mod site;
mod tracefs;

pub use event::*;
pub use format::*;
pub use layout::*;
pub use line::*;
pub use raw::*;
pub use session::*;
pub use site::*;
pub use tracefs::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    /// Captured from `instances/*/trace` on 6.18.44 (namespace on `lo`): closed port (IPv6 and
    /// IPv4), close with unread data, close with SO_LINGER 0, write after the peer's close.
    const REAL_6_18: &str = "\
# tracer: nop
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
         python3-13783   [001] ..s1.  1918.416065: tcp_send_reset: skbaddr=000000001b5a4c1f skaddr=0000000000000000 src=[::1]:9 dest=[::1]:34436 state=UNKNOWN reason=NO_SOCKET
         python3-13783   [001] .....  1918.416113: tcp_receive_reset: family=AF_INET6 sport=34436 dport=9 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 sock_cookie=2
         python3-13783   [001] ..s1.  1918.416470: tcp_send_reset: skbaddr=000000001b5a4c1f skaddr=0000000000000000 src=127.0.0.1:9 dest=127.0.0.1:57844 state=UNKNOWN reason=NO_SOCKET
         python3-13783   [001] .....  1918.416480: tcp_receive_reset: family=AF_INET sport=57844 dport=9 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 sock_cookie=3
         python3-13783   [001] ..s2.  1918.520828: tcp_receive_reset: family=AF_INET sport=37052 dport=5000 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 sock_cookie=4
         python3-13783   [001] .....  1918.520838: tcp_send_reset: skbaddr=0000000000000000 skaddr=00000000eaf3504b src=127.0.0.1:5000 dest=127.0.0.1:37052 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE
         python3-13783   [001] .....  1918.621560: tcp_send_reset: skbaddr=0000000000000000 skaddr=00000000eaf3504b src=127.0.0.1:37066 dest=127.0.0.1:5000 state=TCP_CLOSE reason=TCP_STATE
         python3-13783   [001] ..s1.  1918.822296: tcp_send_reset: skbaddr=000000001b5a4c1f skaddr=000000000af66564 src=127.0.0.1:5000 dest=127.0.0.1:37074 state=TCP_TIME_WAIT reason=TCP_TIMEWAIT_SOCKET
";

    /// The print format of tcp_send_reset on 6.18.44 (abridged to the parts parsed).
    const FORMAT_6_18: &str = r#"name: tcp_send_reset
ID: 2280
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:const void * skaddr;	offset:16;	size:8;	signed:0;
	field:int state;	offset:24;	size:4;	signed:1;
	field:enum sk_rst_reason reason;	offset:28;	size:4;	signed:0;
	field:__u8 saddr[28];	offset:32;	size:28;	signed:0;

print fmt: "skbaddr=%p skaddr=%p src=%pISpc dest=%pISpc state=%s reason=%s", REC->skbaddr, REC->skaddr, REC->saddr, REC->daddr, REC->state ? __print_symbolic(REC->state, { TCP_ESTABLISHED, "TCP_ESTABLISHED" }, { TCP_CLOSE, "TCP_CLOSE" }) : "UNKNOWN", __print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, { 1, "NO_SOCKET" }, { 10, "INVALID_SYN" }, { 11, "TCP_ABORT_ON_CLOSE" }, { 14, "TCP_STATE" }, { 25, "MAX" })
"#;

    /// tcp_send_reset before 6.10: no reason field.
    const FORMAT_6_6: &str = r#"name: tcp_send_reset
format:
	field:const void * skbaddr;	offset:8;	size:8;	signed:0;
	field:const void * skaddr;	offset:16;	size:8;	signed:0;
	field:int state;	offset:24;	size:4;	signed:1;
	field:__u16 sport;	offset:28;	size:2;	signed:0;

print fmt: "skbaddr=%p skaddr=%p src=%pISpc dest=%pISpc state=%s", REC->skbaddr, REC->skaddr, REC->saddr, REC->daddr, __print_symbolic(REC->state, { TCP_CLOSE, "TCP_CLOSE" })
"#;

    #[test]
    fn reads_overruns_from_per_cpu_stats() {
        // per_cpu/cpu0/stats on 6.18.44.
        let stats = "entries: 0\noverrun: 1234\ncommit overrun: 0\nbytes: 0\noldest event ts:  1918.416065\nnow ts:  2041.208420\ndropped events: 0\nread events: 10\n";
        assert_eq!(parse_overrun(stats), 1234);
        assert_eq!(parse_overrun("entries: 0\n"), 0);
    }

    #[test]
    fn reads_reason_names_from_the_format() {
        let names = parse_reason_names(FORMAT_6_18).unwrap().unwrap();
        assert!(names.contains("NO_SOCKET"));
        assert!(names.contains("TCP_ABORT_ON_CLOSE"));
        assert!(names.contains("INVALID_SYN"));
        assert!(
            !names.contains("TCP_ESTABLISHED"),
            "state names are not reasons"
        );
        assert_eq!(parse_reason_names(FORMAT_6_6).unwrap(), None);
        let broken = FORMAT_6_18.replace("__print_symbolic(REC->reason", "REC->reason");
        assert!(parse_reason_names(&broken).is_err());
    }

    #[test]
    fn parses_real_lines() {
        let (events, errors) = parse_all(REAL_6_18.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(events.len(), 8);
        let TraceEvent::SendReset(first) = &events[0] else {
            panic!("{:?}", events[0])
        };
        assert_eq!(&*first.task.comm, "python3");
        assert_eq!(first.task.tid, 13783);
        assert_eq!(first.task.cpu, 1);
        assert!(first.task.in_interrupt);
        assert!(first.has_skb && !first.has_sock);
        assert_eq!(first.src, Some("[::1]:9".parse().unwrap()));
        assert_eq!(first.dst, Some("[::1]:34436".parse().unwrap()));
        assert_eq!(first.reason, Some("NO_SOCKET"));
        assert_eq!(first.state, Some("UNKNOWN"));
        let TraceEvent::ReceiveReset(rcv) = &events[3] else {
            panic!()
        };
        assert_eq!(rcv.local, Some("127.0.0.1:57844".parse().unwrap()));
        assert_eq!(rcv.remote, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(rcv.sock_cookie, Some(3));
        let TraceEvent::ReceiveReset(rcv6) = &events[1] else {
            panic!()
        };
        assert_eq!(rcv6.local, Some("[::1]:34436".parse().unwrap()));
        let TraceEvent::SendReset(close) = &events[5] else {
            panic!()
        };
        assert!(!close.task.in_interrupt, "close() runs in process context");
        assert!(!close.has_skb && close.has_sock);
        assert_eq!(close.reason, Some("TCP_ABORT_ON_CLOSE"));
        assert_eq!(close.state, Some("TCP_CLOSE"));
    }

    /// tcp_send_reset as kernels before 6.10 print it (the `tcp_event_sk_skb` class: the
    /// socket's own fields, no reason), and the bottom-half flag of 6.18 (`b`: a listener closed
    /// with a child in its queue, `ss -K`).
    #[test]
    fn parses_send_resets_without_reasons_and_the_bottom_half_flag() {
        let v4 = "         python3-1234    [000] .....   100.000001: tcp_send_reset: skbaddr=0000000000000000 skaddr=00000000abcd1234 family=AF_INET sport=5000 dport=37052 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 state=TCP_CLOSE";
        let Some(TraceEvent::SendReset(ev)) = parse_line(v4).unwrap() else {
            panic!()
        };
        assert_eq!(ev.src, Some("127.0.0.1:5000".parse().unwrap()));
        assert_eq!(ev.dst, Some("127.0.0.1:37052".parse().unwrap()));
        assert_eq!(ev.reason, None);
        assert_eq!(ev.state, Some("TCP_CLOSE"));
        assert!(!ev.has_skb && ev.has_sock && !ev.task.bh_disabled);
        let v6 = "   nginx-77  [001] b..1.  5.5: tcp_send_reset: skbaddr=0000000000000000 skaddr=00000000abcd1234 family=AF_INET6 sport=443 dport=40000 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=fd00::1 daddrv6=fd00::2 state=TCP_CLOSE";
        let Some(TraceEvent::SendReset(ev)) = parse_line(v6).unwrap() else {
            panic!()
        };
        assert_eq!(ev.src, Some("[fd00::1]:443".parse().unwrap()));
        assert_eq!(ev.dst, Some("[fd00::2]:40000".parse().unwrap()));
        assert!(ev.task.bh_disabled && !ev.task.in_interrupt);
        // Captured on 6.18: a listener closed with a child queued, then `ss -K`.
        let closed = "         python3-17023   [001] b..1.   674.932727: tcp_send_reset: skbaddr=0000000000000000 skaddr=0000000063801d4e src=127.0.0.1:7001 dest=127.0.0.1:47054 state=TCP_CLOSE reason=TCP_STATE";
        let Some(TraceEvent::SendReset(ev)) = parse_line(closed).unwrap() else {
            panic!()
        };
        assert!(ev.task.bh_disabled);
        let (events, _) = parse_all(REAL_6_18.as_bytes());
        for e in events {
            let (TraceEvent::SendReset(SendReset { task, .. })
            | TraceEvent::ReceiveReset(ReceiveReset { task, .. })) = e
            else {
                panic!("{e:?}")
            };
            assert!(!task.bh_disabled, "{task:?}");
        }
    }

    #[test]
    fn odd_comms_and_bad_lines() {
        let line = "   my-app worker-4242   [000] d.s2.  12.000001: tcp_send_reset: skbaddr=0 skaddr=0 src=10.0.0.1:80 dest=10.0.0.2:5555 state=UNKNOWN reason=NO_SOCKET";
        let Some(TraceEvent::SendReset(ev)) = parse_line(line).unwrap() else {
            panic!()
        };
        assert_eq!(&*ev.task.comm, "my-app worker");
        assert_eq!(ev.task.tid, 4242);
        assert!(!ev.has_skb);
        assert!(parse_line("garbage").is_err());
        assert_eq!(parse_line("# comment").unwrap(), None);
        assert_eq!(
            parse_line("  bash-1 [000] .....  1.0: sched_switch: prev=x").unwrap(),
            None
        );
    }

    fn fake_tracefs(format: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("instances")).unwrap();
        if let Some(f) = format {
            let ev = dir.path().join("events/tcp/tcp_send_reset");
            fs::create_dir_all(&ev).unwrap();
            fs::write(ev.join("format"), f).unwrap();
        }
        dir
    }

    #[test]
    fn support_without_reason_field_says_so() {
        let dir = fake_tracefs(Some(FORMAT_6_6));
        let s = Tracefs::at(dir.path()).reset_support();
        assert!(s.send_reset);
        assert!(s.reasons.is_none());
        assert!(
            s.notes.iter().any(|n| n.contains("no reason field")),
            "{:?}",
            s.notes
        );
        assert!(s.notes.iter().any(|n| n.contains("tcp_receive_reset")));
    }

    #[test]
    fn support_without_tracepoints_fails_to_start() {
        let dir = fake_tracefs(None);
        let tfs = Tracefs::at(dir.path());
        let s = tfs.reset_support();
        assert!(!s.send_reset && s.reasons.is_none());
        assert!(TraceSession::start(&tfs, &TraceOptions::default()).is_err());
    }

    #[test]
    fn support_with_reasons() {
        let dir = fake_tracefs(Some(FORMAT_6_18));
        let s = Tracefs::at(dir.path()).reset_support();
        assert!(s.reasons.unwrap().contains("TCP_STATE"));
    }

    #[test]
    fn stale_instances_of_dead_processes_are_removed() {
        let dir = fake_tracefs(None);
        let inst = dir.path().join("instances");
        for name in [
            "rstaudit-11",
            "rstaudit-22",
            "other-33",
            "rstaudit-x",
            "rstaudit-ns4026532001_44",
        ] {
            fs::create_dir(inst.join(name)).unwrap();
        }
        let removed = clean_stale_with(&Tracefs::at(dir.path()), "", |pid| pid == 22).unwrap();
        assert_eq!(removed, vec!["rstaudit-11".to_string()]);
        assert!(inst.join("rstaudit-22").exists());
        assert!(inst.join("other-33").exists());
        assert!(inst.join("rstaudit-x").exists());
        // Another PID namespace's instance: its pid 44 is not this namespace's pid 44.
        assert!(inst.join("rstaudit-ns4026532001_44").exists());
        // A run in that namespace removes it, and leaves the host's names alone.
        let removed =
            clean_stale_with(&Tracefs::at(dir.path()), "ns4026532001_", |_| false).unwrap();
        assert_eq!(removed, vec!["rstaudit-ns4026532001_44".to_string()]);
        assert!(inst.join("rstaudit-22").exists());
    }

    /// A `--tracefs` directory is not trusted: its format files may be FIFOs, links, huge,
    /// unreadable or missing, and each case is told apart, without blocking.
    #[test]
    fn format_files_are_read_without_trusting_the_tree() {
        let dir = fake_tracefs(Some(FORMAT_6_18));
        let tfs = Tracefs::at(dir.path());
        let send = dir.path().join("events/tcp/tcp_send_reset/format");
        let receive_dir = dir.path().join("events/tcp/tcp_receive_reset");
        fs::create_dir_all(&receive_dir).unwrap();
        let receive = receive_dir.join("format");
        assert!(read_format(&send).unwrap().contains("reason"));
        assert_eq!(read_format(&receive), Err(FormatError::Missing));

        // A FIFO with no writer: refused at once, not waited on.
        nix::unistd::mkfifo(&receive, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = std::time::Instant::now();
        let s = tfs.reset_support();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(s.send_reset && !s.receive_reset, "{s:?}");
        let note = s
            .notes
            .iter()
            .find(|n| n.contains("tcp_receive_reset/format"))
            .unwrap();
        assert!(note.contains("is not a regular file"), "{note}");
        assert!(!note.contains("is missing"), "{note}");
        fs::remove_file(&receive).unwrap();

        // A symbolic link, even to a real format file: not followed.
        std::os::unix::fs::symlink(&send, &receive).unwrap();
        assert_eq!(
            read_format(&receive),
            Err(FormatError::Unreadable(
                "is a symbolic link; links are not followed".to_string()
            ))
        );
        fs::remove_file(&receive).unwrap();

        // A huge (sparse) file: refused after 64 KiB.
        fs::File::create(&send).unwrap().set_len(1 << 30).unwrap();
        let s = tfs.reset_support();
        assert!(!s.send_reset && s.reasons.is_none());
        let note = s
            .notes
            .iter()
            .find(|n| n.contains("tcp_send_reset/format"))
            .unwrap();
        assert!(note.contains("larger than 65536 bytes"), "{note}");
        assert!(!note.contains("is missing"), "{note}");

        // Not text.
        fs::write(&send, b"name: tcp_send_reset\n\xff\xfe").unwrap();
        assert_eq!(
            read_format(&send),
            Err(FormatError::Unreadable(
                "is not UTF-8 text (byte 21)".to_string()
            ))
        );

        // A directory where the file should be.
        fs::remove_file(&send).unwrap();
        fs::create_dir(&send).unwrap();
        assert!(
            matches!(read_format(&send), Err(FormatError::Unreadable(m)) if m.contains("not a regular file"))
        );

        // Missing: the kernel has no such event, said as before.
        fs::remove_dir(&send).unwrap();
        let s = tfs.reset_support();
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("tcp_send_reset is missing")),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn unreadable_format_files_say_what_happened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = fake_tracefs(Some(FORMAT_6_18));
        let send = dir.path().join("events/tcp/tcp_send_reset/format");
        fs::set_permissions(&send, fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads it anyway; anyone else is refused, and the note says so.
        match read_format(&send) {
            Ok(_) => assert!(nix::unistd::geteuid().is_root()),
            Err(e) => assert_eq!(
                e,
                FormatError::Unreadable(
                    "could not be opened: Permission denied (os error 13)".to_string()
                )
            ),
        }
    }
}

//! Tests of the one pass over /proc/*/fd, on live sockets of the test process and its children.

use super::*;
use crate::host::test_support::{inode_of, set_int as set, sleeper_holding, socket};
use std::os::unix::fs::MetadataExt;

/// The one pass gives every socket the owner and options that the owner scan followed by
/// the option read gave, with the same notes, in two tables (as for `--netns all`).
#[test]
fn one_pass_gives_what_the_two_passes_gave() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let with_keepalive = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let without = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let ka = with_keepalive.as_raw_fd();
    set(ka, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(ka, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 33);
    set(ka, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
    set(
        without.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        5000,
    );
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: linger is a struct linger of the given size.
    let rc = unsafe {
        libc::setsockopt(
            accepted.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let first = vec![
        socket(inode_of(listener.as_raw_fd())),
        socket(inode_of(ka)),
        // No descriptor (TIME_WAIT), and an inode that no process holds.
        socket(0),
        socket(u64::MAX - 7),
    ];
    let second = vec![
        socket(inode_of(without.as_raw_fd())),
        socket(inode_of(accepted.as_raw_fd())),
    ];

    let mut old = [first.clone(), second.clone()];
    let map = owners::scan(Path::new("/proc"));
    let mut old_notes = Vec::new();
    for table in &mut old {
        for s in table.iter_mut() {
            if s.inode != 0 {
                s.owner = map.by_inode.get(&s.inode).cloned();
            }
        }
        let mut notes = map.notes.clone();
        notes.extend(options::read_all(table));
        old_notes.push(notes);
    }

    let mut new = [first, second];
    let notes = {
        let mut tables: Vec<&mut [Socket]> = new.iter_mut().map(|t| &mut t[..]).collect();
        read(Path::new("/proc"), &mut tables)
    };
    let new_notes: Vec<Vec<Note>> = notes
        .options
        .into_iter()
        .map(|options| {
            let mut all = notes.owners.clone();
            all.extend(options);
            all
        })
        .collect();
    assert_eq!(new, old);
    assert_eq!(new_notes, old_notes);

    let me = std::process::id();
    let owner = new[0][1].owner.as_ref().expect("owner");
    assert_eq!((owner.pid, owner.fd), (me, ka as u32));
    let o = new[0][1].options.clone().expect("options");
    assert_eq!(
        (o.keepalive, o.keepidle, o.keepcnt),
        (Some(true), Some(33), Some(4))
    );
    // A socket without keepalive still shows the keepalive values the kernel holds for
    // it: they are read, never left out or guessed.
    let o = new[1][0].options.clone().expect("options");
    assert_eq!(o.keepalive, Some(false));
    assert!(o.keepidle.is_some() && o.keepintvl.is_some() && o.keepcnt.is_some());
    assert_eq!(o.user_timeout, Some(5000));
    let o = new[1][1].options.clone().expect("options");
    assert_eq!(o.linger.map(|l| (l.on, l.seconds)), Some((true, 0)));
    assert_eq!(
        (new[0][2].owner.clone(), new[0][2].options.clone()),
        (None, None)
    );
    assert_eq!(
        (new[0][3].owner.clone(), new[0][3].options.clone()),
        (None, None)
    );
    // No duplicate was left open.
    for fd in [ka, accepted.as_raw_fd()] {
        let inode = inode_of(fd);
        let count = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode))
            .count();
        assert_eq!(count, 1);
    }
}

fn shared(pids: Vec<u32>) -> Shared {
    let (proc_fd, _) = owners::list_pids(Path::new("/proc")).unwrap();
    Shared::new(proc_fd, pids)
}

/// Run one scanning thread that reaches every process before the tables are known, then
/// give it the tables (after `between`).
fn listed_first(shared: &Shared, positions: Positions, between: impl FnOnce()) -> Vec<Scanned> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| work(shared));
        while shared.next.load(Ordering::Relaxed) <= shared.pids.len() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        between();
        shared.wanted.set(positions).unwrap();
        let mut scanned = worker.join().unwrap();
        scanned.sort_unstable_by_key(|(k, _)| *k);
        scanned
    })
}

/// A process that exits before its turn is skipped without a word, and the processes
/// after it are still read: when the tables are known by then, and when they are not.
#[test]
fn a_process_gone_before_its_turn_is_skipped_and_the_rest_read() {
    use std::os::fd::AsRawFd;
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let inode = inode_of(listener.as_raw_fd());
    let mut positions = Positions::default();
    positions.insert(inode, (0, 0));
    let pids = vec![gone, std::process::id()];

    let known = shared(pids.clone());
    known.wanted.set(positions.clone()).unwrap();
    let mut in_one_go = work(&known);
    in_one_go.sort_unstable_by_key(|(k, _)| *k);
    let listed = listed_first(&shared(pids), positions, || {});

    for scanned in [in_one_go, listed] {
        assert!(
            matches!(scanned[0], ((0, 0), Err(Errno::ENOENT))),
            "{:?}",
            scanned[0].1.as_ref().err()
        );
        let found = scanned[1].1.as_ref().expect("our own process");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].owner.fd, listener.as_raw_fd() as u32);
        assert!(found[0].options.is_ok());
    }
}

/// A process that exits after its descriptors were listed and before its options are
/// read keeps the owner found, and its sockets count in the note of sockets that
/// changed during the scan.
#[test]
fn a_process_that_exits_mid_scan_is_an_owner_whose_options_changed() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = listener.as_raw_fd();
    let inode = inode_of(fd);
    let mut child = sleeper_holding(fd);
    let pid = child.id();
    let mut positions = Positions::default();
    positions.insert(inode, (0, 0));
    let scanned = listed_first(&shared(vec![pid]), positions, || {
        child.kill().unwrap();
        child.wait().unwrap();
    });
    let found = scanned[0].1.as_ref().expect("listed before it exited");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].owner.pid, found[0].owner.fd), (pid, fd as u32));
    assert_eq!(&*found[0].owner.comm, "sleep");
    assert_eq!(found[0].options, Err(Unread::Changed));
    let mut outcome = Outcome::default();
    tally(&mut outcome, &found[0]);
    let notes = options::notes_of(outcome);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].area, "changed");
}

/// A scan given up before it is given the tables (reading them failed) does not leave
/// its threads waiting: the scope that started it ends, whichever way it reads.
#[test]
fn a_scan_given_up_ends() {
    for how in [OwnerScan::Proc, OwnerScan::Auto, OwnerScan::Bpf] {
        std::thread::scope(|scope| {
            let scan = Scan::start(scope, Path::new("/proc"), how);
            drop(scan);
        });
    }
}

/// A process whose descriptors cannot be duplicated: a refusal holds for all its
/// sockets, another error is said once (its first socket) and the rest are skipped.
#[test]
fn refusals_hold_for_the_process_and_other_errors_are_said_once() {
    let mut denied = Dups::Refused(Unread::Denied);
    assert_eq!(denied.read(1, 3, 9), Err(Unread::Denied));
    assert_eq!(denied.read(1, 4, 9), Err(Unread::Denied));
    let mut failed = Dups::Refused(Unread::Failed("pid 1: boom".into()));
    assert_eq!(
        failed.read(1, 3, 9),
        Err(Unread::Failed("pid 1: boom".into()))
    );
    assert_eq!(failed.read(1, 4, 9), Err(Unread::Skipped));
    let mut gone = Dups::Refused(Unread::Changed);
    assert_eq!(gone.read(1, 3, 9), Err(Unread::Changed));
    assert_eq!(gone.read(1, 4, 9), Err(Unread::Changed));
}

/// A process with more descriptors than a chunk is read in parts by several threads;
/// a socket it holds twice still goes to the descriptor listed first, as when one
/// thread read the whole process.
#[test]
fn a_socket_held_twice_in_a_large_process_goes_to_the_first_descriptor() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < 8192 {
        lim.rlim_cur = lim.rlim_max.min(8192);
        // SAFETY: lim is a valid rlimit no higher than the hard limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first = listener.as_raw_fd();
    let mut held: Vec<OwnedFd> = Vec::new();
    for _ in 0..(2 * CHUNK + 100) {
        // SAFETY: a plain socket(2); the descriptor is owned by `held`.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0);
        // SAFETY: fd was just returned by socket(2).
        held.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // SAFETY: duplicates `first` to the lowest free descriptor >= 4000.
    let again = unsafe { libc::fcntl(first, libc::F_DUPFD_CLOEXEC, 4000) };
    assert!(again >= 4000);
    // SAFETY: again was just returned by fcntl(2).
    let _again = unsafe { OwnedFd::from_raw_fd(again) };
    let last = held.last().unwrap().as_raw_fd();
    let mut table = [socket(inode_of(first)), socket(inode_of(last))];
    let notes = read(Path::new("/proc"), &mut [&mut table[..]]);
    assert_eq!(notes.options, vec![Vec::new()]);
    let me = std::process::id();
    let owner = table[0].owner.as_ref().expect("owner");
    assert_eq!((owner.pid, owner.fd), (me, first as u32));
    let owner = table[1].owner.as_ref().expect("owner");
    assert_eq!((owner.pid, owner.fd), (me, last as u32));
    assert!(table.iter().all(|s| s.options.is_some()));
}

/// The kernel's iterator gives a socket held by several processes, and twice by one, to the
/// lowest pid and its lowest descriptor, as the /proc pass does; both give the same owners
/// and options, to sockets of two tables.
#[test]
fn the_kernel_iterator_gives_a_shared_socket_to_the_lowest_pid_and_descriptor() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    set(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    let first = listener.as_raw_fd();
    // SAFETY: duplicates `first` to the lowest free descriptor >= 500.
    let again = unsafe { libc::fcntl(first, libc::F_DUPFD_CLOEXEC, 500) };
    assert!(again >= 500);
    // SAFETY: again was just returned by fcntl(2).
    let _again = unsafe { OwnedFd::from_raw_fd(again) };
    // A child (a higher pid) holds the listener too.
    let mut child = sleeper_holding(first);
    let tables = || {
        (
            [socket(inode_of(first))],
            [socket(inode_of(stream.as_raw_fd()))],
        )
    };
    let (mut a, mut b) = tables();
    let kernel = std::thread::scope(|scope| {
        Scan::start(scope, Path::new("/proc"), OwnerScan::Bpf).finish(&mut [&mut a[..], &mut b[..]])
    })
    .expect("the kernel's socket iterator (root, BTF, Linux 5.11) is needed by this test");
    let (mut pa, mut pb) = tables();
    let proc = std::thread::scope(|scope| {
        Scan::start(scope, Path::new("/proc"), OwnerScan::Proc)
            .finish(&mut [&mut pa[..], &mut pb[..]])
    })
    .unwrap();
    child.kill().ok();
    child.wait().ok();
    let me = std::process::id();
    let owner = a[0].owner.as_ref().expect("owner");
    assert_eq!((owner.pid, owner.fd), (me, first as u32));
    assert_eq!(b[0].owner.as_ref().map(|o| o.pid), Some(me));
    assert_eq!(b[0].options.as_ref().and_then(|o| o.keepalive), Some(true));
    assert_eq!((&a, &b), (&pa, &pb));
    assert_eq!(kernel.owners, proc.owners);
    assert_eq!(kernel.options, vec![Vec::new(), Vec::new()]);
}

/// As the audit reads the table: the kernel iterator's first run joins the sockets it saw one
/// at a time; a socket opened after that run is not joined by it, and is by the second run.
/// The /proc pass needs the whole table instead.
#[test]
fn a_socket_opened_after_the_first_run_is_joined_by_the_second() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut joiner = std::thread::scope(|scope| {
        match Scan::start(scope, Path::new("/proc"), OwnerScan::Bpf).ready() {
            Ok(Ready::Join(joiner)) => joiner,
            Ok(Ready::Table(_)) => {
                panic!("the kernel's iterator was asked for, not the /proc pass")
            }
            Err(e) => panic!(
                "the kernel's socket iterator (root, BTF, Linux 5.11) is needed by this test: {e}"
            ),
        }
    });
    let me = std::process::id();
    let mut seen = socket(inode_of(listener.as_raw_fd()));
    seen.state = crate::host::TcpState::Listen;
    assert!(joiner.join(&mut seen));
    let owner = seen.owner.as_ref().expect("owner");
    assert_eq!((owner.pid, owner.fd), (me, listener.as_raw_fd() as u32));
    assert!(seen.options.is_some());
    // No descriptor can hold a socket whose inode is 0 (TIME_WAIT): nothing to look for.
    let mut time_wait = socket(0);
    assert!(joiner.join(&mut time_wait));
    assert!(time_wait.owner.is_none());

    let late = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut missed = socket(inode_of(late.as_raw_fd()));
    assert!(!joiner.join(&mut missed));
    assert!(missed.owner.is_none() && missed.options.is_none());
    let notes = joiner.again([&mut missed]);
    assert!(notes.is_empty(), "{notes:?}");
    let owner = missed.owner.as_ref().expect("owner after the second run");
    assert_eq!((owner.pid, owner.fd), (me, late.as_raw_fd() as u32));
    assert!(missed.options.is_some());

    // A socket the first run saw before its process set an option and connected: the table
    // lists it connected, so what the run read (its state then) is not taken; the second
    // run, after the table, reads the option.
    // SAFETY: a new socket, owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0);
    // SAFETY: raw was just returned by socket(2).
    let early = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let mut joiner = std::thread::scope(|scope| {
        match Scan::start(scope, Path::new("/proc"), OwnerScan::Bpf).ready() {
            Ok(Ready::Join(joiner)) => joiner,
            _ => panic!("the kernel's socket iterator loaded above"),
        }
    });
    set(raw, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    let std::net::SocketAddr::V4(to) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: addr is a valid sockaddr_in of the given length.
    let rc = unsafe {
        libc::connect(
            raw,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    let mut connected = socket(inode_of(raw));
    connected.state = crate::host::TcpState::Established;
    assert!(
        !joiner.join(&mut connected),
        "taken from a run that saw it unconnected"
    );
    assert!(connected.options.is_none());
    assert!(joiner.again([&mut connected]).is_empty());
    assert_eq!(
        connected.options.as_ref().and_then(|o| o.keepalive),
        Some(true),
        "{connected:?}"
    );
    drop(early);

    let proc = std::thread::scope(|scope| {
        matches!(
            Scan::start(scope, Path::new("/proc"), OwnerScan::Proc).ready(),
            Ok(Ready::Table(_))
        )
    });
    assert!(proc, "the /proc pass reads options from the whole table");
}

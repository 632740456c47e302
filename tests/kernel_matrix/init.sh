#!/bin/sh
# /init of the kernel matrix's throwaway initramfs (tests/kernel_matrix/main.rs). Runs every step
# with a timeout, writes what each printed to the second serial port (/dev/ttyS1) and powers
# off. Protocol, one step after another:
#   @@step NAME / its standard output / @@stderr NAME / its standard error / @@rc NAME CODE
# Busybox's shell runs its own applets before PATH: ip and nft are called by full path.
export PATH=/usr/sbin:/usr/bin:/bin:/sbin

step() {
    name=$1
    limit=$2
    shift 2
    echo "@@step $name"
    timeout "$limit" "$@" >/tmp/step.out 2>/tmp/step.err
    rc=$?
    cat /tmp/step.out
    echo "@@stderr $name"
    cat /tmp/step.err
    echo "@@rc $name $rc"
}

modules() {
    # The nft expressions the lab's rules use are loaded here, not on demand: the lab's jobs
    # run side by side, and once (6.1, TCG) a rule with `quota` failed with ENOENT while
    # another nft process had the same module loading.
    for m in veth nf_tables nf_conntrack inet_diag tcp_diag \
        nft_quota nft_ct nft_reject nft_reject_inet nft_reject_ipv4 nft_reject_ipv6; do
        modprobe "$m" || echo "modprobe $m failed"
    done
    /usr/sbin/ip link set lo up
}

# What a run may leave behind: namespaces (other than ours), links, nftables rules, ftrace
# instances, processes.
leftovers() {
    own=$(stat -L -c %i /proc/self/ns/net)
    for p in /proc/[0-9]*; do
        i=$(stat -L -c %i "$p/ns/net" 2>/dev/null) || continue
        [ "$i" = "$own" ] || echo "namespace $i of $(cat "$p/comm" 2>/dev/null) (${p#/proc/})"
    done
    ls /run/netns 2>/dev/null | sed 's/^/named namespace /'
    /usr/sbin/ip -o link show | grep -v ': lo:' | sed 's/^/link /'
    /usr/sbin/nft list ruleset | sed 's/^/nft /'
    ls /sys/kernel/tracing/instances 2>/dev/null | sed 's/^/ftrace instance /'
    sed 's/^/kprobe /' /sys/kernel/tracing/kprobe_events 2>/dev/null
    for p in /proc/[0-9]*; do
        c=$(cat "$p/comm" 2>/dev/null)
        case "$c" in rstaudit | sockhelper | rst-server | rst-client) echo "process $c (${p#/proc/})" ;; esac
    done
}

in_netns() {
    /usr/sbin/ip netns add matrix || return 1
    /usr/sbin/ip netns exec matrix rstaudit snapshot --format json
    rc=$?
    /usr/sbin/ip netns del matrix
    return $rc
}

# A short live packet check while two processes (rst-server, rst-client: resetkinds) make the
# four kinds of reset in IPv4 and IPv6; the test compares cause, owner and direction with what
# the host's kernel gives for the same program. $1: how the trace is read (binary or text); $2:
# where causes come from (--cause-source; empty: the default).
live() {
    # An earlier run's output must not be taken for this one's "watching" line.
    rm -f /tmp/go /tmp/live.err /tmp/live.json /tmp/helper.out
    mkfifo /tmp/go
    exec 3<>/tmp/go
    resetkinds --wait-line <&3 >/tmp/helper.out 2>&1 &
    hpid=$!
    rstaudit packet-check --duration 12 --trace-reader "$1" ${2:+--cause-source "$2"} \
        --format json >/tmp/live.json 2>/tmp/live.err &
    rpid=$!
    n=0
    until grep -q "watching TCP resets" /tmp/live.err; do
        n=$((n + 1))
        if [ $n -gt 120 ] || ! kill -0 $rpid 2>/dev/null; then
            echo "packet-check did not start watching" >&2
            cat /tmp/live.err >&2
            kill $hpid
            return 1
        fi
        sleep 0.5
    done
    echo go >&3
    wait $rpid
    rc=$?
    wait $hpid 2>/dev/null
    exec 3>&-
    echo "helper: $(cat /tmp/helper.out | tr '\n' ' ')"
    cat /tmp/live.json
    cat /tmp/live.err >&2
    return $rc
}

# Owners and options of a helper's sockets, read by the kernel's socket iterator and by the
# /proc pass: both snapshots are printed, after `== bpf RC` (its error after `== bpf-error`)
# and `== proc RC`. The iterator needs 5.11; the /proc pass works everywhere.
owner_scan() {
    mkfifo /tmp/hold
    exec 4<>/tmp/hold
    sockhelper listen:7300:16 linger0:7300 keepalive:7300:33:7:4 user-timeout:7300:2500 \
        linger2:7300:-1 linger2:7300:20 connect:7300 sleep:100 <&4 >/tmp/owners.out 2>&1 &
    hpid=$!
    n=0
    until grep -q '^ready' /tmp/owners.out || [ $n -gt 100 ]; do
        n=$((n + 1))
        sleep 0.1
    done
    rstaudit snapshot --owner-scan bpf --format json >/tmp/bpf.json 2>/tmp/bpf.err
    rb=$?
    rstaudit snapshot --owner-scan proc --format json >/tmp/proc.json
    rp=$?
    kill $hpid
    wait $hpid 2>/dev/null
    exec 4>&-
    cat /tmp/owners.out
    echo "== bpf $rb"
    cat /tmp/bpf.json
    echo "== bpf-error"
    cat /tmp/bpf.err
    echo "== proc $rp"
    cat /tmp/proc.json
    [ $rp = 0 ]
}

# `sh /init @run FUNCTION`: one function, so that a step can run it under timeout.
if [ "$1" = "@run" ]; then
    shift
    "$@"
    exit $?
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# The kernel loads what nft and the lab ask for (nft_*, nf_reject_*) through busybox modprobe.
echo /sbin/modprobe >/proc/sys/kernel/modprobe
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec >/dev/ttyS1 2>&1


step modules 60 sh /init @run modules
step kernel 10 sh -c 'uname -r; cat /proc/version'
step dmesg-before 10 dmesg
step audit-json 90 rstaudit audit --format json
step audit-table 90 rstaudit audit
step snapshot 90 rstaudit snapshot --format json
step netns 90 sh /init @run in_netns
step owner-scan 120 sh /init @run owner_scan
step lab 240 rstaudit packet-check --lab --all --format json
step lab-left 20 sh /init @run leftovers
step live-binary 150 sh /init @run live binary
step live-text 150 sh /init @run live text
step live-derived 150 sh /init @run live binary derived
step live-left 20 sh /init @run leftovers
step dmesg-after 10 dmesg
echo "@@done"
poweroff -f

#!/usr/bin/env bash
# The README test command: installs everything the test suite needs on a fresh Debian
# machine, then runs the whole suite with `cargo test`. Run it as root from the source tree:
#
#     ./test.sh                       # install what is missing, then `cargo test --no-fail-fast`
#     ./test.sh --test it lab::       # arguments go to `cargo test`: one module of tests/it,
#     ./test.sh --test kernel_matrix  # or the kernel matrix alone (docs/kernels.md); both start
#                                     # example programs, which `cargo test --no-run` builds
#
# Idempotent: packages already present are not reinstalled, the package lists are refreshed
# only when something is missing or they are older than a day. It never asks a question
# (no stdin needed, CI=true is fine).
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run as root: the tests create network namespaces, and this installs packages" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive

# Debian packages, and why the tests need them:
packages=(
    # `ip netns` for the test namespaces; nftables: the lab's middlebox; procps: sysctl(8) to
    # check persisted files; tcpdump and net-tools: the benchmarks compare against them.
    iproute2 nftables procps tcpdump net-tools
    # Ecosystem checks: shells for the completion scripts, groff/man for the man pages,
    # xmllint for the JUnit schema, promtool (prometheus) for metrics, alert and recording
    # rules and the dashboard's queries, and a real Prometheus server scraping `watch`
    # (tests/it/watch/prometheus.rs, parts.rs); chromium renders the HTML reports and
    # Prometheus's web UI (the graph of tests/it/watch/prometheus.rs), with a font of its own
    # for the screenshot's text (fonts-dejavu-core; chromium only recommends one).
    zsh fish groff-base man-db libxml2-utils prometheus chromium fonts-dejavu-core
    # tests/it/cli/terminal.rs runs commands on a pty with script(1) (bsdutils); tests/it/cli/privilege.rs
    # drops root's capabilities with setpriv (util-linux). Both are essential on Debian.
    bsdutils util-linux
    # Real servers whose resets the audit and packet check must attribute (PostgreSQL: the
    # server and psql, run in the tests' own namespaces on a cluster of their own).
    haproxy nginx-light redis-server memcached postgresql
    # The kernel matrix (tests/kernel_matrix/main.rs): qemu boots Debian's kernels with a throwaway
    # initramfs made of busybox, cpio archives, modules resolved with kmod's depmod/modprobe,
    # binaries stripped with binutils, compressed modules unpacked with xz/zstd.
    qemu-system-x86 busybox-static cpio kmod binutils xz-utils zstd
    # tests/it/watch/ (parts.rs, containers.rs, prometheus.rs) runs rootful podman containers
    # (their image a `podman import` of a root filesystem holding busybox-static, above, and
    # the socket helper with its libraries) to check container labels and names from podman's
    # API in the metrics and events; runc because crun refuses the hybrid cgroup hierarchy of
    # these machines; conmon is podman's container monitor.
    podman runc conmon
    # tests/it/watch/deploy.rs: systemd-analyze verifies deploy/rstaudit-watch.service (this
    # machine has no systemd as PID 1); `podman kube play` starts its pod's pause container
    # with catatonit; deploy/image-root.sh strips the binary (binutils, above) and lists its
    # libraries with ldd (libc-bin, essential); strace counts the system calls of a watch for
    # the unit's SystemCallFilter; logrotate reads deploy/rstaudit-watch.logrotate.
    systemd catatonit strace logrotate
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
        missing+=("$p")
    fi
done

lists_fresh() {
    # Any package list younger than a day counts as fresh.
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 -print -quit 2>/dev/null)" ]
}

if [ "${#missing[@]}" -gt 0 ] || ! lists_fresh; then
    # Fresh lists also matter for the kernel matrix, which downloads Debian's kernel packages.
    apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# ansible-core runs the example role of docs/ansible/ in tests/it/ecosystem/ansible.rs. It comes
# from pip (Debian's ansible-core is older than the role needs), pinned.
ansible_version=2.19.14
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends python3-pip </dev/null >/dev/null
fi
if [ "$(python3 -c 'import ansible.release as r; print(r.__version__)' 2>/dev/null)" != "$ansible_version" ]; then
    echo "test.sh: installing ansible-core $ansible_version with pip" >&2
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
        --break-system-packages "ansible-core==$ansible_version" </dev/null
fi

# --no-fail-fast: a failing test target (tests/it, the kernel matrix, the unit tests) does not
# hide the results of the others.
exec cargo test --no-fail-fast "$@"

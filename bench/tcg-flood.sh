#!/usr/bin/env bash
# Benchmark (not a test): the live check under a reset flood inside a kernel booted in qemu
# under software emulation (TCG, one vCPU), reading the kernel's reasons from the tracepoint
# (`--cause-source kernel`) and deriving causes from the probed reset sites
# (`--cause-source derived`), at the same rates. For each run it prints the resets the kernel
# sent (Tcp.OutRsts), the resets the check saw, how many got their trace event (a reason or a
# reset site), what the trace lost (overwritten, dropped, undecoded), and rstaudit's CPU time
# (user and system) over its 8 s window. With one vCPU the flooder, the kernel's reset path and
# rstaudit share the CPU: the rate the kernel reaches is what the three leave room for.
#
# Usage (root): bench/tcg-flood.sh RELEASE [RATE...]
#   RELEASE: a kernel the kernel matrix has booted (a directory target/kernel-matrix/RELEASE/
#   with its initramfs root, and its package unpacked under target/kernel-matrix/cache/):
#   run `cargo test --test kernel_matrix` once first. RATE: resets a second (default 2000 5000).
#   TIMEOUT: seconds the guest may run (default 900; a loaded host needs more).
# Everything runs inside the guest, on its loopback; nothing touches the host's network.
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASE=${1:?give a kernel release the kernel matrix has booted (ls target/kernel-matrix)}
shift
RATES=${*:-2000 5000}
BASE=target/kernel-matrix
ROOT_TEMPLATE=$BASE/$RELEASE/root
TREE=$(find "$BASE/cache" -maxdepth 1 -type d -name "linux-image-*" | while read -r t; do
    if [ -d "$t/lib/modules/$RELEASE" ]; then echo "$t"; fi
done | head -1)
[ -d "$ROOT_TEMPLATE" ] && [ -n "$TREE" ] || {
    echo "no initramfs root or kernel for $RELEASE under $BASE: run the kernel matrix first" >&2
    exit 2
}
cargo build --release -q --bin rstaudit --example rstflood
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -a "$ROOT_TEMPLATE" "$WORK/root"
strip -o "$WORK/root/usr/bin/rstaudit" target/release/rstaudit
strip -o "$WORK/root/usr/bin/rstflood" target/release/examples/rstflood
# The libraries the two need now (the root was made for the binary the kernel matrix built).
for lib in $(ldd target/release/rstaudit target/release/examples/rstflood |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
    mkdir -p "$WORK/root$(dirname "$lib")"
    cp -L "$lib" "$WORK/root$lib"
done
cat >"$WORK/root/init" <<EOF
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/bin:/sbin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
echo /sbin/modprobe >/proc/sys/kernel/modprobe
for m in inet_diag tcp_diag; do modprobe \$m; done
ip link set lo up
exec >/dev/ttyS1 2>&1
outrsts() { awk '/^Tcp:/ { if (h) print \$15; h = 1 }' /proc/net/snmp; }
for rate in $RATES; do
  for how in kernel derived; do
    time -f "%U %S" -o /tmp/r.cpu rstaudit packet-check --duration 8 --cause-source \$how --max-events 0 --format json >/tmp/r.json 2>/tmp/r.err &
    pid=\$!
    started=1
    until grep -q "watching TCP resets" /tmp/r.err; do
      if ! kill -0 \$pid 2>/dev/null; then started=; break; fi
      sleep 0.2
    done
    if [ -z "\$started" ]; then
      echo "rate \$rate \$how: rstaudit did not start: \$(tail -3 /tmp/r.err | tr '\\n' ' ')"
      continue
    fi
    before=\$(outrsts)
    RATE=\$rate rstflood rst 3 >/dev/null
    after=\$(outrsts)
    wait \$pid
    seen=\$(grep -m1 '"resets"' /tmp/r.json | tr -dc 0-9)
    matched=\$(grep -m1 '"send_matched"' /tmp/r.json | tr -dc 0-9)
    overrun=\$(grep -m1 '"overrun"' /tmp/r.json | tr -dc 0-9)
    dropped=\$(grep -m1 '"dropped"' /tmp/r.json | tr -dc 0-9)
    undecoded=\$(grep -m1 '"undecoded"' /tmp/r.json | tr -dc 0-9)
    drops=\$(grep -m1 '"drops"' /tmp/r.json | tr -dc 0-9)
    cpu=\$(tail -1 /tmp/r.cpu)
    echo "rate \$rate \$how: kernel sent \$((after - before)), seen \$seen (capture drops \$drops), with their event \$matched, overrun \$overrun, dropped \$dropped, undecoded \$undecoded; rstaudit CPU user/sys \$cpu s"
  done
done
echo "@@done"
poweroff -f
EOF
chmod +x "$WORK/root/init"
(cd "$WORK/root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$WORK/initramfs.cpio"
timeout "${TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -cpu max -smp 1 -machine q35 -m 1024 -nographic \
    -no-reboot -monitor none -display none -kernel "$TREE/boot/vmlinuz-$RELEASE" \
    -initrd "$WORK/initramfs.cpio" -append "console=ttyS0 panic=-1 loglevel=4" \
    -serial "file:$WORK/console.log" -serial "file:$WORK/data.log" </dev/null >/dev/null 2>&1 || true
tr -d '\r' <"$WORK/data.log" | grep -E "^rate " || {
    echo "the guest printed no result; its console:" >&2
    tail -20 "$WORK/console.log" >&2
    exit 1
}

#!/bin/sh
# Lay out the build context of deploy/Containerfile: DIR/root holds BINARY, stripped (strip
# from binutils), as /usr/bin/rstaudit and the shared libraries it links (glibc, libgcc_s, the dynamic loader),
# each at the path ldd names, as the kernel matrix's initramfs copies them. Nothing else: the
# image has no shell and no package manager.
#
#     deploy/image-root.sh target/release/rstaudit /tmp/rstaudit-image
#     podman build -f deploy/Containerfile -t localhost/rstaudit:latest /tmp/rstaudit-image
set -eu
if [ "$#" -ne 2 ]; then
    echo "usage: $0 BINARY DIR" >&2
    exit 2
fi
binary=$1
root=$2/root
rm -rf "$root"
mkdir -p "$root/usr/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/run"
strip -o "$root/usr/bin/rstaudit" "$binary"
chmod 0755 "$root/usr/bin/rstaudit"
# ldd prints `name => /path (addr)` for each library and `/path (addr)` for the loader.
ldd "$binary" | awk '/=>/ { print $3; next } $1 ~ /^\// { print $1 }' | while read -r lib; do
    [ -n "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

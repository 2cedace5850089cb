#!/usr/bin/env bash
# base-image.sh busybox OUT.tar
# Writes a base image root filesystem tarball offline, from the busybox-static package:
# static busybox with every applet linked in /bin, /etc/passwd and /etc/group with root, a user
# `app` (1000:1000) and nobody, /tmp mode 1777. Test fixture for the sandbox and build tests.
set -euo pipefail
kind=${1:?usage: base-image.sh busybox OUT.tar}
out=$(realpath -m "${2:?usage: base-image.sh busybox OUT.tar}")
[[ $kind == busybox ]] || { echo "unknown base image kind: $kind (only busybox)" >&2; exit 2; }
bb=$(command -v busybox) || { echo "busybox is not installed: apt-get install busybox-static" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
r=$work/rootfs
mkdir -p "$r"/{bin,etc,tmp,root,home/app,var,proc,sys,dev,usr}
cp "$bb" "$r/bin/busybox"
for a in $("$bb" --list); do [[ $a == busybox ]] || ln -s busybox "$r/bin/$a"; done
ln -s bin "$r/sbin"; ln -s ../bin "$r/usr/bin"; ln -s ../bin "$r/usr/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$r/etc/group"
chmod 1777 "$r/tmp"; chown 1000:1000 "$r/home/app"
tar --numeric-owner --sort=name --mtime=@0 -C "$r" -cf "$out.partial" .
mv "$out.partial" "$out"
echo "$out"

#!/usr/bin/env bash
# base-image.sh busybox OUT.tar [PLATFORM]
# Writes a base image root filesystem tarball offline, from the busybox-static package:
# static busybox with every applet linked in /bin, /etc/passwd and /etc/group with root, a user
# `app` (1000:1000) and nobody, /tmp mode 1777. Test fixture for the sandbox and build tests.
#
# PLATFORM (linux/arm64, linux/arm/v7, linux/arm/v6, linux/386, linux/ppc64le, linux/s390x,
# linux/riscv64) takes busybox from Debian's busybox-static for that architecture: the package
# is kept in $STRATA_DEB_CACHE (default /var/cache/strata-testdata) once downloaded; when it is
# not there yet, root adds the architecture (dpkg --add-architecture) and downloads it.
set -euo pipefail
usage="usage: base-image.sh busybox OUT.tar [PLATFORM]"
kind=${1:?$usage}
out=$(realpath -m "${2:?$usage}")
platform=${3:-}
[[ $kind == busybox ]] || { echo "unknown base image kind: $kind (only busybox)" >&2; exit 2; }
bb=$(command -v busybox) || { echo "busybox is not installed: apt-get install busybox-static" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
r=$work/rootfs
mkdir -p "$r"/{bin,etc,tmp,root,home/app,var,proc,sys,dev,usr}
if [[ -n $platform ]]; then
  case $platform in
    linux/arm64|linux/arm64/v8) debarch=arm64 ;;
    linux/arm/v7|linux/arm) debarch=armhf ;;
    linux/arm/v6|linux/arm/v5) debarch=armel ;;
    linux/386) debarch=i386 ;;
    linux/amd64) debarch=amd64 ;;
    linux/ppc64le) debarch=ppc64el ;;
    linux/s390x) debarch=s390x ;;
    linux/riscv64) debarch=riscv64 ;;
    *) echo "base-image.sh: no Debian architecture for $platform" >&2; exit 2 ;;
  esac
  cache=${STRATA_DEB_CACHE:-/var/cache/strata-testdata}
  deb=$cache/busybox-static_$debarch.deb
  if [[ ! -s $deb ]]; then
    [[ $(id -u) -eq 0 ]] || { echo "base-image.sh: $deb is missing; run as root once to download it" >&2; exit 1; }
    mkdir -p "$cache"
    if ! dpkg --print-foreign-architectures | grep -qx "$debarch" && [[ $debarch != $(dpkg --print-architecture) ]]; then
      dpkg --add-architecture "$debarch"
      apt-get update -qq
    fi
    (cd "$work" && apt-get download -qq "busybox-static:$debarch" >/dev/null) || {
      apt-get update -qq && (cd "$work" && apt-get download -qq "busybox-static:$debarch" >/dev/null)
    }
    mv "$work"/busybox-static_*_"$debarch".deb "$deb.partial" && mv "$deb.partial" "$deb"
  fi
  dpkg-deb -x "$deb" "$work/pkg"
  cp "$work/pkg/bin/busybox" "$r/bin/busybox"
else
  cp "$bb" "$r/bin/busybox"
fi
# The applet list of this machine's busybox (the same Debian release as the other's).
for a in $("$bb" --list); do [[ $a == busybox ]] || ln -s busybox "$r/bin/$a"; done
ln -s bin "$r/sbin"; ln -s ../bin "$r/usr/bin"; ln -s ../bin "$r/usr/sbin"
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$r/etc/group"
chmod 1777 "$r/tmp"; chown 1000:1000 "$r/home/app"
tar --numeric-owner --sort=name --mtime=@0 -C "$r" -cf "$out.partial" .
mv "$out.partial" "$out"
echo "$out"

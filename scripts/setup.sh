#!/usr/bin/env bash
# Installs what strata's build, tests and main job need on a fresh Debian machine of this kind.
# Idempotent: does nothing that is already done. Run as root for the apt packages.
set -euo pipefail

need_apt=()
command -v busybox >/dev/null 2>&1 || need_apt+=(busybox-static)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
# Interop tests: other tools must accept what strata exports, and strata what they make.
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v umoci >/dev/null 2>&1 || need_apt+=(umoci)
command -v buildah >/dev/null 2>&1 || need_apt+=(buildah)
# Registry tests: a real registry server on loopback.
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
# … with TLS and basic auth (bcrypt htpasswd files; certificates come from openssl).
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# ADD of Git repositories (and its tests, which run git daemon).
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# Builds for other platforms: QEMU's static user-mode emulators (registered by
# `strata binfmt --install`, which the emulation tests run).
command -v qemu-aarch64-static >/dev/null 2>&1 || need_apt+=(qemu-user-static)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]}; run as root (or install them) first" >&2
    exit 1
  fi
fi

# Debian's busybox-static for arm64 and arm/v7, kept for testdata/base-image.sh so the
# multi-platform tests make their bases offline.
if [[ $(id -u) -eq 0 ]]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  t=$(mktemp -d)
  for p in linux/arm64 linux/arm/v7; do
    "$here/testdata/base-image.sh" busybox "$t/base.tar" "$p" >/dev/null 2>&1 \
      || echo "setup: could not fetch busybox-static for $p (the multi-platform tests will say so)" >&2
  done
  rm -rf "$t"
fi

# BuildKit's own Dockerfile parser, wrapped for Python: the oracle of the parser conformance test.
if ! python3 -c 'import dockerfile' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'dockerfile==3.4.0' \
    || python3 -m pip install --quiet --break-system-packages 'dockerfile==3.4.0'
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo is required (the machine's Rust toolchain)" >&2; exit 1; }

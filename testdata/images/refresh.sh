#!/usr/bin/env bash
# Regenerates the BuildKit references of the image-content cases (CASE/buildkit.list and
# CASE/buildkit.config.json): each case is built with the anchors' BuildKit (Docker 20.10) and
# listed with imagefs.py. Needs ../shared/anchors (setup.sh run) and root; the tests only read
# the results.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
A=${ANCHORS:-$here/../../../shared/anchors}
"$A/buildkit.sh" start
tmp=$(mktemp -d)
"$here/../base-image.sh" busybox "$tmp/busybox.tar"
"$A/buildkit.sh" import busybox:latest "$tmp/busybox.tar"
for c in "$here"/*/; do
  name=$(basename "$c")
  "$A/buildkit.sh" build -q -t "strata-ref-$name" "$c" >/dev/null
  "$A/buildkit.sh" docker save "strata-ref-$name" -o "$tmp/$name.tar"
  python3 "$A/imagefs.py" list "$tmp/$name.tar" > "$c/buildkit.list"
  python3 "$A/imagefs.py" config "$tmp/$name.tar" > "$c/buildkit.config.json"
  echo "$name: $(wc -l < "$c/buildkit.list") paths"
done
rm -rf "$tmp"

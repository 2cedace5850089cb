#!/usr/bin/env bash
# Side-by-side timings of strata and BuildKit (Docker 20.10's, from ../shared/anchors) on the
# builds issue #4 sets goals for: 30 trivial RUN steps with --no-cache; a 5,000-file, 100 MB
# context built cold and rebuilt with nothing changed. Needs root, hyperfine, a release build of
# strata, and ../shared/anchors (set up with its setup.sh); BuildKit is skipped without them.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${STRATA_BIN:-$PWD/target/release/strata}
A=${ANCHORS:-$PWD/../shared/anchors}
W=${BENCH_DIR:-/tmp/strata-compare}
mkdir -p "$W"
[[ -x $S ]] || cargo build --release -p strata
testdata/base-image.sh busybox "$W/busybox.tar" >/dev/null
export STRATA_ROOT=$W/root
rm -rf "$STRATA_ROOT"
$S import "$W/busybox.tar" busybox >/dev/null
mkdir -p "$W/runs" "$W/ctx"
python3 - "$W" <<'PY'
import os, sys
w = sys.argv[1]
with open(f"{w}/runs/Dockerfile", "w") as f:
    f.write("FROM busybox\n" + "".join(f"RUN echo step{i} > /s{i}\n" for i in range(30)))
ctx = f"{w}/ctx"
if not os.path.exists(f"{ctx}/Dockerfile"):
    block = os.urandom(20097)
    for i in range(5000):
        d = f"{ctx}/d{i % 50:02d}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/f{i}.bin", "wb") as f:
            f.write(block[i % 97 : i % 97 + 20000] + str(i).encode())
    with open(f"{ctx}/Dockerfile", "w") as f:
        f.write("FROM busybox\nCOPY . /ctx/\nRUN ls /ctx | wc -l\n")
PY
echo "== strata"
hyperfine -N -w 1 -r 10 "$S build -q --no-cache $W/runs"
$S build -q -t ctx "$W/ctx" >/dev/null
hyperfine -N -w 2 -r 20 "$S build -q -t ctx $W/ctx"
hyperfine -N -r 5 --prepare "sh -c 'rm -rf $STRATA_ROOT; $S import $W/busybox.tar busybox; sync'" \
  "$S build -q -t ctx $W/ctx"
if [[ -x $A/buildkit.sh ]] && command -v dockerd >/dev/null; then
  echo "== BuildKit (Docker 20.10)"
  B=$A/buildkit.sh
  $B start
  $B import busybox:latest "$W/busybox.tar"
  hyperfine -w 1 -r 5 "$B build -q --no-cache $W/runs"
  $B build -q -t ctx "$W/ctx" >/dev/null
  hyperfine -w 2 -r 10 "$B build -q -t ctx $W/ctx"
  hyperfine -r 5 --prepare "sh -c '$B docker builder prune -af >/dev/null; sync'" "$B build -q -t ctx $W/ctx"
else
  echo "BuildKit skipped: ../shared/anchors (setup.sh) is not available"
fi

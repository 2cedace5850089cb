#!/usr/bin/env bash
# The main job: the multi-stage sample in testdata/sample on a busybox base image made offline.
#
# It makes the base image's root filesystem offline, builds strata, checks the sample and prints
# the build graph its target lowers to, imports the base image into a state root, builds the
# sample (`strata build`: three stages, RUN steps in the sandbox, COPY --from between stages),
# runs the image it made, and builds it again to show every step answered by the cache.
set -euo pipefail
# Root is needed (apt packages, namespaces, overlay mounts): a user re-runs this through sudo,
# keeping the PATH that finds the Rust toolchain.
if [[ $(id -u) -ne 0 ]]; then
  exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME env "HOME=$HOME" "$0" "$@"
fi
cd "$(dirname "$0")/.."
scripts/setup.sh
out=${STRATA_JOB_DIR:-target/main-job}
mkdir -p "$out"
testdata/base-image.sh busybox "$out/busybox-rootfs.tar"
cargo build --release --quiet
strata=target/release/strata
echo "== strata check testdata/sample"
$strata check testdata/sample
echo "== strata graph testdata/sample (DOT written to $out/sample.dot)"
$strata graph testdata/sample > "$out/sample.dot"
$strata graph --format json testdata/sample > "$out/sample.json"
python3 - "$out/sample.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
print(f"{len(g['ops'])} ops; target {g['target_digest']}")
for op in g["ops"]:
    print(f"  {op['digest'][7:19]}  {op['name']}")
PY
export STRATA_ROOT=${STRATA_ROOT:-$PWD/$out/root}
echo "== strata import $out/busybox-rootfs.tar busybox (state root $STRATA_ROOT)"
$strata import "$out/busybox-rootfs.tar" busybox
$strata images
echo "== strata build -t sample testdata/sample"
$strata build --progress plain -t sample testdata/sample
echo "== strata run --rm sample (the image's CMD)"
$strata run --rm sample
echo "== strata build again: every step comes from the cache, same image ID"
$strata build --progress plain -t sample testdata/sample
$strata images

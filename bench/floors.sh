#!/usr/bin/env bash
# bench/floors.sh [FILE]: the physical floors of this machine that BENCHMARKS.md quotes, each
# the median of 5 runs: hashing, compressing and archiving a 256 MB layer-like file (FILE, or
# the Debian base tar repeated, or base64 text), copying it, creating 5,000 files, forking
# into new namespaces and mounting an overlay. Run as root (namespaces, mounts); needs
# hyperfine (../shared/anchors/setup.sh installs it) and pigz/zstd (apt-get install pigz zstd).
set -euo pipefail
command -v hyperfine >/dev/null || { echo "floors.sh needs hyperfine" >&2; exit 1; }
for t in pigz zstd; do command -v $t >/dev/null || apt-get install -y -qq $t >/dev/null; done
w=${BENCH_DIR:-/var/tmp/strata-bench}/floors
rm -rf "$w"; mkdir -p "$w"; trap 'umount "$w/m" 2>/dev/null || true; rm -rf "$w"' EXIT
src=${1:-}
if [[ -z $src ]]; then
  deb=${BENCH_DIR:-/var/tmp/strata-bench}/debian.tar
  if [[ -s $deb ]]; then
    while [[ $(stat -c %s "$w/layer" 2>/dev/null || echo 0) -lt 268435456 ]]; do cat "$deb" >>"$w/layer"; done
    truncate -s 256M "$w/layer"; what="the Debian base tar, repeated"
  else
    head -c 200M /dev/urandom | base64 | head -c 256M >"$w/layer"; what="base64 text"
  fi
  src=$w/layer
else
  what=$src
fi
mb=$(( $(stat -c %s "$src") / 1000000 ))
mkdir -p "$w/files" "$w/lower" "$w/upper" "$w/work" "$w/m"
echo "# $mb MB of $what; $(nproc) CPUs"
run() { # name, command: prints the median seconds and MB/s
  local name=$1; shift
  hyperfine -N --runs 5 --warmup 1 --export-json "$w/h.json" "$*" >/dev/null 2>&1 ||
    hyperfine --runs 5 --warmup 1 --export-json "$w/h.json" "$*" >/dev/null
  python3 - "$name" "$w/h.json" "$mb" <<'EOF'
import json, sys
name, f, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = json.load(open(f))["results"][0]["median"]
print(f"| {name} | {m:.3f} s | {mb / m:.0f} MB/s |" if mb else f"| {name} | {m * 1000:.1f} ms | |")
EOF
}
echo "| operation | median | throughput |"
echo "|---|---|---|"
run "sha256sum" "sha256sum $src"
run "gzip -6" "sh -c 'gzip -6 -c $src >/dev/null'"
run "pigz -6 ($(nproc) threads)" "sh -c 'pigz -6 -c $src >/dev/null'"
run "zstd -3 -T1" "sh -c 'zstd -3 -T1 -q -c $src >/dev/null'"
run "zstd -3 -T0" "sh -c 'zstd -3 -T0 -q -c $src >/dev/null'"
run "cat (read, page cache)" "sh -c 'cat $src >/dev/null'"
run "cp (new file, page cache)" "sh -c 'rm -f $w/copy; cp $src $w/copy'"
run "tar c of the file (through a pipe)" "sh -c 'tar -C $(dirname $src) -cf - $(basename $src) | cat >/dev/null'"
mb=0
run "5,000 empty files created in a new directory" "sh -c 'cd \$(mktemp -d -p $w/files) && seq 5000 | xargs touch'"
run "5,000 empty files created right after deleting 5,000 (ext4 skips recently freed inodes)" "sh -c 'rm -rf $w/again; mkdir $w/again; cd $w/again; seq 5000 | xargs touch'"
run "fork + unshare (mount, pid, net, ipc, uts) + exec true" "unshare -m -p -n -i -u -f true"
run "overlay mount + umount" "sh -c 'mount -t overlay overlay -o lowerdir=$w/lower,upperdir=$w/upper,workdir=$w/work $w/m && umount $w/m'"

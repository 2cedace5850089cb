#!/usr/bin/env python3
"""strata's benchmark suite: each scenario built by strata and, when ../shared/anchors is set up,
by BuildKit (Docker 20.10's) and buildah, in alternating runs on this machine.

    sudo bench/suite.py [--quick] [--runs N] [--only NAME[,NAME]] [--json FILE]

Per scenario and builder: median wall time and spread (min-max), user+sys CPU seconds of the
client process tree, peak RSS of the client, and the ratio strata / best other. BuildKit's work
happens in its daemon: its CPU and RSS columns show the client only, marked with *. A missing
reference builder is reported, never a failure. --quick uses small inputs, shorter sleeps and
one counted run after the warm-up (under two minutes with all three builders).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ANCHORS = os.environ.get("ANCHORS", os.path.join(REPO, "..", "shared", "anchors"))
STRATA = os.environ.get("STRATA_BIN", os.path.join(REPO, "target", "release", "strata"))
WORK = os.environ.get("BENCH_DIR", "/var/tmp/strata-bench")
ROOT = os.path.join(WORK, "strata-root")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def quiet(cmd):
    return subprocess.run(cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)


def timed(cmd, env=None):
    """Runs cmd; returns (wall seconds, user+sys seconds, peak RSS KiB, ok)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    ok = os.waitstatus_to_exitcode(status) == 0
    if not ok:
        sys.stderr.write(f"  failed: {cmd}\n{err[-600:]}\n")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, ok


class Builders:
    def __init__(self):
        self.have = {"strata": os.access(STRATA, os.X_OK)}
        bk = os.path.join(ANCHORS, "buildkit.sh")
        ba = os.path.join(ANCHORS, "buildah.sh")
        self.have["buildkit"] = os.path.exists(bk) and shutil.which("dockerd") is not None
        self.have["buildah"] = os.path.exists(ba) and shutil.which("buildah") is not None
        self.bk, self.ba = bk, ba

    def registry(self):
        """A registry on 127.0.0.1:5000: running, or started through the anchors."""
        if quiet("curl -fs http://127.0.0.1:5000/v2/").returncode == 0:
            return True
        reg = os.path.join(ANCHORS, "registry.sh")
        return os.path.exists(reg) and quiet([reg, "start"]).returncode == 0

    def setup(self, base_tar, debian_tar):
        env = dict(os.environ, STRATA_ROOT=ROOT, SOURCE_DATE_EPOCH="1600000000")
        shutil.rmtree(ROOT, ignore_errors=True)
        sh([STRATA, "import", base_tar, "busybox"], env=env, stdout=subprocess.DEVNULL)
        self.debian = debian_tar is not None
        if debian_tar:
            sh([STRATA, "import", debian_tar, "debian"], env=env, stdout=subprocess.DEVNULL)
        if self.have["buildkit"]:
            if quiet([self.bk, "start"]).returncode != 0:
                self.have["buildkit"] = False
            else:
                quiet([self.bk, "import", "busybox:latest", base_tar])
                if debian_tar:
                    quiet([self.bk, "import", "debian:latest", debian_tar])
        if self.have["buildah"]:
            if quiet([self.ba, "import", "busybox:latest", base_tar]).returncode != 0:
                self.have["buildah"] = False
            elif debian_tar:
                quiet([self.ba, "import", "debian:latest", debian_tar])

    def build(self, who, ctx, extra=""):
        if who == "strata":
            return f"env STRATA_ROOT={ROOT} {STRATA} build -q {extra} {ctx}"
        if who == "buildkit":
            return f"{self.bk} build -q {extra} {ctx}"
        return f"{self.ba} build -q {extra} {ctx}"

    def multi_platform_base(self):
        """`busybox-multi`: this machine's busybox and Debian's arm64 one as one multi-platform
        image (for strata an index; for buildah a manifest list of two images)."""
        arm = os.path.join(WORK, "busybox-arm64.tar")
        if not os.path.exists(arm):
            sh([os.path.join(REPO, "testdata", "base-image.sh"), "busybox", arm, "linux/arm64"],
               stdout=subprocess.DEVNULL)
        base = os.path.join(WORK, "busybox.tar")
        env = dict(os.environ, STRATA_ROOT=ROOT, SOURCE_DATE_EPOCH="1600000000")
        sh([STRATA, "binfmt", "--install", "linux/arm64"], stdout=subprocess.DEVNULL)
        sh([STRATA, "import", "--platform", "linux/amd64,linux/arm64", base, arm, "busybox-multi"],
           env=env, stdout=subprocess.DEVNULL)
        if self.have["buildah"]:
            ba = f"{self.ba} buildah"
            ok = quiet(f"{ba} manifest rm docker.io/library/busybox-multi:latest; "
                       f"c=$({ba} from scratch) && m=$({ba} mount $c) && tar -C $m -xf {arm} && "
                       f"{ba} umount $c && {ba} config --arch arm64 --os linux $c && "
                       f"{ba} commit -q $c docker.io/library/busybox-arm64:latest && {ba} rm $c && "
                       f"{ba} manifest create docker.io/library/busybox-multi:latest && "
                       f"{ba} manifest add docker.io/library/busybox-multi:latest "
                       f"containers-storage:docker.io/library/busybox:latest && "
                       f"{ba} manifest add docker.io/library/busybox-multi:latest "
                       f"containers-storage:docker.io/library/busybox-arm64:latest").returncode == 0
            if not ok:
                print("  note: buildah's busybox-multi manifest list could not be made")

    def platform_build(self, who, ctx, platforms):
        """A --no-cache build for `platforms` (buildah: into a manifest list; Docker 20.10's
        builder has no multi-platform output)."""
        if who == "strata":
            return f"env STRATA_ROOT={ROOT} {STRATA} build -q --no-cache --platform {platforms} {ctx}"
        if who == "buildah":
            return (f"{self.ba} buildah manifest rm bench-mp >/dev/null 2>&1; {self.ba} build -q "
                    f"--no-cache --platform {platforms} --manifest bench-mp {ctx}")
        return None

    def clear_cache(self, who):
        """A cold start: no build cache (base images stay)."""
        if who == "strata":
            return f"env STRATA_ROOT={ROOT} {STRATA} prune -a"
        if who == "buildkit":
            return f"{self.bk} docker builder prune -af"
        return f"{self.ba} buildah rm --all; {self.ba} buildah rmi --prune"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make_files(d, n, size, text=False):
    """n files of `size` bytes of distinct content (random, or base64 text), in 50 directories."""
    import base64
    seed = os.urandom(size + 4096)
    for i in range(n):
        sub = os.path.join(d, f"d{i % 50:02d}")
        os.makedirs(sub, exist_ok=True)
        off = (i * 7919) % 4096
        with open(os.path.join(sub, f"f{i}.bin"), "wb") as f:
            if text:
                f.write(base64.encodebytes(os.urandom(size * 3 // 4))[:size])
            else:
                f.write(seed[off:off + size] + str(i).encode())


def text_file(path, size):
    """`size` bytes of base64 text: compresses to about 75 %, like real layers' mix."""
    import base64
    block = base64.encodebytes(os.urandom(3 << 20))
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[:left])
            left -= min(left, len(block))
            block = block[1:] + block[:1]


def layer_file(path, size):
    """`size` bytes for a big layer: the Debian base's tar repeated (real files: compresses
    like real layers) when scenario 11's base is there, else base64 text."""
    deb = os.path.join(WORK, "debian.tar")
    if not os.path.exists(deb):
        text_file(path, size)
        return "base64 text"
    # Streamed, never held whole: a big Python process would count in every child's peak RSS
    # (ru_maxrss of a forked child starts at its parent's).
    with open(path, "wb") as out:
        left = size
        while left > 0:
            with open(deb, "rb") as f:
                while left > 0:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
    return "the Debian base's tar, repeated"


def oci_out(b, who, d, comp, name):
    """Builds (cached) and writes the image to an OCI layout with `comp` compression."""
    out = f"{d}/out-{who}"
    if who == "strata":
        return (f"rm -rf {out}; env STRATA_ROOT={ROOT} {STRATA} build -q "
                f"-o type=oci,dest={out},tar=false,compression={comp} {d}")
    if who == "buildah":
        flags = "--disable-compression" if comp == "uncompressed" else f"--compression-format {comp}"
        return (f"rm -rf {out}; {b.ba} build -q -t {name} {d} && "
                f"{b.ba} buildah push -q {flags} {name} oci:{out}")
    # Docker 20.10's BuildKit has no OCI exporter and no zstd: `docker save` writes the image
    # with uncompressed layers.
    if comp != "uncompressed":
        return None
    return f"rm -f {out}.tar; {b.bk} build -q -t {name} {d} && {b.bk} docker save -o {out}.tar {name}"


def scenarios(quick, b):
    """(name, setup(dir) -> None, cases: [(label, prepare, extra_args[, cmd(b, who, d)])])."""
    s = []

    def fixed(d):
        write(f"{d}/Dockerfile", "FROM busybox\nENV A=1\nLABEL b=2\n")
    s.append(("1 fixed overhead", fixed, [("cold", "clear", ""), ("warm", None, "")]))

    for n in ([1, 5] if quick else [1, 20, 40]):
        def runs(d, n=n):
            write(f"{d}/Dockerfile", "FROM busybox\n" + "".join(f"RUN echo {i} > /f{i}\n" for i in range(n)))
        cases = [("--no-cache", None, "--no-cache")]
        if n == (5 if quick else 40):
            cases.append(("cached rebuild", None, ""))
        s.append((f"2 {n} RUN steps", runs, cases))

    def multistage(d):
        write(f"{d}/foo", "foo\n")
        write(f"{d}/Dockerfile", "FROM busybox AS base\nCOPY foo /etc/foo\nRUN cp /etc/foo /etc/bar\n"
              "FROM scratch\nCOPY --from=base /etc/bar /bar\n")
    s.append(("3 minimal multi-stage", multistage, [("cold", "clear", "")]))

    def parallel(d):
        mb, secs = (4, 0.5) if quick else (32, 1)
        stages = "".join(
            f"FROM busybox AS s{i}\nRUN sleep {secs} && head -c {mb}m /dev/urandom > /out{i}\n\n"
            for i in range(4))
        final = "FROM busybox\n" + "".join(f"COPY --from=s{i} /out{i} /out{i}\n" for i in range(4))
        write(f"{d}/Dockerfile", stages + final)
    s.append((f"4 four {0.5 if quick else 1} s stages", parallel, [("cold", "clear", "")]))

    for files, size in ([(500, 4000)] if quick else [(5000, 32000), (44000, 13000)]):
        def context(d, files=files, size=size):
            make_files(f"{d}/src", files, size)
            write(f"{d}/Dockerfile", "FROM busybox\nWORKDIR /src\nCOPY . .\n")
        s.append((f"5 context {files} files / {files * size // 1000000} MB", context, [
            ("cold", "clear", ""), ("no-op", None, ""),
            ("one file changed", "touch-one", ""), ("one file added", "add-one", "")]))

    def add_tars(d):
        import tarfile, io
        n, big = (1000, 16 << 20) if quick else (10000, 512 << 20)
        with tarfile.open(f"{d}/many.tar", "w") as t:
            data = os.urandom(4096)
            for i in range(n):
                info = tarfile.TarInfo(f"many/d{i % 50:02d}/f{i}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        with open(f"{d}/big.bin", "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(big >> 20):
                f.write(chunk)
        with tarfile.open(f"{d}/big.tar", "w") as t:
            t.add(f"{d}/big.bin", arcname="big.bin")
        os.remove(f"{d}/big.bin")
        write(f"{d}/Dockerfile", "FROM busybox\nADD many.tar /x/\nADD big.tar /y/\n")
    s.append(("6 ADD of local tars", add_tars, [("cold", "clear", "")]))

    big = (32 if quick else 512) << 20

    def export(d):
        print(f"  scenario 7's layer: {layer_file(f'{d}/big.txt', big)}")
        write(f"{d}/Dockerfile", "FROM busybox\nCOPY big.txt /big.txt\n")
    s.append((f"7 export of a {big >> 20} MB layer", export, [
        (comp, "fresh-blobs", "", lambda b, w, d, c=comp: oci_out(b, w, d, c, "s7"))
        for comp in ("gzip", "zstd", "uncompressed")]))

    def export_again(d):
        layer_file(f"{d}/big.txt", big)
        with open(f"{d}/small.bin", "wb") as f:
            f.write(os.urandom(10 << 20))
        write(f"{d}/Dockerfile", "FROM busybox\nCOPY big.txt /big.txt\nCOPY small.bin /small.bin\n")
    s.append((f"8 export after a 10 MB change", export_again, [
        ("gzip", "change-small", "", lambda b, w, d: oci_out(b, w, d, "gzip", "s8"))]))

    def pull(d):
        # A ~300 MB, 20,000-file base: busybox and three layers, pushed with gzip and zstd.
        n, size = (600, 8000) if quick else (20000, 15000)
        for part in "abc":
            make_files(f"{d}/base/{part}", n // 3, size, text=True)
        write(f"{d}/base/Dockerfile", "FROM busybox\nCOPY a /a\nCOPY b /b\nCOPY c /c\n")
        for comp in ("gzip", "zstd"):
            sh(f"env STRATA_ROOT={ROOT} {STRATA} build -q -o type=image,name={REGISTRY}/bench-base:{comp},"
               f"push=true,compression={comp},oci-mediatypes=true {d}/base",
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            write(f"{d}/{comp}/Dockerfile", f"FROM {REGISTRY}/bench-base:{comp}\nRUN true\n")
    s.append(("9 FROM a registry image", pull, [
        (f"{comp}, cold root", f"cold-root-{comp}", "", lambda b, w, d, c=comp: pull_cmd(b, w, d, c))
        for comp in ("gzip", "zstd")]))

    def apt(d):
        write(f"{d}/Dockerfile", "FROM debian\n"
              "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\\n"
              "    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \\\n"
              "    rm -f /etc/apt/apt.conf.d/docker-clean && apt-get update -qq && \\\n"
              "    apt-get install -y -qq --no-install-recommends python3-minimal curl >/dev/null\n")
    # 12: two platforms. Cross-compiled: the work runs natively in a stage pinned to the build
    # platform, once per target (it reads TARGETARCH); emulated: the same work in the target
    # stage, so arm64's runs under QEMU. Each against the same build for one platform.
    work = ("i=0; while [ $i -lt %d ]; do i=$((i+1)); done; "
            "head -c 4m /dev/urandom | md5sum > /out" % (20000 if quick else 200000))

    def two_platforms(d):
        write(f"{d}/cross/Dockerfile", "FROM --platform=$BUILDPLATFORM busybox-multi AS build\n"
              f"ARG TARGETARCH\nRUN {work} && echo $TARGETARCH >> /out\n"
              "FROM busybox-multi\nCOPY --from=build /out /out\n")
        write(f"{d}/emulated/Dockerfile", f"FROM busybox-multi\nRUN {work}\n")
        b.multi_platform_base()
    both = "linux/amd64,linux/arm64"
    s.append(("12 two platforms", two_platforms, [
        (f"{kind}, {label}", None, "",
         lambda b, w, d, k=kind, p=plats: b.platform_build(w, f"{d}/{k}", p))
        for kind in ("cross", "emulated")
        for label, plats in (("linux/amd64", "linux/amd64"), ("linux/arm64", "linux/arm64"),
                             ("both", both))]))

    if b.debian:
        s.append(("11 apt-get with a cache mount", apt, [
            ("--no-cache, apt cache warm", None, "--no-cache")]))
    return s


REGISTRY = "127.0.0.1:5000"


FRESH = {"n": 0}


def fresh_root():
    return os.path.join(WORK, f"strata-root-9-{FRESH['n']}")


def pull_cmd(b, who, d, comp):
    if who == "strata":
        # A new, empty root for every run (made in prepare): nothing of the base is local.
        return f"env STRATA_ROOT={fresh_root()} {STRATA} build -q {d}/{comp}"
    if who == "buildah":
        return f"{b.ba} build -q --pull=always --tls-verify=false {d}/{comp}"
    if comp == "zstd":
        return None  # Docker 20.10's BuildKit cannot pull zstd layers.
    return f"{b.bk} build -q {d}/{comp}"


def cold_root(b, who, comp):
    """Before a timed pull: strata gets a new root (the old ones are removed at the end, so
    that ext4's slow allocation next to recently deleted inodes does not count: see
    BENCHMARKS.md); the others delete the images built on the base (untagged, so dangling),
    then the base, then their build cache."""
    if who == "strata":
        FRESH["n"] += 1
    # Both bases go: they share their layers (same diff IDs), which a builder would reuse.
    bases = f"{REGISTRY}/bench-base:gzip {REGISTRY}/bench-base:zstd"
    if who == "buildah":
        quiet(f"{b.ba} buildah rm --all; {b.ba} buildah rmi --prune; {b.ba} buildah rmi -f {bases}")
    elif who == "buildkit":
        quiet(f"{b.bk} docker image prune -f; {b.bk} docker rmi -f {bases}; "
              f"{b.bk} docker builder prune -af")
    quiet("sync")


def concurrent(b, who, d, n):
    """n builds of the same Dockerfile at once on one root (a single timed shell)."""
    one = b.build(who, d, "")
    return "sh -c '" + " & ".join([one] * n).replace("'", "") + " & wait'"


def prepare(kind, b, who, d):
    if kind == "clear":
        quiet(b.clear_cache(who))
    elif kind == "touch-one":
        with open(f"{d}/src/d00/f0.bin", "ab") as f:
            f.write(os.urandom(8))
    elif kind and kind.startswith("cold-root-"):
        cold_root(b, who, kind[len("cold-root-"):])
    elif kind == "fresh-blobs" and who == "strata":
        # The layer built again (untimed) with no compressed blob of it kept: the timed
        # export compresses it. (buildah's push compresses every time; docker save does not.)
        quiet(b.clear_cache(who))
        quiet(b.build(who, d, ""))
    elif kind == "change-small":
        with open(f"{d}/small.bin", "wb") as f:
            f.write(os.urandom(10 << 20))
    elif kind == "add-one":
        with open(f"{d}/src/d01/new-{time.time_ns()}.bin", "wb") as f:
            f.write(os.urandom(1000))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--only")
    ap.add_argument("--json")
    a = ap.parse_args()
    runs = a.runs or (1 if a.quick else 5)
    t0 = time.perf_counter()
    if not os.access(STRATA, os.X_OK):
        sh(["cargo", "build", "--release", "-p", "strata"], cwd=REPO)
    os.makedirs(WORK, exist_ok=True)
    # One suite at a time: two would share the builders' state and the machine.
    import fcntl
    lock = open(os.path.join(WORK, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"another benchmark suite is running ({WORK}/lock)")
    base = os.path.join(WORK, "busybox.tar")
    if not os.path.exists(base):
        sh([os.path.join(REPO, "testdata", "base-image.sh"), "busybox", base], stdout=subprocess.DEVNULL)
    debian = os.path.join(WORK, "debian.tar")
    wants_debian = not a.quick and (not a.only or "11" in a.only.split(","))
    if wants_debian and not os.path.exists(debian):
        mk = os.path.join(ANCHORS, "base-image.sh")
        if not os.path.exists(mk) or quiet([mk, "debian", debian]).returncode != 0:
            print("note: scenario 11 needs a Debian base (../shared/anchors/base-image.sh debian); skipped")
    b = Builders()
    b.setup(base, debian if wants_debian and os.path.exists(debian) else None)
    for who in ("buildkit", "buildah"):
        if not b.have[who]:
            print(f"note: {who} is not available (../shared/anchors/setup.sh); reported as missing")
    who_all = [w for w in ("strata", "buildkit", "buildah") if b.have[w]]
    results = []
    for name, setup, cases in scenarios(a.quick, b):
        if a.only and not any(name.split()[0] == o for o in a.only.split(",")):
            continue
        if name.startswith("9") and not b.registry():
            print("note: scenario 9 needs a registry on 127.0.0.1:5000 (../shared/anchors/registry.sh "
                  "or docker-registry); skipped")
            continue
        started = time.perf_counter()
        d = os.path.join(WORK, "s-" + name.split()[0] + "-" + str(zlib.crc32(name.encode()) % 10000))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        setup(d)
        for case in cases:
            label, prep, extra = case[:3]
            cmd = case[3] if len(case) > 3 else (lambda b, w, d, extra=extra: b.build(w, d, extra))
            who_case = [w for w in who_all if cmd(b, w, d) is not None]
            samples = {w: [] for w in who_case}
            # One warm-up, then alternating counted runs.
            for i in range(runs + 1):
                for w in who_case:
                    prepare(prep, b, w, d)
                    wall, cpu, rss, ok = timed(cmd(b, w, d))
                    if i > 0 and ok:
                        samples[w].append((wall, cpu, rss))
            row = summary(f"{name}", label, samples, who_all)
            if name.startswith("4"):
                # The critical path on this machine: the stages' RUN commands alone, run at once.
                mb, secs = (4, 0.5) if a.quick else (32, 1)
                floor = statistics.median(timed(
                    "sh -c 'for i in 0 1 2 3; do (sleep %s && busybox head -c %dm /dev/urandom > "
                    "%s/floor$i) & done; wait; sync -f %s'" % (secs, mb, WORK, WORK))[0] for _ in range(3))
                row["floor"] = floor
                bk = row.get("buildkit")
                if row.get("strata") and bk:
                    row["overhead_ratio"] = (row["strata"]["median"] - floor) / (bk["median"] - floor)
            results.append(row)
            print_row(row, who_all)
        if name.startswith("7") and b.have["strata"]:
            gzip_ratio(d)
        if name.startswith("9"):
            for i in range(FRESH["n"] + 1):
                shutil.rmtree(os.path.join(WORK, f"strata-root-9-{i}"), ignore_errors=True)
        print(f"  ({name}: {time.perf_counter() - started:.0f} s with setup)", flush=True)
    # 10: 16 concurrent builds of scenario 3 on one root, after one warm-up.
    if not a.only or any(o.startswith("10") for o in a.only.split(",")):
        d = os.path.join(WORK, "s-10")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        write(f"{d}/foo", "foo\n")
        write(f"{d}/Dockerfile", "FROM busybox AS base\nCOPY foo /etc/foo\nRUN cp /etc/foo /etc/bar\n"
              "FROM scratch\nCOPY --from=base /etc/bar /bar\n")
        n = 4 if a.quick else 16
        samples = {w: [] for w in who_all}
        for i in range(runs + 1):
            for w in who_all:
                wall, cpu, rss, ok = timed(concurrent(b, w, d, n))
                if i > 0 and ok:
                    samples[w].append((wall, cpu, rss))
        row = summary(f"10 {n} concurrent builds", "warm", samples, who_all)
        results.append(row)
        print_row(row, who_all)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
    print(f"suite: {time.perf_counter() - t0:.0f} s", flush=True)


def summary(name, label, samples, who_all):
    row = {"scenario": name, "case": label}
    for w in who_all:
        v = samples.get(w)
        if v is None:
            row[w] = "n/a"
            continue
        if not v:
            row[w] = None
            continue
        walls = [x[0] for x in v]
        row[w] = {"median": statistics.median(walls), "min": min(walls), "max": max(walls),
                  "cpu": statistics.median([x[1] for x in v]),
                  "rss_mb": max(x[2] for x in v) / 1024}
    others = [row[w]["median"] for w in ("buildkit", "buildah") if isinstance(row.get(w), dict)]
    if isinstance(row.get("strata"), dict) and others:
        row["ratio"] = row["strata"]["median"] / min(others)
    return row


def gzip_ratio(d):
    """strata's gzip layer against `gzip -6` of the same tar."""
    import glob
    out = f"{d}/ratio"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, STRATA_ROOT=ROOT)
    sizes = {}
    for comp in ("gzip", "uncompressed"):
        sh([STRATA, "build", "-q", "-o", f"type=oci,dest={out}-{comp},tar=false,compression={comp}", d],
           env=env, stdout=subprocess.DEVNULL)
        blobs = glob.glob(f"{out}-{comp}/blobs/sha256/*")
        sizes[comp] = max(blobs, key=os.path.getsize)
    t = time.perf_counter()
    r = subprocess.run(f"gzip -6 -c {sizes['uncompressed']} | wc -c", shell=True, capture_output=True, text=True)
    gz_time = time.perf_counter() - t
    ref = int(r.stdout.strip())
    mine = os.path.getsize(sizes["gzip"])
    raw = os.path.getsize(sizes["uncompressed"])
    print(f"  gzip: strata's layer {mine} bytes, gzip -6 {ref} bytes ({mine / ref - 1:+.2%}); "
          f"gzip -6 alone {raw / gz_time / 1e6:.0f} MB/s", flush=True)
    shutil.rmtree(f"{out}-gzip", ignore_errors=True)
    shutil.rmtree(f"{out}-uncompressed", ignore_errors=True)


def print_row(row, who_all):
    parts = [f"{row['scenario']:<28} {row['case']:<18}"]
    for w in ("strata", "buildkit", "buildah"):
        r = row.get(w)
        if w not in who_all:
            parts.append(f"{w}: missing")
        elif r == "n/a":
            parts.append(f"{w}: n/a")
        elif r is None:
            parts.append(f"{w}: failed")
        else:
            star = "*" if w == "buildkit" else ""
            parts.append(f"{w} {r['median']:.3f}s [{r['min']:.3f}-{r['max']:.3f}] cpu {r['cpu']:.2f}s{star} rss {r['rss_mb']:.0f}MB{star}")
    if "ratio" in row:
        parts.append(f"ratio {row['ratio']:.2f}")
    if "floor" in row:
        parts.append(f"critical path {row['floor']:.3f}s")
    if "overhead_ratio" in row:
        parts.append(f"overhead ratio {row['overhead_ratio']:.2f}")
    print(" | ".join(parts), flush=True)


if __name__ == "__main__":
    main()

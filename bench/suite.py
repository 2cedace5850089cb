#!/usr/bin/env python3
"""strata's benchmark suite: each scenario built by strata and, when ../shared/anchors is set up,
by BuildKit (Docker 20.10's) and buildah, in alternating runs on this machine.

    sudo bench/suite.py [--quick] [--runs N] [--only NAME[,NAME]] [--json FILE]

Per scenario and builder: median wall time and spread (min-max), user+sys CPU seconds of the
client process tree, peak RSS of the client, and the ratio strata / best other. BuildKit's work
happens in its daemon: its CPU and RSS columns show the client only, marked with *. A missing
reference builder is reported, never a failure. --quick uses small inputs and 3 counted runs.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time

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

    def setup(self, base_tar):
        env = dict(os.environ, STRATA_ROOT=ROOT, SOURCE_DATE_EPOCH="1600000000")
        shutil.rmtree(ROOT, ignore_errors=True)
        sh([STRATA, "import", base_tar, "busybox"], env=env, stdout=subprocess.DEVNULL)
        if self.have["buildkit"]:
            if quiet([self.bk, "start"]).returncode != 0:
                self.have["buildkit"] = False
            else:
                quiet([self.bk, "import", "busybox:latest", base_tar])
        if self.have["buildah"]:
            if quiet([self.ba, "import", "busybox:latest", base_tar]).returncode != 0:
                self.have["buildah"] = False

    def build(self, who, ctx, extra=""):
        if who == "strata":
            return f"env STRATA_ROOT={ROOT} {STRATA} build -q {extra} {ctx}"
        if who == "buildkit":
            return f"{self.bk} build -q {extra} {ctx}"
        return f"{self.ba} build -q {extra} {ctx}"

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


def make_files(d, n, size):
    """n files of `size` bytes of distinct, poorly compressible content, in 50 directories."""
    seed = os.urandom(size + 4096)
    for i in range(n):
        sub = os.path.join(d, f"d{i % 50:02d}")
        os.makedirs(sub, exist_ok=True)
        off = (i * 7919) % 4096
        with open(os.path.join(sub, f"f{i}.bin"), "wb") as f:
            f.write(seed[off:off + size] + str(i).encode())


def scenarios(quick):
    """(name, setup(dir) -> None, cases: [(label, prepare, extra_args)])."""
    s = []

    def fixed(d):
        write(f"{d}/Dockerfile", "FROM busybox\nENV A=1\nLABEL b=2\n")
    s.append(("1 fixed overhead", fixed, [("cold", "clear", ""), ("warm", None, "")]))

    for n in ([1, 20] if quick else [1, 20, 40]):
        def runs(d, n=n):
            write(f"{d}/Dockerfile", "FROM busybox\n" + "".join(f"RUN echo {i} > /f{i}\n" for i in range(n)))
        cases = [("--no-cache", None, "--no-cache")]
        if n == (20 if quick else 40):
            cases.append(("cached rebuild", None, ""))
        s.append((f"2 {n} RUN steps", runs, cases))

    def multistage(d):
        write(f"{d}/foo", "foo\n")
        write(f"{d}/Dockerfile", "FROM busybox AS base\nCOPY foo /etc/foo\nRUN cp /etc/foo /etc/bar\n"
              "FROM scratch\nCOPY --from=base /etc/bar /bar\n")
    s.append(("3 minimal multi-stage", multistage, [("cold", "clear", "")]))

    def parallel(d):
        mb = 4 if quick else 32
        stages = "".join(
            f"FROM busybox AS s{i}\nRUN sleep 1 && head -c {mb}m /dev/urandom > /out{i}\n\n" for i in range(4))
        final = "FROM busybox\n" + "".join(f"COPY --from=s{i} /out{i} /out{i}\n" for i in range(4))
        write(f"{d}/Dockerfile", stages + final)
    s.append(("4 four 1 s stages", parallel, [("cold", "clear", "")]))

    files, size = (500, 4000) if quick else (5000, 32000)

    def context(d):
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
    return s


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
    runs = a.runs or (3 if a.quick else 5)
    if not os.access(STRATA, os.X_OK):
        sh(["cargo", "build", "--release", "-p", "strata"], cwd=REPO)
    os.makedirs(WORK, exist_ok=True)
    base = os.path.join(WORK, "busybox.tar")
    if not os.path.exists(base):
        sh([os.path.join(REPO, "testdata", "base-image.sh"), "busybox", base], stdout=subprocess.DEVNULL)
    b = Builders()
    b.setup(base)
    for who in ("buildkit", "buildah"):
        if not b.have[who]:
            print(f"note: {who} is not available (../shared/anchors/setup.sh); reported as missing")
    who_all = [w for w in ("strata", "buildkit", "buildah") if b.have[w]]
    results = []
    for name, setup, cases in scenarios(a.quick):
        if a.only and not any(name.startswith(o) for o in a.only.split(",")):
            continue
        d = os.path.join(WORK, "s-" + name.split()[0] + "-" + str(abs(hash(name)) % 10000))
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        setup(d)
        for label, prep, extra in cases:
            samples = {w: [] for w in who_all}
            # One warm-up, then alternating counted runs.
            for i in range(runs + 1):
                for w in who_all:
                    prepare(prep, b, w, d)
                    wall, cpu, rss, ok = timed(b.build(w, d, extra))
                    if i > 0 and ok:
                        samples[w].append((wall, cpu, rss))
            row = {"scenario": name, "case": label}
            for w in who_all:
                v = samples[w]
                if not v:
                    row[w] = None
                    continue
                walls = [x[0] for x in v]
                row[w] = {"median": statistics.median(walls), "min": min(walls), "max": max(walls),
                          "cpu": statistics.median([x[1] for x in v]),
                          "rss_mb": max(x[2] for x in v) / 1024}
            others = [row[w]["median"] for w in ("buildkit", "buildah") if row.get(w)]
            if row.get("strata") and others:
                row["ratio"] = row["strata"]["median"] / min(others)
            results.append(row)
            print_row(row, who_all)
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
        row = {"scenario": f"10 {n} concurrent builds", "case": "warm"}
        for w in who_all:
            v = samples[w]
            row[w] = None if not v else {
                "median": statistics.median([x[0] for x in v]), "min": min(x[0] for x in v),
                "max": max(x[0] for x in v), "cpu": statistics.median([x[1] for x in v]),
                "rss_mb": max(x[2] for x in v) / 1024}
        others = [row[w]["median"] for w in ("buildkit", "buildah") if row.get(w)]
        if row.get("strata") and others:
            row["ratio"] = row["strata"]["median"] / min(others)
        results.append(row)
        print_row(row, who_all)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


def print_row(row, who_all):
    parts = [f"{row['scenario']:<28} {row['case']:<18}"]
    for w in ("strata", "buildkit", "buildah"):
        r = row.get(w)
        if w not in who_all:
            parts.append(f"{w}: missing")
        elif r is None:
            parts.append(f"{w}: failed")
        else:
            star = "*" if w == "buildkit" else ""
            parts.append(f"{w} {r['median']:.3f}s [{r['min']:.3f}-{r['max']:.3f}] cpu {r['cpu']:.2f}s{star} rss {r['rss_mb']:.0f}MB{star}")
    if "ratio" in row:
        parts.append(f"ratio {row['ratio']:.2f}")
    print(" | ".join(parts), flush=True)


if __name__ == "__main__":
    main()

//! Inputs for strata's benchmarks.

/// A large Dockerfile: `stages` stages of `per_stage` instructions of every common kind, each
/// stage copying from the previous one, so parsing, expansion and lowering all do real work.
pub fn large_dockerfile(stages: usize, per_stage: usize) -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=busybox\nARG VERSION=1.0\n");
    for st in 0..stages {
        s.push_str(&format!(
            "FROM ${{BASE}}:latest AS stage{st}\nARG VERSION\n"
        ));
        for i in 0..per_stage {
            match i % 8 {
                0 => s.push_str(&format!("ENV VAR_{i}=\"value ${{VERSION}} {i}\" OTHER_{i}=x\n")),
                1 => s.push_str(&format!(
                    "RUN --mount=type=cache,target=/root/.cache/{i} set -e; \\\n    echo step {i} && \\\n    echo $VAR_{i} > /f{i}\n"
                )),
                2 => s.push_str(&format!("COPY --chown=1000:1000 src/{i} /app/{i}/\n")),
                3 => s.push_str(&format!("LABEL com.example.step{i}=\"${{VERSION}}-{i}\"\n")),
                4 => s.push_str(&format!("WORKDIR /app/{i}\n")),
                5 => {
                    if st > 0 {
                        s.push_str(&format!("COPY --from=stage{} /f{} /prev{i}\n", st - 1, i - 4))
                    } else {
                        s.push_str("EXPOSE 8080/tcp\n")
                    }
                }
                6 => s.push_str(&format!("RUN <<EOF\necho heredoc {i}\necho ${{HOME}}\nEOF\n")),
                _ => s.push_str(&format!("ARG OPT_{i}=${{VERSION:-0}}\n")),
            }
        }
    }
    s.push_str("CMD [\"/bin/sh\"]\n");
    s
}

/// The strata binary the end-to-end benchmarks drive: `$STRATA_BIN`, or the workspace's release
/// build. `None` (with the reason printed) when it is missing or the benchmarks cannot run here
/// (they need root for namespaces and overlay mounts).
pub fn strata_bin(bench: &str) -> Option<std::path::PathBuf> {
    let p = std::env::var_os("STRATA_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/strata")
        });
    if !p.is_file() {
        eprintln!(
            "{bench}: build strata first (cargo build --release -p strata) or set STRATA_BIN"
        );
        return None;
    }
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("{bench}: needs root");
        return None;
    }
    Some(p)
}

/// A state root under `dir` with the offline busybox base image imported as `busybox`.
pub fn busybox_root(bin: &std::path::Path, dir: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::process::Command;
    std::fs::create_dir_all(dir).ok()?;
    let tar = dir.join("busybox.tar");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/base-image.sh");
    if !tar.is_file()
        && !Command::new(&script)
            .arg("busybox")
            .arg(&tar)
            .status()
            .is_ok_and(|s| s.success())
    {
        eprintln!("could not make the busybox base image (install busybox-static)");
        return None;
    }
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    let ok = Command::new(bin)
        .args(["import", &tar.to_string_lossy(), "busybox"])
        .env("STRATA_ROOT", &root)
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(root)
}

/// A build context of `files` files of `size` bytes each (distinct contents) in 50 directories,
/// with `dockerfile` as its Dockerfile.
pub fn make_context(dir: &std::path::Path, files: usize, size: usize, dockerfile: &str) {
    let block: Vec<u8> = (0..size + 97)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for i in 0..files {
        let d = dir.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&d).expect("mkdir");
        let mut data = block[i % 97..i % 97 + size].to_vec();
        data.extend_from_slice(i.to_string().as_bytes());
        std::fs::write(d.join(format!("f{i}.bin")), data).expect("write");
    }
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("write Dockerfile");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_generated_dockerfile_lowers() {
        let df = super::large_dockerfile(3, 40);
        let (l, diags) = strata_frontend::lower::lower(
            &df,
            &Default::default(),
            &strata_frontend::lower::NoResolver,
        );
        assert!(l.is_some(), "{diags:?}");
    }
}

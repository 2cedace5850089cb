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

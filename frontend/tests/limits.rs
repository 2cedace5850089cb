//! Large and pathological inputs: each must give a result or diagnostics, in time linear in its
//! size (these tests assert completion and results, not timings; the timings are benchmarks).

use strata_frontend::lower::{BuildOptions, NoResolver, lower};
use strata_frontend::parser::parse;

const TEN_MB: usize = 10 << 20;

fn mixed_instructions(size: usize) -> String {
    let mut s = String::from("ARG V=1\nFROM busybox AS base\nARG V\n");
    let mut i = 0usize;
    while s.len() < size {
        match i % 6 {
            0 => s.push_str(&format!("ENV K{}=\"v ${{V}} {i}\"\n", i % 64)),
            1 => s.push_str(&format!(
                "RUN echo {i} \\\n  && echo $K{} > /f{}\n",
                i % 64,
                i % 97
            )),
            2 => s.push_str(&format!("COPY src/{} /dst/{}/\n", i % 50, i % 13)),
            3 => s.push_str(&format!("LABEL l{}=\"${{V:-x}}\"\n", i % 32)),
            4 => s.push_str(&format!("WORKDIR /w/{}\n", i % 7)),
            _ => s.push_str(&format!("RUN <<EOF\necho heredoc {i}\nEOF\n")),
        }
        i += 1;
    }
    s
}

#[test]
fn ten_megabyte_dockerfile_lowers() {
    let src = mixed_instructions(TEN_MB);
    let (ast, diags) = parse(&src);
    assert!(diags.iter().all(|d| !d.is_error()));
    assert!(ast.children.len() > 100_000);
    let (l, diags) = lower(&src, &BuildOptions::default(), &NoResolver);
    assert!(l.is_some(), "{:?}", diags.iter().find(|d| d.is_error()));
}

#[test]
fn ten_megabytes_of_env_lines() {
    let mut src = String::from("FROM busybox\n");
    let mut i = 0;
    while src.len() < TEN_MB {
        src.push_str(&format!("ENV VAR_{i}=value_{i} OTHER_{i}=$VAR_{i}\n"));
        i += 1;
    }
    src.push_str("RUN true\n");
    let (l, _) = lower(&src, &BuildOptions::default(), &NoResolver);
    let l = l.expect("lowers");
    assert_eq!(l.config.env.len(), 2 * i + 1);
}

#[test]
fn ten_megabyte_single_line_and_continuation() {
    let long = "x".repeat(TEN_MB);
    let src = format!(
        "FROM busybox\nRUN echo {long}\nRUN a \\\n{}\n",
        "b \\\n".repeat(1 << 20)
    );
    let (ast, diags) = parse(&src);
    assert!(diags.iter().all(|d| !d.is_error()));
    assert_eq!(ast.children.len(), 3);
    assert_eq!(ast.children[2].end_line, 4 + (1 << 20));
}

#[test]
fn thousand_deep_nested_expansion() {
    let depth = 1000;
    let nested = format!("{}deep{}", "${a:-".repeat(depth), "}".repeat(depth));
    let src = format!("FROM busybox\nENV X={nested}\nLABEL y={nested}\n");
    let (l, diags) = lower(&src, &BuildOptions::default(), &NoResolver);
    let l = l.unwrap_or_else(|| panic!("{diags:?}"));
    assert!(l.config.env.contains(&"X=deep".to_string()));
    assert_eq!(l.config.labels["y"], "deep");
}

#[test]
fn far_too_deep_nesting_is_an_error_not_a_crash() {
    let depth = 100_000;
    let nested = format!("{}deep{}", "${a:-".repeat(depth), "}".repeat(depth));
    let src = format!("FROM busybox\nENV X={nested}\n");
    let (l, diags) = lower(&src, &BuildOptions::default(), &NoResolver);
    assert!(l.is_none());
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("nested too deeply")),
        "{:?}",
        diags.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
}

#[test]
fn many_heredocs_and_stages() {
    let mut src = String::new();
    for i in 0..2000 {
        src.push_str(&format!("FROM busybox AS s{i}\n"));
        if i > 0 {
            src.push_str(&format!("COPY --from=s{} /x /x{i}\n", i - 1));
        }
        src.push_str("COPY <<A <<B /d/\nfile a\nA\nfile b\nB\n");
    }
    let (l, diags) = lower(&src, &BuildOptions::default(), &NoResolver);
    assert!(l.is_some(), "{:?}", diags.iter().find(|d| d.is_error()));
}

#[test]
fn ten_megabytes_of_args_and_runs() {
    let mut src = String::new();
    let mut i = 0;
    while src.len() < TEN_MB / 2 {
        src.push_str(&format!("ARG G{i}=v{i}\n"));
        i += 1;
    }
    src.push_str("FROM busybox\n");
    let mut j = 0;
    while src.len() < TEN_MB {
        src.push_str(&format!("ARG A{j}=$G{j}\nARG A{j}\n"));
        j += 1;
    }
    src.push_str("RUN true\n");
    let (l, diags) = lower(&src, &BuildOptions::default(), &NoResolver);
    assert!(l.is_some(), "{:?}", diags.iter().find(|d| d.is_error()));
}

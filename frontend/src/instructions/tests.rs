//! Instruction tests: each instruction's typed form or its error, from Dockerfile text.

use super::*;
use crate::parser::parse;

/// Parses `src` and returns, per instruction, either its typed form's debug line or the error.
fn check(src: &str) -> Vec<Result<Command, String>> {
    let (ast, diags) = parse(src);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    ast.children
        .iter()
        .map(|n| {
            parse_instruction(n)
                .map(|i| i.command)
                .map_err(|d| d.headline("Dockerfile"))
        })
        .collect()
}

fn one_err(src: &str) -> String {
    check(src)
        .into_iter()
        .find_map(Result::err)
        .expect("an error")
}

#[test]
fn from_forms() {
    let r = check("FROM --platform=linux/arm64 Alpine AS Build\n");
    let Ok(Command::From(f)) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(f.base, "Alpine");
    assert_eq!(f.name.as_deref(), Some("build"));
    assert_eq!(f.platform, "linux/arm64");
    assert_eq!(
        one_err("FROM a b\n"),
        "Dockerfile:1: FROM requires either one or three arguments"
    );
    assert!(one_err("FROM a AS 1x\n").contains("invalid name for build stage"));
    assert!(
        one_err("FROM --platfom=x a\n")
            .contains("unknown flag: --platfom (did you mean --platform?)")
    );
}

#[test]
fn copy_and_add() {
    let r = check(
        "FROM a\nCOPY --from=b --chown=1:2 --chmod=755 --link --exclude=*.md a b /d/\nADD --checksum=sha256:00 --keep-git-dir https://x/y.git /src\n",
    );
    let Ok(Command::Copy(c)) = &r[1] else {
        panic!()
    };
    assert_eq!(c.sources, vec!["a", "b"]);
    assert_eq!(c.dest, "/d/");
    assert_eq!(c.from, "b");
    assert!(c.link);
    assert_eq!(c.exclude, vec!["*.md"]);
    let Ok(Command::Add(a)) = &r[2] else { panic!() };
    assert_eq!(a.keep_git_dir, Some(true));
    assert_eq!(a.checksum, "sha256:00");
    assert!(one_err("FROM a\nCOPY x\n").contains("requires at least two arguments"));
    assert!(one_err("FROM a\nCOPY --checksum=x a b\n").contains("unknown flag: --checksum"));
    assert!(one_err("FROM a\nADD --from=x a b\n").contains("unknown flag: --from"));
}

#[test]
fn copy_heredoc_sources() {
    let r = check("FROM a\nCOPY <<-EOF /x\n\thello\nEOF\n");
    let Ok(Command::Copy(c)) = &r[1] else {
        panic!("{r:?}")
    };
    assert_eq!(
        c.contents,
        vec![SourceContent {
            path: "EOF".into(),
            data: "hello\n".into(),
            expand: true
        }]
    );
    assert!(c.sources.is_empty());
}

#[test]
fn run_flags() {
    let r =
        check("FROM a\nRUN --mount=type=cache,target=/c --network=none --security=insecure make\n");
    let Ok(Command::Run(run)) = &r[1] else {
        panic!()
    };
    assert_eq!(run.mounts, vec!["type=cache,target=/c"]);
    assert_eq!(run.network, NetworkMode::None);
    assert_eq!(run.security, SecurityMode::Insecure);
    assert_eq!(run.cmd.args, vec!["make"]);
    assert!(run.cmd.prepend_shell);
    assert!(one_err("FROM a\nRUN --network=bridge x\n").contains("unsupported network mode"));
    assert!(one_err("FROM a\nRUN --mount=type=nope x\n").contains("unsupported mount type"));
}

#[test]
fn healthcheck() {
    let r = check("FROM a\nHEALTHCHECK --interval=1m30s --retries=3 CMD curl x\n");
    let Ok(Command::Healthcheck(h)) = &r[1] else {
        panic!()
    };
    assert_eq!(h.test, vec!["CMD-SHELL", "curl x"]);
    assert_eq!(h.interval, 90_000_000_000);
    assert_eq!(h.retries, 3);
    assert!(one_err("FROM a\nHEALTHCHECK NONE x\n").contains("takes no arguments"));
    assert!(one_err("FROM a\nHEALTHCHECK FOO x\n").contains("Unknown type"));
    assert!(
        one_err("FROM a\nHEALTHCHECK --interval=1us CMD x\n").contains("cannot be less than 1ms")
    );
    assert!(one_err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").contains("cannot be negative"));
}

#[test]
fn misc_errors() {
    assert!(
        one_err("FROM a\nSHELL sh -c\n")
            .contains("SHELL requires the arguments to be in JSON form")
    );
    assert!(one_err("FROM a\nONBUILD ONBUILD RUN x\n").contains("Chaining ONBUILD"));
    assert!(one_err("FROM a\nONBUILD FROM x\n").contains("isn't allowed as an ONBUILD trigger"));
    assert!(one_err("FROM a\nVOLUME [\"\"]\n").contains("can not be an empty string"));
    assert!(one_err("FROM a\nMAINTAINER --boo x\n").contains("unknown flag"));
    assert!(one_err("FROM a\nRUNN x\n").contains("unknown instruction: RUNN"));
    assert!(one_err("FROM a\nENV =x\n").contains("ENV names can not be blank"));
    assert!(matches!(
        &check("FROM a\nSTOPSIGNAL --x SIGTERM\n")[1],
        Ok(Command::Stopsignal { .. })
    ));
}

#[test]
fn onbuild_expression_keeps_heredocs() {
    let r = check("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
    let Ok(Command::Onbuild { expression }) = &r[1] else {
        panic!()
    };
    assert_eq!(expression, "RUN <<EOF\necho hi\nEOF");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1h2m3.5s").unwrap(), 3_723_500_000_000);
    assert_eq!(parse_duration("0").unwrap(), 0);
    assert_eq!(
        parse_duration("5"),
        Err(DurationError::MissingUnit { input: "5".into() })
    );
    let e = parse_duration("5x").unwrap_err();
    assert_eq!(
        e,
        DurationError::UnknownUnit {
            unit: "x".into(),
            input: "5x".into()
        }
    );
    assert_eq!(e.to_string(), "time: unknown unit \"x\" in duration \"5x\"");
    let e = parse_duration("-1s").unwrap_err();
    assert_eq!(
        e,
        DurationError::Negative {
            input: "-1s".into()
        }
    );
    assert_eq!(e.to_string(), "-1s: durations cannot be negative");
    assert_eq!(
        parse_duration("").unwrap_err().to_string(),
        "time: invalid duration \"\""
    );
}

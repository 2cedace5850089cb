//! Parser tests: fixture-format dumps and diagnostics for inputs, data-driven.

use super::*;
use expect_test::{Expect, expect};

/// Parses `input` and compares the fixture-format dump plus every diagnostic headline.
fn check(input: &str, expect: Expect) {
    let (ast, diags) = parse(input);
    let mut out = dump::dump(&ast);
    for d in diags {
        out.push_str(&format!("{}\n", d.headline("Dockerfile")));
    }
    expect.assert_eq(&out);
}

fn lines(input: &str) -> Vec<(usize, usize)> {
    let (ast, _) = parse(input);
    ast.children
        .iter()
        .map(|n| (n.start_line, n.end_line))
        .collect()
}

#[test]
fn basic_instructions() {
    check(
        "FROM busybox AS build\nrun echo hi\nENV a=1 b=\"x y\"\nENV legacy value here\nCMD [\"a\", \"b\"]\n",
        expect![[r#"
            (from "busybox" "AS" "build")
            (run "echo hi")
            (env "a" "1" "=" "b" "\"x y\"" "=")
            (env "legacy" "value here" "")
            (cmd "a" "b")
        "#]],
    );
}

#[test]
fn continuation_comments_and_blank_lines() {
    check(
        "FROM a\nRUN echo a \\\n# a comment\n\n    && echo b\n",
        expect![[r#"
            (from "a")
            (run "echo a     && echo b")
            Dockerfile:2: NoEmptyContinuation: Empty continuation line found: empty continuation lines will become errors in a future release
        "#]],
    );
}

#[test]
fn escaped_escape_is_not_a_continuation() {
    check(
        "FROM a\nRUN echo foo\\\\\nRUN x\n",
        expect![[r#"
            (from "a")
            (run "echo foo\\\\")
            (run "x")
        "#]],
    );
}

#[test]
fn backtick_escape_directive() {
    check(
        "# escape=`\nFROM a\nRUN dir c:\\ `\n  /s\n",
        expect![[r#"
            (from "a")
            (run "dir c:\\   /s")
        "#]],
    );
}

#[test]
fn flags_are_split_off() {
    check(
        "FROM --platform=$BUILDPLATFORM a\nRUN --mount=type=cache,target=/x --network=none -- --not-a-flag\nCOPY --chown=\"a b\" x y\n",
        expect![[r#"
            (from ["--platform=$BUILDPLATFORM"] "a")
            (run ["--mount=type=cache,target=/x" "--network=none"] "--not-a-flag")
            (copy ["--chown=a b"] "x" "y")
        "#]],
    );
}

#[test]
fn onbuild_and_healthcheck() {
    check(
        "FROM a\nONBUILD RUN echo hi\nHEALTHCHECK --interval=5s CMD curl -f x\nHEALTHCHECK NONE\n",
        expect![[r#"
            (from "a")
            (onbuild (run "echo hi"))
            (healthcheck ["--interval=5s"] "CMD" "curl -f x")
            (healthcheck "NONE")
        "#]],
    );
}

#[test]
fn heredocs() {
    let src = "FROM a\nRUN <<EOF\necho hi\nEOF\nCOPY <<-'A' <<B /dst/\n\tone\n\tA\ntwo $x\nB\nRUN [\"<<X\"]\n";
    let (ast, diags) = parse(src);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(ast.children.len(), 4);
    let run = &ast.children[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].content, "echo hi\n");
    assert!(run.heredocs[0].expand);
    let copy = &ast.children[2];
    assert_eq!(copy.heredocs.len(), 2);
    assert_eq!(copy.heredocs[0].name, "A");
    assert!(copy.heredocs[0].chomp);
    assert!(!copy.heredocs[0].expand);
    assert_eq!(copy.heredocs[0].content, "\tone\n");
    assert_eq!(copy.heredocs[1].content, "two $x\n");
    assert!(
        ast.children[3].heredocs.is_empty(),
        "no heredocs in JSON form"
    );
    assert_eq!(lines(src), vec![(1, 1), (2, 4), (5, 9), (10, 10)]);
}

#[test]
fn heredoc_markers() {
    let ok = |w: &str| {
        parse_heredoc_word(w)
            .unwrap()
            .map(|h| (h.name, h.expand, h.chomp))
    };
    assert_eq!(ok("<<EOF"), Some(("EOF".into(), true, false)));
    assert_eq!(ok("<<-EOF"), Some(("EOF".into(), true, true)));
    assert_eq!(ok("<<'EOF'"), Some(("EOF".into(), false, false)));
    assert_eq!(ok("<<E\"O\"F"), Some(("EOF".into(), false, false)));
    assert_eq!(ok("3<<EOF").map(|h| h.0), Some("EOF".into()));
    assert_eq!(ok("<<<EOF"), None);
    assert_eq!(ok("<<"), None);
    assert_eq!(ok("<<-"), None);
    assert!(parse_heredoc_word("<<'EOF").is_err());
}

#[test]
fn unterminated_heredoc_is_an_error() {
    check(
        "FROM a\nRUN <<EOF\necho\n",
        expect![[r#"
            (from "a")
            (run "<<EOF")
            Dockerfile:2: unterminated heredoc "EOF"
        "#]],
    );
}

#[test]
fn errors_name_their_line_and_parsing_goes_on() {
    check(
        "FROM a\nENV PATH\nCMD [\"a\", [\"b\"]]\nRUN ok\n",
        expect![[r#"
            (from "a")
            (run "ok")
            Dockerfile:2: ENV must have two arguments
            Dockerfile:3: when using JSON array syntax, arrays must be comprised of strings only
        "#]],
    );
}

#[test]
fn empty_and_comment_only_files() {
    check(
        "",
        expect![[r#"
        Dockerfile:1: the Dockerfile cannot be empty
    "#]],
    );
    check(
        "# just a comment\n\n",
        expect![[r#"
        Dockerfile:2: file with no instructions
    "#]],
    );
}

#[test]
fn directives_and_comments() {
    let (ast, diags) = parse(
        "# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=\\\n# hello\nFROM a AS b\n",
    );
    assert!(diags.is_empty());
    assert_eq!(ast.directives.len(), 3);
    assert_eq!(ast.children[0].prev_comment, vec!["hello"]);
    let (_, diags) = parse("# escape=`\n# escape=\\\nFROM a\n");
    assert_eq!(
        diags[0].headline("Dockerfile"),
        "Dockerfile:2: only one escape parser directive can be used"
    );
    let (_, diags) = parse("# escape=x\nFROM a\n");
    assert!(diags[0].message.contains("invalid escape token"));
}

#[test]
fn crlf_and_bom() {
    check(
        "\u{feff}FROM a\r\nRUN a \\\r\n b\r\n",
        expect![[r#"
            (from "a")
            (run "a  b")
        "#]],
    );
}

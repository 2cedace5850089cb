//! Lowering tests: the graph, digests, stages and diagnostics a Dockerfile lowers to.

use super::*;
use strata_solver::graph::NetworkMode;

fn opts() -> BuildOptions {
    BuildOptions {
        build_platform: Platform::new("linux", "amd64", None),
        ..BuildOptions::default()
    }
}

fn lower_ok(src: &str, o: &BuildOptions) -> Lowered {
    let (l, diags) = lower(src, o, &NoResolver);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    l.expect("lowered")
}

fn errors(src: &str, o: &BuildOptions) -> Vec<String> {
    let (_, diags) = lower(src, o, &NoResolver);
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.headline("Dockerfile"))
        .collect()
}

fn warnings(src: &str) -> Vec<String> {
    let (_, diags) = lower(src, &opts(), &NoResolver);
    diags
        .iter()
        .filter(|d| !d.is_error())
        .map(|d| d.headline("Dockerfile"))
        .collect()
}

fn exec_ops(l: &Lowered) -> Vec<&ExecOp> {
    l.graph
        .ops()
        .filter_map(|(_, op)| match &op.kind {
            OpKind::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn only_the_target_and_its_dependencies_are_in_the_graph() {
    let src = "FROM busybox AS a\nRUN echo a\nFROM busybox AS unused\nRUN exit 1\nFROM busybox AS b\nCOPY --from=a /x /y\nRUN echo b\n";
    let l = lower_ok(src, &opts());
    let cmds: Vec<String> = exec_ops(&l).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(cmds, vec!["echo a", "echo b"]);
    assert!(l.stages[0].needed && !l.stages[1].needed && l.stages[2].needed);
    // --target picks the stage.
    let mut o = opts();
    o.target = Some("UNUSED".into());
    let l = lower_ok(src, &o);
    let cmds: Vec<String> = exec_ops(&l).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(cmds, vec!["exit 1"]);
}

#[test]
fn independent_stages_are_independent_subgraphs() {
    let src = "FROM busybox AS a\nRUN sleep 1\nFROM busybox AS b\nRUN sleep 1 && echo b\nFROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    let l = lower_ok(src, &opts());
    let runs: Vec<OpId> = l
        .graph
        .ops()
        .filter(|(_, op)| matches!(op.kind, OpKind::Exec(_)))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(runs.len(), 2);
    assert!(!l.graph.ancestors(runs[1]).contains(&runs[0]));
    assert!(!l.graph.ancestors(runs[0]).contains(&runs[1]));
}

#[test]
fn global_args_and_stage_scoping() {
    let src = "ARG BASE=busybox\nARG V=1\nFROM ${BASE}:latest\nRUN echo $V\nARG V\nRUN echo $V\n";
    let l = lower_ok(src, &opts());
    let e = exec_ops(&l);
    assert!(
        !e[0].env.iter().any(|x| x.starts_with("V=")),
        "global ARG not visible before redeclaration"
    );
    assert!(e[1].env.contains(&"V=1".to_string()));
    let mut o = opts();
    o.build_args.insert("V".into(), "2".into());
    let l = lower_ok(src, &o);
    assert!(exec_ops(&l)[1].env.contains(&"V=2".to_string()));
    match &l.graph.op(OpId(0)).kind {
        OpKind::Source(SourceOp::Image { reference, .. }) => {
            assert_eq!(reference, "docker.io/library/busybox:latest")
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn env_wins_over_arg_and_arg_after_env_overrides() {
    let src = "FROM busybox\nARG X=arg\nENV X=env\nRUN a\nENV Y=env\nARG Y=arg\nRUN b\n";
    let l = lower_ok(src, &opts());
    let e = exec_ops(&l);
    assert!(e[0].env.contains(&"X=env".to_string()));
    assert!(e[1].env.contains(&"Y=arg".to_string()));
    assert_eq!(
        l.config.env,
        vec![
            format!("PATH={DEFAULT_PATH}"),
            "X=env".into(),
            "Y=env".into()
        ]
    );
}

#[test]
fn env_on_one_line_sees_values_from_before() {
    let src = "FROM busybox\nENV a=1\nENV a=2 b=$a\n";
    let l = lower_ok(src, &opts());
    assert!(l.config.env.contains(&"b=1".to_string()));
}

#[test]
fn automatic_platform_args() {
    let src = "FROM --platform=$BUILDPLATFORM busybox AS b\nARG TARGETARCH\nRUN echo $TARGETARCH\n";
    let mut o = opts();
    o.platform = Some(Platform::parse("linux/arm64").unwrap());
    let l = lower_ok(src, &o);
    assert!(
        exec_ops(&l)[0]
            .env
            .contains(&"TARGETARCH=arm64".to_string())
    );
    assert_eq!(l.platform.to_string(), "linux/arm64");
}

#[test]
fn stage_inherits_from_stage() {
    let src =
        "FROM busybox AS base\nARG A=1\nENV E=2\nWORKDIR /app\nUSER app\nFROM base\nRUN pwd\n";
    let l = lower_ok(src, &opts());
    let e = exec_ops(&l);
    assert_eq!(e[0].cwd, "/app");
    assert_eq!(e[0].user, "app");
    assert!(e[0].env.contains(&"A=1".to_string()));
    assert!(e[0].env.contains(&"E=2".to_string()));
}

#[test]
fn metadata_config() {
    let src = "FROM busybox\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\nEXPOSE 80 53/udp 8000-8001\nVOLUME /data\nLABEL k=v\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s CMD true\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\nONBUILD RUN x\nUSER 1000:1000\nWORKDIR rel\n";
    let l = lower_ok(src, &opts());
    let c = &l.config;
    assert_eq!(c.entrypoint, Some(vec!["e".to_string()]));
    assert_eq!(
        c.cmd,
        Some(vec!["/bin/bash".to_string(), "-c".into(), "echo hi".into()])
    );
    let ports: Vec<&String> = c.exposed_ports.keys().collect();
    assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
    assert!(c.volumes.contains_key("/data"));
    assert_eq!(c.labels["k"], "v");
    assert_eq!(c.stop_signal, "SIGINT");
    assert_eq!(c.healthcheck.as_ref().unwrap().interval, 5_000_000_000);
    assert_eq!(c.on_build, vec!["RUN x"]);
    assert_eq!(c.user, "1000:1000");
    assert_eq!(c.working_dir, "/rel");
    assert!(c.args_escaped);
    let h: Vec<(&str, bool)> = l
        .history
        .iter()
        .map(|h| (h.created_by.as_str(), h.empty_layer))
        .collect();
    assert_eq!(h.last(), Some(&("WORKDIR /rel", false)));
    assert_eq!(h[0], ("CMD [\"a\"]", true));
}

#[test]
fn entrypoint_resets_inherited_cmd() {
    let src = "FROM busybox AS a\nCMD [\"x\"]\nFROM a\nENTRYPOINT [\"e\"]\n";
    let l = lower_ok(src, &opts());
    assert_eq!(l.config.cmd, None);
    let src = "FROM busybox\nCMD [\"x\"]\nENTRYPOINT [\"e\"]\n";
    assert_eq!(
        lower_ok(src, &opts()).config.cmd,
        Some(vec!["x".to_string()])
    );
}

#[test]
fn run_forms_and_heredocs() {
    let src = "FROM busybox\nRUN [\"echo\", \"$HOME\"]\nRUN <<EOF\necho hi\nEOF\nRUN <<EOF\n#!/bin/sh\necho sh\nEOF\nRUN python3 <<PY\nprint(1)\nPY\n";
    let l = lower_ok(src, &opts());
    let e = exec_ops(&l);
    assert_eq!(e[0].args, vec!["echo", "$HOME"]);
    assert_eq!(e[1].args, vec!["/bin/sh", "-c", "echo hi\n"]);
    assert_eq!(e[2].args, vec!["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(e[2].mounts[0].target, "/dev/pipes/");
    assert_eq!(
        e[3].args,
        vec!["/bin/sh", "-c", "python3 <<PY\nprint(1)\nPY"]
    );
}

#[test]
fn run_mounts() {
    let src = "FROM busybox AS src\nFROM busybox\nARG CACHE=/root/.cache\nRUN --mount=type=cache,target=$CACHE,sharing=locked --mount=type=secret,id=tok --mount=type=bind,from=src,source=/etc,target=/mnt --mount=type=tmpfs,target=/t,size=1m --mount=type=ssh --network=none make\n";
    let l = lower_ok(src, &opts());
    let e = exec_ops(&l)[0];
    assert_eq!(e.network, NetworkMode::None);
    let kinds: Vec<String> = e
        .mounts
        .iter()
        .map(|m| format!("{}:{:?}", m.target, m.kind))
        .collect();
    assert!(
        kinds[0].starts_with("/root/.cache:Cache { id: \"/root/.cache\", sharing: Locked"),
        "{kinds:?}"
    );
    assert!(kinds[1].starts_with("/run/secrets/tok:Secret"), "{kinds:?}");
    assert!(kinds[2].starts_with("/mnt:Bind"), "{kinds:?}");
    assert!(
        kinds[3].starts_with("/t:Tmpfs { size: Some(1048576) }"),
        "{kinds:?}"
    );
    assert!(
        kinds[4].starts_with("/run/buildkit/ssh_agent.0:Ssh"),
        "{kinds:?}"
    );
    assert!(
        e.env
            .contains(&"SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0".to_string())
    );
}

#[test]
fn copy_forms() {
    let src = "FROM busybox\nWORKDIR /app\nCOPY --chown=app:app --chmod=u=rwX a.txt sub/ ./\nCOPY --link x /x\nCOPY <<EOF /etc/motd\nhello $HOME\nEOF\nADD https://example.com/f.tgz /f\nADD https://h/r.git#main:docs /docs\n";
    let l = lower_ok(src, &opts());
    let mut dests = vec![];
    let mut merges = 0;
    for (_, op) in l.graph.ops() {
        match &op.kind {
            OpKind::File { actions, .. } => {
                for a in actions {
                    if let FileAction::Copy { src, dest, .. } = a {
                        dests.push(format!("{src}->{dest}"));
                    }
                }
            }
            OpKind::Merge => merges += 1,
            _ => {}
        }
    }
    assert_eq!(
        dests,
        vec![
            "/a.txt->/app/",
            "/sub->/app/",
            "/x->/x",
            "/EOF->/etc/motd",
            "/f.tgz->/f",
            "/->/docs"
        ]
    );
    assert_eq!(merges, 1);
    let heredoc = l.graph.ops().find_map(|(_, op)| match &op.kind {
        OpKind::File { actions, .. } => actions.iter().find_map(|a| match a {
            FileAction::Mkfile { data, .. } => Some(data.clone()),
            _ => None,
        }),
        _ => None,
    });
    assert_eq!(heredoc.as_deref(), Some("hello \n"));
}

#[test]
fn copy_from_stage_local_arg_names_an_image() {
    // Beyond BuildKit (moby/buildkit#2412): a stage-local ARG in --from.
    let src = "FROM busybox\nARG BUILDER_IMAGE=alpine:3\nCOPY --from=${BUILDER_IMAGE} /bin/sh /sh\nRUN --mount=from=$BUILDER_IMAGE,target=/m true\n";
    let l = lower_ok(src, &opts());
    let refs: Vec<String> = l
        .graph
        .ops()
        .filter_map(|(_, op)| match &op.kind {
            OpKind::Source(SourceOp::Image { reference, .. }) => Some(reference.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        refs,
        vec![
            "docker.io/library/busybox:latest",
            "docker.io/library/alpine:3"
        ]
    );
}

#[test]
fn lowering_errors_name_their_line() {
    let o = opts();
    assert_eq!(
        errors("RUN x\nFROM a\n", &o),
        vec!["Dockerfile:1: no build stage in current context: RUN must come after a FROM"]
    );
    let mut first = opts();
    first.target = Some("first".into());
    let e = errors("FROM a AS first\nCOPY --from=b x y\nFROM a AS b\n", &first);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("needs to be defined before current stage"));
    assert!(errors("ARG X\nFROM $X\n", &o)[0].contains("base name (FROM) should not be blank"));
    assert!(errors("FROM a\nCOPY a b c\n", &o)[0].contains("must be a directory and end with a /"));
    assert!(
        errors("FROM a\nCOPY https://x/y /z\n", &o)[0].contains("source can't be a URL for COPY")
    );
    assert!(errors("FROM a\nCOPY --chmod=999 a /b\n", &o)[0].contains("invalid chmod parameter"));
    assert!(errors("FROM a\nEXPOSE 80/icmp\n", &o)[0].contains("invalid proto"));
    assert!(errors("FROM a\nSTOPSIGNAL SIGNOPE\n", &o)[0].contains("invalid signal"));
    assert!(errors("FROM Alpine\n", &o)[0].contains("must be lowercase"));
    let mut t = opts();
    t.target = Some("nope".into());
    assert!(
        errors("FROM a AS nop\n", &t)[0]
            .contains("target stage \"nope\" could not be found (did you mean nop?)")
    );
}

#[test]
fn digests_are_stable_and_local() {
    let a = lower_ok("FROM busybox\nRUN one\nRUN two\nRUN three\n", &opts());
    let b = lower_ok("FROM busybox\nRUN one\nRUN TWO\nRUN three\n", &opts());
    let da: Vec<_> = a
        .graph
        .ops()
        .map(|(id, _)| a.graph.digest(id).clone())
        .collect();
    let db: Vec<_> = b
        .graph
        .ops()
        .map(|(id, _)| b.graph.digest(id).clone())
        .collect();
    assert_eq!(da[0], db[0]);
    assert_eq!(da[1], db[1]);
    assert_ne!(da[2], db[2]);
    assert_ne!(da[3], db[3]);
    // Same input, same digests, every time.
    let c = lower_ok("FROM busybox\nRUN one\nRUN two\nRUN three\n", &opts());
    assert_eq!(a.graph.digest(a.target), c.graph.digest(c.target));
    // Changing a later COPY's source does not move an earlier COPY's digest.
    let x = lower_ok("FROM busybox\nCOPY a /a\nCOPY b /b\n", &opts());
    let y = lower_ok("FROM busybox\nCOPY a /a\nCOPY c /c\n", &opts());
    let first_copy = |l: &Lowered| {
        l.graph
            .ops()
            .find(|(_, op)| matches!(op.kind, OpKind::File { .. }))
            .map(|(id, _)| l.graph.digest(id).clone())
    };
    assert_eq!(first_copy(&x), first_copy(&y));
}

#[test]
fn build_arg_change_misses_runs_after_the_arg() {
    let src = "FROM busybox\nRUN before\nARG V\nRUN after\n";
    let mut o1 = opts();
    o1.build_args.insert("V".into(), "1".into());
    let mut o2 = opts();
    o2.build_args.insert("V".into(), "2".into());
    let a = lower_ok(src, &o1);
    let b = lower_ok(src, &o2);
    let ids: Vec<OpId> = a.graph.ops().map(|(id, _)| id).collect();
    assert_eq!(a.graph.digest(ids[1]), b.graph.digest(ids[1]));
    assert_ne!(a.graph.digest(ids[2]), b.graph.digest(ids[2]));
}

#[test]
fn lint_rules_fire() {
    let w = warnings(
        "FROM busybox as Build\nMAINTAINER me\nENV PASSWORD=x\nENV legacy value\nCMD echo\nCMD echo\nLABEL x=$NOPE\nWORKDIR rel\nEXPOSE 80/TCP\nfrom build AS dup\nFROM build AS dup\n",
    );
    let rules: BTreeSet<&str> = w.iter().filter_map(|s| s.split(": ").nth(1)).collect();
    for r in [
        "StageNameCasing",
        "FromAsCasing",
        "MaintainerDeprecated",
        "SecretsUsedInArgOrEnv",
        "LegacyKeyValueFormat",
        "JSONArgsRecommended",
        "MultipleInstructionsDisallowed",
        "UndefinedVar",
        "WorkdirRelativePath",
        "ExposeProtoCasing",
        "ConsistentInstructionCasing",
        "DuplicateStageName",
    ] {
        assert!(rules.contains(r), "{r} missing from {w:#?}");
    }
}

#[test]
fn check_directive_skips_and_errors() {
    let (_, d) = lower(
        "# check=skip=MaintainerDeprecated\nFROM a\nMAINTAINER x\n",
        &opts(),
        &NoResolver,
    );
    assert!(d.is_empty(), "{d:?}");
    let (l, d) = lower(
        "# check=error=true\nFROM a\nMAINTAINER x\n",
        &opts(),
        &NoResolver,
    );
    assert!(l.is_none());
    assert!(d[0].is_error());
    let (_, d) = lower(
        "FROM a\n# check=skip=MaintainerDeprecated\nMAINTAINER x\n",
        &opts(),
        &NoResolver,
    );
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn undefined_arg_in_from() {
    let w = warnings("FROM $NOPE AS x\nFROM busybox\n");
    assert!(w.iter().any(|w| w.contains("UndefinedArgInFrom")), "{w:?}");
}

#[test]
fn onbuild_triggers_of_a_stage_base_fire() {
    let src = "FROM busybox AS base\nONBUILD RUN echo trigger\nFROM base\nRUN echo after\n";
    let l = lower_ok(src, &opts());
    let cmds: Vec<String> = exec_ops(&l).iter().map(|e| e.args[2].clone()).collect();
    assert_eq!(cmds, vec!["echo trigger", "echo after"]);
    assert!(l.config.on_build.is_empty());
}

struct FakeResolver;
impl ImageResolver for FakeResolver {
    fn resolve(&self, r: &str, _: &Platform) -> Result<Option<ResolvedImage>, ResolveError> {
        if r.contains("onbuild") {
            let config = ImageConfig {
                env: vec!["PATH=/custom".into(), "LANG=C".into()],
                on_build: vec!["RUN echo from-base".into()],
                working_dir: "/w".into(),
                ..ImageConfig::default()
            };
            return Ok(Some(ResolvedImage {
                config,
                ..ResolvedImage::default()
            }));
        }
        Err(ResolveError::new(format!("{r} not found")))
    }
}

#[test]
fn base_image_config_and_triggers() {
    let (l, d) = lower("FROM example/onbuild\nRUN pwd\n", &opts(), &FakeResolver);
    assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
    let l = l.unwrap();
    let e = exec_ops(&l);
    assert_eq!(e[0].args[2], "echo from-base");
    assert_eq!(e[1].cwd, "/w");
    assert_eq!(l.config.env, vec!["PATH=/custom", "LANG=C"]);
    let (_, d) = lower("FROM missing\n", &opts(), &FakeResolver);
    assert!(
        d[0].message
            .contains("failed to resolve image docker.io/library/missing:latest")
    );
}

#[test]
fn unused_build_args_warn() {
    let mut o = opts();
    o.build_args.insert("NOPE".into(), "1".into());
    let (_, d) = lower("FROM busybox\n", &o, &NoResolver);
    assert!(
        d.iter()
            .any(|d| d.message.contains("\"NOPE\" was given but no stage"))
    );
}

#[test]
fn no_cache_filter_marks_stage_ops() {
    let mut o = opts();
    o.no_cache_filter = vec!["B".into()];
    let l = lower_ok("FROM busybox AS a\nRUN a\nFROM a AS b\nRUN b\n", &o);
    let flags: Vec<bool> = exec_ops_with_flags(&l);
    assert_eq!(flags, vec![false, true]);
}

fn exec_ops_with_flags(l: &Lowered) -> Vec<bool> {
    l.graph
        .ops()
        .filter(|(_, op)| matches!(op.kind, OpKind::Exec(_)))
        .map(|(_, op)| op.ignore_cache)
        .collect()
}

#[test]
fn syntax_directive_warns_only_for_other_frontends() {
    let (_, d) = lower(
        "# syntax=docker/dockerfile:1.7\nFROM a\n",
        &opts(),
        &NoResolver,
    );
    assert!(d.is_empty(), "{d:?}");
    let (_, d) = lower(
        "# syntax=example.com/custom/frontend:2\nFROM a\n",
        &opts(),
        &NoResolver,
    );
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("built-in Dockerfile frontend"));
    assert!(!d[0].is_error());
}

#[test]
fn an_invalid_exclude_pattern_is_an_error_at_its_line() {
    let e = errors("FROM scratch\nCOPY --exclude=[ . /\n", &opts());
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("invalid --exclude pattern"), "{e:?}");
    assert!(errors("FROM scratch\nCOPY --exclude=*.log . /\n", &opts()).is_empty());
}

#[test]
fn steps_of_a_build_for_several_platforms_name_their_platform() {
    let o = BuildOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        platform_prefix: true,
        ..opts()
    };
    let src = "FROM --platform=$BUILDPLATFORM busybox AS build\nRUN echo cross\nFROM busybox\nCOPY --from=build /x /x\nRUN echo native\n";
    let l = lower_ok(src, &o);
    let names: Vec<String> = l.graph.ops().map(|(_, op)| op.name.clone()).collect();
    assert!(
        names
            .iter()
            .any(|n| n == "[linux/amd64->arm64 build 2/2] RUN echo cross"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n == "[linux/arm64 stage-1 3/3] RUN echo native"),
        "{names:?}"
    );
}

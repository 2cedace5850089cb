//! The image config and history each way of starting a stage and each metadata instruction
//! produce, compared with what BuildKit's `dockerfile2llb` writes.

use super::metadata::go_duration;
use super::*;

fn opts() -> BuildOptions {
    BuildOptions {
        build_platform: Platform::new("linux", "amd64", None),
        ..BuildOptions::default()
    }
}

fn on(platform: &str) -> BuildOptions {
    BuildOptions {
        platform: Some(Platform::parse(platform).unwrap()),
        ..opts()
    }
}

/// Knows `base/full` (every config field set), `base/nopath` (an Env without PATH) and
/// `base/arm` (an arm64 image).
struct Images;
impl ImageResolver for Images {
    fn resolve(&self, r: &str, _: &Platform) -> Result<Option<ResolvedImage>, ResolveError> {
        let image = |config, os: &str, arch: &str| ResolvedImage {
            config,
            history: vec![HistoryEntry {
                created_by: "base step".into(),
                ..HistoryEntry::default()
            }],
            author: if r.contains("base/full") {
                "Base Author".to_string()
            } else {
                String::new()
            },
            digest: None,
            platform: Some(Platform::new(os, arch, None)),
        };
        if r.contains("base/full") {
            let config = ImageConfig {
                user: "u".into(),
                exposed_ports: [("1/tcp".to_string(), Empty {})].into(),
                env: vec!["PATH=/p".into(), "A=1".into()],
                entrypoint: Some(vec!["/e".into()]),
                cmd: Some(vec!["c".into()]),
                volumes: [("/v".to_string(), Empty {})].into(),
                working_dir: "/w".into(),
                labels: [("l".to_string(), "1".to_string())].into(),
                stop_signal: "SIGQUIT".into(),
                healthcheck: Some(HealthConfig {
                    test: vec!["CMD".into(), "true".into()],
                    retries: 2,
                    ..HealthConfig::default()
                }),
                shell: Some(vec!["/bin/bash".into(), "-c".into()]),
                on_build: vec!["CMD [\"from-trigger\"]".into()],
                args_escaped: true,
                extra: Default::default(),
            };
            return Ok(Some(image(config, "linux", "amd64")));
        }
        if r.contains("base/nopath") {
            let config = ImageConfig {
                env: vec!["A=1".into()],
                ..ImageConfig::default()
            };
            return Ok(Some(image(config, "linux", "amd64")));
        }
        if r.contains("base/arm") {
            return Ok(Some(image(ImageConfig::default(), "linux", "arm64")));
        }
        Ok(None)
    }
}

fn lower_with(src: &str, o: &BuildOptions) -> Lowered {
    let (l, diags) = lower(src, o, &Images);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    l.expect("lowered")
}

fn history(l: &Lowered) -> Vec<(String, bool)> {
    l.history
        .iter()
        .map(|h| {
            if h.created_by != "base step" {
                assert_eq!(h.comment, HISTORY_COMMENT);
            }
            (h.created_by.clone(), h.empty_layer)
        })
        .collect()
}

fn default_path() -> String {
    format!("PATH={DEFAULT_PATH}")
}

#[test]
fn from_scratch_is_buildkits_empty_image() {
    let l = lower_with("FROM scratch\n", &opts());
    let expected = ImageConfig {
        env: vec![default_path()],
        working_dir: "/".into(),
        ..ImageConfig::default()
    };
    assert_eq!(l.config, expected);
    assert!(l.history.is_empty());
    assert_eq!(l.author, "");
    assert_eq!(l.platform, Platform::new("linux", "amd64", None));
}

#[test]
fn from_scratch_for_windows_sets_no_path() {
    let l = lower_with("FROM scratch\n", &on("windows/amd64"));
    assert!(l.config.env.is_empty());
    assert_eq!(l.config.working_dir, "/");
    assert_eq!(l.platform.os, "windows");
}

#[test]
fn from_scratch_records_the_target_platform_even_with_from_platform() {
    let l = lower_with("FROM --platform=linux/arm64 scratch\n", &opts());
    assert_eq!(l.platform, Platform::new("linux", "amd64", None));
}

#[test]
fn from_image_without_path_gets_the_default_path_appended() {
    let l = lower_with("FROM base/nopath\n", &opts());
    assert_eq!(l.config.env, vec!["A=1".to_string(), default_path()]);
    assert_eq!(l.config.working_dir, "");
}

#[test]
fn from_windows_image_without_path_gets_no_path() {
    let l = lower_with("FROM base/nopath\n", &on("windows/amd64"));
    assert_eq!(l.config.env, vec!["A=1".to_string()]);
}

#[test]
fn from_image_keeps_every_config_field_and_clears_onbuild_after_running_it() {
    let l = lower_with("FROM base/full\n", &opts());
    let base = Images
        .resolve("base/full", &Platform::host())
        .unwrap()
        .unwrap();
    let mut expected = base.config.clone();
    expected.on_build.clear();
    expected.cmd = Some(vec!["from-trigger".into()]);
    assert_eq!(l.config, expected);
    assert_eq!(
        history(&l),
        vec![
            ("base step".to_string(), false),
            ("CMD [\"from-trigger\"]".to_string(), true)
        ]
    );
}

#[test]
fn from_image_merges_labels_ports_and_volumes() {
    let l = lower_with("FROM base/full\nLABEL m=2\nEXPOSE 2\nVOLUME /x\n", &opts());
    let keys = |m: &BTreeMap<String, Empty>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(l.config.labels.len(), 2);
    assert_eq!(keys(&l.config.exposed_ports), vec!["1/tcp", "2/tcp"]);
    assert_eq!(keys(&l.config.volumes), vec!["/v", "/x"]);
}

#[test]
fn from_image_records_the_image_platform_unless_a_platform_is_requested() {
    assert_eq!(
        lower_with("FROM base/arm\n", &opts()).platform,
        Platform::new("linux", "arm64", None)
    );
    assert_eq!(
        lower_with("FROM base/arm\n", &on("linux/arm/v7")).platform,
        Platform::new("linux", "arm", Some("v7"))
    );
    let l = lower_with(
        "FROM --platform=$BUILDPLATFORM base/nopath\n",
        &on("linux/arm64"),
    );
    assert_eq!(l.platform, Platform::new("linux", "arm64", None));
}

#[test]
fn from_stage_inherits_config_history_and_platform() {
    let src = "FROM --platform=linux/arm64 base/nopath AS a\nENV B=2\nUSER x\nFROM a\n";
    let l = lower_with(src, &opts());
    assert_eq!(
        l.config.env,
        vec!["A=1".to_string(), default_path(), "B=2".into()]
    );
    assert_eq!(l.config.user, "x");
    assert_eq!(l.platform, Platform::new("linux", "amd64", None));
    assert_eq!(
        history(&l),
        vec![
            ("base step".to_string(), false),
            ("ENV B=2".to_string(), true),
            ("USER x".to_string(), true)
        ]
    );
    let l = lower_with(
        "FROM --platform=linux/arm64 scratch AS a\nFROM a\n",
        &opts(),
    );
    assert_eq!(l.platform.architecture, "amd64");
}

#[test]
fn from_stage_runs_the_stage_onbuild_triggers_and_clears_them() {
    let src = "FROM scratch AS a\nONBUILD LABEL t=1\nFROM a\n";
    let l = lower_with(src, &opts());
    assert!(l.config.on_build.is_empty());
    assert_eq!(l.config.labels["t"], "1");
    assert_eq!(history(&l), vec![("LABEL t=1".to_string(), true)]);
}

#[test]
fn onbuild_is_stored_without_a_history_entry() {
    let l = lower_with("FROM scratch\nONBUILD RUN x\nONBUILD COPY a /b\n", &opts());
    assert_eq!(l.config.on_build, vec!["RUN x", "COPY a /b"]);
    assert!(l.history.is_empty());
}

#[test]
fn entrypoint_keeps_a_cmd_set_by_a_trigger_of_the_same_stage() {
    let l = lower_with("FROM base/full\nENTRYPOINT [\"/n\"]\n", &opts());
    assert_eq!(l.config.cmd, Some(vec!["from-trigger".to_string()]));
    let l = lower_with(
        "FROM scratch AS a\nCMD [\"c\"]\nFROM a\nENTRYPOINT [\"/n\"]\n",
        &opts(),
    );
    assert_eq!(l.config.cmd, None);
}

#[test]
fn empty_cmd_and_entrypoint_are_left_out() {
    let l = lower_with("FROM base/full\nENTRYPOINT []\nCMD []\n", &opts());
    assert_eq!(l.config.entrypoint, None);
    assert_eq!(l.config.cmd, None);
    let j = serde_json::to_value(&l.config).unwrap();
    assert!(j.get("Cmd").is_none() && j.get("Entrypoint").is_none());
}

#[test]
fn from_image_keeps_its_author_until_maintainer() {
    assert_eq!(
        lower_with("FROM base/full\n", &opts()).author,
        "Base Author"
    );
    let l = lower_with("FROM base/full\nMAINTAINER me\n", &opts());
    assert_eq!(l.author, "me");
    let l = lower_with("FROM base/full AS a\nFROM a\n", &opts());
    assert_eq!(l.author, "Base Author");
}

#[test]
fn maintainer_sets_the_author() {
    let l = lower_with("FROM scratch\nMAINTAINER Jane <j@example.com>\n", &opts());
    assert_eq!(l.author, "Jane <j@example.com>");
    assert!(l.config.labels.is_empty());
}

#[test]
fn cmd_sets_args_escaped_and_entrypoint_does_not() {
    assert!(
        lower_with("FROM scratch\nCMD [\"a\"]\n", &opts())
            .config
            .args_escaped
    );
    assert!(
        !lower_with("FROM scratch\nENTRYPOINT [\"a\"]\n", &opts())
            .config
            .args_escaped
    );
}

#[test]
fn windows_shell_forms_use_cmd() {
    let l = lower_with("FROM scratch\nCMD echo hi\n", &on("windows/amd64"));
    assert_eq!(
        l.config.cmd,
        Some(vec![
            "cmd".into(),
            "/S".into(),
            "/C".into(),
            "echo hi".into()
        ])
    );
}

#[test]
fn workdir_is_relative_to_the_current_one() {
    let l = lower_with("FROM scratch\nWORKDIR a\nWORKDIR b/../c\n", &opts());
    assert_eq!(l.config.working_dir, "/a/c");
    let l = lower_with("FROM base/full\nWORKDIR a\n", &opts());
    assert_eq!(l.config.working_dir, "/w/a");
}

#[test]
fn history_entry_per_instruction() {
    let cases: &[(&str, &str, bool)] = &[
        ("ENV A=b C=d", "ENV A=b C=d", true),
        ("ARG X=1", "ARG X=1", true),
        ("ARG Y", "ARG Y", true),
        ("LABEL a=b c=d", "LABEL a=b c=d", true),
        (
            "EXPOSE 80 53/udp 8000-8001/TCP",
            "EXPOSE [53/udp 80/tcp 8000/tcp 8001/tcp]",
            true,
        ),
        ("VOLUME /a /b", "VOLUME [/a /b]", true),
        ("VOLUME [\"/c\"]", "VOLUME [/c]", true),
        ("WORKDIR /x", "WORKDIR /x", false),
        ("WORKDIR /", "WORKDIR /", true),
        ("USER app:grp", "USER app:grp", true),
        ("CMD echo hi", "CMD [\"/bin/sh\" \"-c\" \"echo hi\"]", true),
        ("CMD [\"a\", \"b c\"]", "CMD [\"a\" \"b c\"]", true),
        ("ENTRYPOINT [\"e\"]", "ENTRYPOINT [\"e\"]", true),
        ("ENTRYPOINT []", "ENTRYPOINT []", true),
        (
            "HEALTHCHECK --interval=90s --timeout=1500ms --retries=3 CMD curl x",
            "HEALTHCHECK {Test:[CMD-SHELL curl x] Interval:1m30s Timeout:1.5s StartPeriod:0s StartInterval:0s Retries:3}",
            true,
        ),
        (
            "HEALTHCHECK NONE",
            "HEALTHCHECK {Test:[NONE] Interval:0s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}",
            true,
        ),
        (
            "SHELL [\"/bin/bash\", \"-c\"]",
            "SHELL [/bin/bash -c]",
            true,
        ),
        ("STOPSIGNAL SIGINT", "STOPSIGNAL SIGINT", true),
        ("MAINTAINER me", "MAINTAINER me", true),
        ("RUN echo hi", "RUN /bin/sh -c echo hi # buildkit", false),
        ("RUN [\"a\", \"b\"]", "RUN a b # buildkit", false),
        ("COPY a /b", "COPY a /b # buildkit", false),
        (
            "COPY --chown=1:2 --chmod=644 a b /d/",
            "COPY --chown=1:2 --chmod=644 a b /d/ # buildkit",
            false,
        ),
        ("ADD a /b", "ADD a /b # buildkit", false),
    ];
    for (ins, created_by, empty) in cases {
        let l = lower_with(&format!("FROM scratch\n{ins}\n"), &opts());
        assert_eq!(
            history(&l),
            vec![(created_by.to_string(), *empty)],
            "history of {ins}"
        );
    }
}

#[test]
fn run_history_carries_the_build_args_in_scope() {
    let l = lower_with("FROM scratch\nARG A=1\nENV B=2\nARG B\nRUN x\n", &opts());
    assert_eq!(
        history(&l).last().unwrap().0,
        "RUN |2 A=1 B=2 /bin/sh -c x # buildkit"
    );
}

#[test]
fn heredoc_with_shebang_runs_through_the_shell() {
    let l = lower_with(
        "FROM scratch\nRUN <<EOF\n#!/bin/sh\necho sh\nEOF\n",
        &opts(),
    );
    assert_eq!(
        history(&l),
        vec![(
            "RUN /bin/sh -c /dev/pipes/EOF # buildkit".to_string(),
            false
        )]
    );
}

#[test]
fn go_duration_matches_go() {
    let cases: &[(u64, &str)] = &[
        (0, "0s"),
        (500, "500ns"),
        (1_500, "1.5µs"),
        (5_000_000, "5ms"),
        (1_250_000, "1.25ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_000_000_001, "1h2m3.000000001s"),
    ];
    for (ns, s) in cases {
        assert_eq!(go_duration(*ns), *s, "{ns}");
    }
}

#[test]
fn source_date_epoch_reaches_the_builder_in_the_lowered_result() {
    let mut o = opts();
    o.build_args
        .insert("SOURCE_DATE_EPOCH".into(), "1700000000".into());
    assert_eq!(lower_with("FROM scratch\n", &o).epoch, Some(1_700_000_000));
    o.build_args
        .insert("SOURCE_DATE_EPOCH".into(), String::new());
    assert_eq!(lower_with("FROM scratch\n", &o).epoch, None);
    o.build_args
        .insert("SOURCE_DATE_EPOCH".into(), "yesterday".into());
    let (l, diags) = lower("FROM scratch\n", &o, &NoResolver);
    assert!(l.is_none());
    assert!(
        diags
            .iter()
            .any(|d| d.is_error() && d.message.contains("SOURCE_DATE_EPOCH=\"yesterday\"")),
        "{diags:?}"
    );
}

//! Real tools in the loop: images that buildah, umoci and skopeo made are loaded, built FROM and
//! run, and each tool reads back what strata exports (as root, on a busybox base made offline).

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One test's directory (its busybox tarball, the tools' files) and strata state root.
struct Fx {
    fx: Fixture,
    busybox: PathBuf,
}

deref_to_fixture!(Fx);

impl Fx {
    /// A fresh fixture, or `None` (a skip, outside CI only) when a tool in `tools` is missing
    /// or the end-to-end tests cannot run here.
    fn new(name: &str, tools: &[&str]) -> Option<Fx> {
        for t in tools {
            if Command::new(t).arg("--version").output().is_err() {
                assert!(std::env::var_os("CI").is_none(), "CI installs {t}");
                eprintln!("skipping: {t} is not installed");
                return None;
            }
        }
        let busybox = busybox_tar(&format!("strata-tools-{name}"))?;
        Some(Fx {
            fx: Fixture::at(busybox.parent()?.to_path_buf()),
            busybox,
        })
    }

    /// The same directory with another, empty, state root.
    fn other_root(&self, name: &str) -> Fx {
        Fx {
            fx: self.fx.other_root(name),
            busybox: self.busybox.clone(),
        }
    }

    /// `strata load -i input`: the names (or the ID, for an untagged image) it reports.
    fn load(&self, input: &str) -> Vec<String> {
        self.ok(&["load", "-i", input])
            .lines()
            .filter_map(|l| {
                l.strip_prefix("Loaded image: ")
                    .or_else(|| l.strip_prefix("Loaded image ID: "))
            })
            .map(str::to_string)
            .collect()
    }

    /// `strata inspect`'s record of an image.
    fn inspect(&self, image: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", image])).unwrap();
        v[0].clone()
    }
}

/// Runs a tool, asserts that it succeeded and returns its standard output.
fn tool(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn sha256_hex(p: &Path) -> String {
    tool("sha256sum", &[&p.to_string_lossy()])
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The Dockerfile every test builds on the tool's image: its RUN checks the base's files, env,
/// user and working directory, and the result adds env, a label and a command that prints them.
fn derived(base: &str, want_env: &str, workdir: &str) -> String {
    format!(
        "FROM {base}\n\
         RUN test \"$BASE\" = {want_env} && test -x /bin/busybox && grep -q '^app:' /etc/passwd \
         && test \"$(id -un)\" = app && test \"$(pwd)\" = {workdir} && echo built > mark\n\
         ENV ADDED=strata\n\
         LABEL built.by=strata\n\
         CMD [\"sh\", \"-c\", \"echo $BASE $ADDED $(cat mark) $(pwd) $(id -un)\"]\n"
    )
}

/// The derived image's command, as `strata run` (or another tool) prints it.
fn derived_output(want_env: &str, workdir: &str) -> String {
    format!("{want_env} strata built {workdir} app\n")
}

/// A buildah with all its state under `dir` (vfs storage, no daemon, no host storage).
struct Buildah {
    root: String,
    runroot: String,
}

impl Buildah {
    fn new(fx: &Fx) -> Buildah {
        Buildah {
            root: fx.path("buildah/root"),
            runroot: fx.path("buildah/run"),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec![
            "--storage-driver",
            "vfs",
            "--root",
            &self.root,
            "--runroot",
            &self.runroot,
        ];
        all.extend_from_slice(args);
        tool("buildah", &all)
    }
}

/// Makes a busybox image with buildah (`from scratch`, the rootfs added, env, command, working
/// directory, user and a label configured), committed in `format` (docker or oci) to an
/// archive of that kind; strata loads it, builds FROM it and runs the result; then buildah pulls
/// strata's OCI and docker exports, shows the config strata built and runs a container of it.
fn buildah_round_trip(format: &str) {
    let Some(fx) = Fx::new(&format!("buildah-{format}"), &["buildah"]) else {
        return;
    };
    let b = Buildah::new(&fx);
    let ctr = b.ok(&["from", "--name", "base", "scratch"]);
    assert_eq!(ctr.trim(), "base");
    b.ok(&["add", "base", &fx.busybox.to_string_lossy(), "/"]);
    b.ok(&[
        "config",
        "--env",
        "BASE=buildah",
        "--env",
        "PATH=/usr/bin:/bin",
        "--cmd",
        r#"["sh", "-c", "echo from-base"]"#,
        "--workingdir",
        "/home/app",
        "--user",
        "app",
        "--label",
        "made.by=buildah",
        "base",
    ]);
    let transport = if format == "docker" {
        "docker-archive"
    } else {
        "oci-archive"
    };
    let archive = fx.path(&format!("base-{format}.tar"));
    let name = format!("buildah/base:{format}");
    b.ok(&[
        "commit",
        "-q",
        "--format",
        format,
        "base",
        &format!("{transport}:{archive}:{name}"),
    ]);

    assert_eq!(fx.load(&archive), std::slice::from_ref(&name));
    let base = fx.inspect(&name);
    assert_eq!(base["Config"]["Env"][0], "BASE=buildah");
    assert_eq!(base["Config"]["Labels"]["made.by"], "buildah");
    assert_eq!(fx.ok(&["run", &name]), "from-base\n");

    let ctx = fx.context("derived", &derived(&name, "buildah", "/home/app"));
    let (oci, docker) = (fx.path("out-oci.tar"), fx.path("out-docker.tar"));
    let id = fx.ok(&[
        "build",
        "-q",
        "-t",
        "derived:v1",
        "-o",
        "type=image",
        "-o",
        &format!("type=oci,dest={oci}"),
        "-o",
        &format!("type=docker,dest={docker}"),
        &ctx,
    ]);
    let id = id.trim().to_string();
    assert_eq!(
        fx.ok(&["run", "derived:v1"]),
        derived_output("buildah", "/home/app")
    );

    for src in [
        format!("oci-archive:{oci}"),
        format!("docker-archive:{docker}"),
    ] {
        // buildah stores the config as strata wrote it: the same image ID.
        let pulled = b.ok(&["pull", "-q", &src]);
        let pulled = pulled.lines().last().unwrap_or_default().trim().to_string();
        assert_eq!(format!("sha256:{pulled}"), id, "{src}");
        let v = json(&b.ok(&["inspect", "--type", "image", &pulled]));
        for config in [&v["OCIv1"]["config"], &v["Docker"]["config"]] {
            let env: Vec<&str> = config["Env"]
                .as_array()
                .unwrap_or_else(|| panic!("{src}: no Env in {config}"))
                .iter()
                .filter_map(|e| e.as_str())
                .collect();
            assert!(env.contains(&"BASE=buildah"), "{src}: {env:?}");
            assert!(env.contains(&"ADDED=strata"), "{src}: {env:?}");
            assert_eq!(
                config["Cmd"],
                serde_json::json!(["sh", "-c", "echo $BASE $ADDED $(cat mark) $(pwd) $(id -un)"]),
                "{src}"
            );
            assert_eq!(config["Labels"]["made.by"], "buildah", "{src}");
            assert_eq!(config["Labels"]["built.by"], "strata", "{src}");
            assert_eq!(config["User"], "app", "{src}");
            assert_eq!(config["WorkingDir"], "/home/app", "{src}");
        }
        // And its layers: a container of it sees the file the RUN step made.
        let ctr = b.ok(&["from", &pulled]);
        let ctr = ctr.lines().last().unwrap_or_default().trim().to_string();
        let out = b.ok(&[
            "run",
            "--isolation",
            "chroot",
            &ctr,
            "--",
            "sh",
            "-c",
            "echo $BASE $ADDED $(cat mark) $(pwd) $(id -un)",
        ]);
        assert_eq!(out, derived_output("buildah", "/home/app"), "{src}");
        b.ok(&["rm", &ctr]);
    }
}

#[test]
fn a_buildah_docker_format_image_is_a_base_and_buildah_reads_the_exports() {
    buildah_round_trip("docker");
}

#[test]
fn a_buildah_oci_format_image_is_a_base_and_buildah_reads_the_exports() {
    buildah_round_trip("oci");
}

/// An image umoci made (`init`, `new`, the busybox rootfs unpacked into its bundle, `repack`,
/// `config`) loads as an OCI layout directory and as a tar of one, is built FROM and run; and
/// umoci unpacks strata's OCI exports (a layout directory and the tar's contents) into bundles
/// whose config.json carries the config strata built.
#[test]
fn a_umoci_image_is_a_base_and_umoci_unpacks_the_exports() {
    let Some(fx) = Fx::new("umoci", &["umoci"]) else {
        return;
    };
    let layout = fx.path("umoci-layout");
    let image = format!("{layout}:base");
    let bundle = fx.path("umoci-bundle");
    tool("umoci", &["init", "--layout", &layout]);
    tool("umoci", &["new", "--image", &image]);
    tool("umoci", &["unpack", "--image", &image, &bundle]);
    tool(
        "tar",
        &[
            "-xf",
            &fx.busybox.to_string_lossy(),
            "-C",
            &format!("{bundle}/rootfs"),
        ],
    );
    tool("umoci", &["repack", "--image", &image, &bundle]);
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.env",
            "BASE=umoci",
            "--config.env",
            "PATH=/bin",
            "--config.cmd",
            "sh",
            "--config.cmd",
            "-c",
            "--config.cmd",
            "echo from-umoci",
            "--config.workingdir",
            "/home/app",
            "--config.user",
            "app",
            "--config.label",
            "made.by=umoci",
        ],
    );
    // The config umoci wrote: what the load must call the image.
    let index = json(&std::fs::read_to_string(format!("{layout}/index.json")).unwrap());
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = json(
        &std::fs::read_to_string(format!(
            "{layout}/blobs/sha256/{}",
            manifest.trim_start_matches("sha256:")
        ))
        .unwrap(),
    );
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layout_tar = fx.path("umoci-layout.tar");
    tool("tar", &["-C", &layout, "-cf", &layout_tar, "."]);

    // As a directory in one state root, as a tar in another: both the same image, usable.
    let tar_fx = fx.other_root("root-tar");
    for (f, input) in [(&fx, &layout), (&tar_fx, &layout_tar)] {
        // The ref name `base` is a tag without a name, so the image comes in untagged.
        assert_eq!(
            f.load(input),
            std::slice::from_ref(&config_digest),
            "{input}"
        );
        f.ok(&["tag", &config_digest, "umoci/base:v1"]);
        assert_eq!(f.ok(&["run", "umoci/base:v1"]), "from-umoci\n", "{input}");
        let ctx = f.context("derived", &derived("umoci/base:v1", "umoci", "/home/app"));
        f.ok(&["build", "-q", "-t", "umoci/derived:v1", &ctx]);
        assert_eq!(
            f.ok(&["run", "umoci/derived:v1"]),
            derived_output("umoci", "/home/app"),
            "{input}"
        );
    }

    // umoci reads strata's exports: a layout directory, and the layout in the tar export.
    let (out_dir, out_tar, out_untar) = (
        fx.path("out-layout"),
        fx.path("out.tar"),
        fx.path("out-untar"),
    );
    let ctx = fx.context("derived", &derived("umoci/base:v1", "umoci", "/home/app"));
    fx.ok(&[
        "build",
        "-q",
        "-t",
        "umoci/derived:v1",
        "-o",
        &format!("type=oci,dest={out_dir},tar=false"),
        "-o",
        &format!("type=oci,dest={out_tar}"),
        &ctx,
    ]);
    std::fs::create_dir_all(&out_untar).unwrap();
    tool("tar", &["-xf", &out_tar, "-C", &out_untar]);
    for dir in [&out_dir, &out_untar] {
        let bundle = format!("{dir}-bundle");
        tool(
            "umoci",
            &["unpack", "--image", &format!("{dir}:v1"), &bundle],
        );
        let config = json(&std::fs::read_to_string(format!("{bundle}/config.json")).unwrap());
        let process = &config["process"];
        assert_eq!(
            process["args"],
            serde_json::json!(["sh", "-c", "echo $BASE $ADDED $(cat mark) $(pwd) $(id -un)"]),
            "{dir}"
        );
        let env: Vec<&str> = process["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_str())
            .collect();
        assert!(env.contains(&"BASE=umoci"), "{dir}: {env:?}");
        assert!(env.contains(&"ADDED=strata"), "{dir}: {env:?}");
        assert_eq!(process["cwd"], "/home/app", "{dir}");
        assert_eq!(process["user"]["uid"], 1000, "{dir}");
        assert_eq!(process["user"]["gid"], 1000, "{dir}");
        // umoci turns labels into the bundle's annotations.
        assert_eq!(config["annotations"]["made.by"], "umoci", "{dir}");
        assert_eq!(config["annotations"]["built.by"], "strata", "{dir}");
        // The layers: umoci's base, then the file the RUN step made.
        let rootfs = Path::new(&bundle).join("rootfs");
        assert!(rootfs.join("bin/busybox").is_file(), "{dir}");
        assert_eq!(
            std::fs::read_to_string(rootfs.join("home/app/mark")).unwrap(),
            "built\n",
            "{dir}"
        );
    }
}

/// Images converted by skopeo (strata's OCI archive to a docker archive, that to an OCI layout:
/// config and manifests rewritten, layers recompressed) are built FROM and run; and skopeo reads
/// strata's exports (OCI archive, docker archive, zstd OCI layout): the raw config is the image
/// ID, the layers and config are what strata built, and its copies to a docker archive, an OCI
/// layout and a `dir:` are whole and load back. (strata does not load skopeo's `dir:` format,
/// a manifest.json that is a manifest, not docker's list: that is only written here, never
/// loaded.) other_tools_accept_the_archives (export.rs) covers the rest.
#[test]
fn skopeo_conversions_are_bases_and_skopeo_reads_the_exports() {
    let Some(src) = Fx::new("skopeo", &["skopeo"]) else {
        return;
    };
    // The base, built by strata and exported as an OCI archive for skopeo to convert.
    src.ok(&["import", &src.busybox.to_string_lossy(), "busybox"]);
    let base_ctx = src.context(
        "base",
        "FROM busybox\nRUN echo base > /home/app/base-file\nENV BASE=skopeo\nLABEL made.by=skopeo-test\nWORKDIR /home/app\nUSER app\nCMD [\"sh\", \"-c\", \"echo from-base\"]\n",
    );
    let base_oci = src.path("base-oci.tar");
    src.ok(&[
        "build",
        "-q",
        "-t",
        "base",
        "-o",
        &format!("type=oci,dest={base_oci}"),
        &base_ctx,
    ]);
    let (conv_docker, conv_oci) = (src.path("conv-docker.tar"), src.path("conv-oci"));
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{base_oci}"),
            &format!("docker-archive:{conv_docker}:skopeo/base:docker"),
        ],
    );
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("docker-archive:{conv_docker}"),
            &format!("oci:{conv_oci}:skopeo/base:oci"),
        ],
    );

    // Each conversion in a state root of its own: loaded, built FROM, run.
    let mut built = Vec::new();
    for (name, input) in [("docker", &conv_docker), ("oci", &conv_oci)] {
        let f = src.other_root(&format!("root-{name}"));
        let base = format!("skopeo/base:{name}");
        assert_eq!(f.load(input), std::slice::from_ref(&base), "{input}");
        assert_eq!(f.ok(&["run", &base]), "from-base\n", "{input}");
        let ctx = f.context(
            &format!("derived-{name}"),
            &derived(&base, "skopeo", "/home/app"),
        );
        let id = f.ok(&["build", "-q", "-t", "derived:v1", &ctx]);
        assert_eq!(
            f.ok(&["run", "derived:v1"]),
            derived_output("skopeo", "/home/app"),
            "{input}"
        );
        built.push((f, id.trim().to_string()));
    }

    // skopeo reads what strata exports.
    let (f, id) = &built[1];
    let (oci, docker, zstd) = (
        f.path("out-oci.tar"),
        f.path("out-docker.tar"),
        f.path("out-zstd"),
    );
    let ctx = f.context(
        "derived-oci",
        &derived("skopeo/base:oci", "skopeo", "/home/app"),
    );
    let again = f.ok(&[
        "build",
        "-q",
        "-t",
        "derived:v1",
        "-o",
        &format!("type=oci,dest={oci}"),
        "-o",
        &format!("type=docker,dest={docker}"),
        "-o",
        &format!("type=oci,dest={zstd},tar=false,compression=zstd"),
        &ctx,
    ]);
    assert_eq!(again.trim(), id);
    let diff_ids = f.inspect(id)["RootFS"]["Layers"].clone();
    assert_eq!(diff_ids.as_array().map(Vec::len), Some(3), "{diff_ids}");
    for src in [
        format!("oci-archive:{oci}"),
        format!("docker-archive:{docker}"),
        format!("oci:{zstd}:v1"),
    ] {
        let raw = tool("skopeo", &["inspect", "--raw", "--config", &src]);
        let raw_file = f.dir.join("raw-config.json");
        std::fs::write(&raw_file, &raw).unwrap();
        assert_eq!(format!("sha256:{}", sha256_hex(&raw_file)), *id, "{src}");
        let v = json(&tool("skopeo", &["inspect", &src]));
        let env: Vec<&str> = v["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_str())
            .collect();
        assert!(env.contains(&"BASE=skopeo"), "{src}: {env:?}");
        assert!(env.contains(&"ADDED=strata"), "{src}: {env:?}");
        assert_eq!(v["Labels"]["made.by"], "skopeo-test", "{src}");
        assert_eq!(v["Labels"]["built.by"], "strata", "{src}");
        assert_eq!(v["Layers"].as_array().map(Vec::len), Some(3), "{src}");
        if src.starts_with("docker-archive:") {
            // A docker archive's layers are uncompressed: their digests are the diff IDs.
            assert_eq!(v["Layers"], diff_ids, "{src}");
        }
        let config = json(&tool("skopeo", &["inspect", "--config", &src]));
        assert_eq!(
            config["config"]["Cmd"],
            serde_json::json!(["sh", "-c", "echo $BASE $ADDED $(cat mark) $(pwd) $(id -un)"]),
            "{src}"
        );
        assert_eq!(config["config"]["User"], "app", "{src}");
        assert_eq!(config["config"]["WorkingDir"], "/home/app", "{src}");
        assert_eq!(config["rootfs"]["diff_ids"], diff_ids, "{src}");
    }

    // skopeo's copies of the exports: a docker archive and an OCI layout load into a fresh
    // root and run; a dir: has every blob under its digest.
    let (copy_docker, copy_oci, copy_dir) = (
        f.path("copy-docker.tar"),
        f.path("copy-oci"),
        f.path("copy-dir"),
    );
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci-archive:{oci}"),
            &format!("docker-archive:{copy_docker}:copied/docker:v1"),
        ],
    );
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{zstd}:v1"),
            &format!("oci:{copy_oci}:copied/oci:v1"),
        ],
    );
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("docker-archive:{docker}"),
            &format!("dir:{copy_dir}"),
        ],
    );
    let manifest = json(&std::fs::read_to_string(format!("{copy_dir}/manifest.json")).unwrap());
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for l in manifest["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(blobs.len(), 4, "{manifest}");
    assert_eq!(blobs[0], *id);
    for d in &blobs {
        let hex = d.trim_start_matches("sha256:");
        assert_eq!(
            sha256_hex(&Path::new(&copy_dir).join(hex)),
            hex,
            "dir: blob {d}"
        );
    }
    let fresh = src.other_root("root-copies");
    for (input, name) in [
        (&copy_docker, "copied/docker:v1"),
        (&copy_oci, "copied/oci:v1"),
    ] {
        assert_eq!(fresh.load(input), [name.to_string()], "{input}");
        assert_eq!(fresh.inspect(name)["Id"], id.as_str(), "{input}");
        assert_eq!(
            fresh.ok(&["run", name]),
            derived_output("skopeo", "/home/app"),
            "{input}"
        );
    }
}

//! Raw command-line arguments (clap). Validation and defaults live in [`super::config`].

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "A daemonless Dockerfile image builder",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: CommandArgs,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// State directory (default: /var/lib/strata as root, else $XDG_DATA_HOME/strata)
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Configuration file (default: <root>/config.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// OCI runtime for RUN steps: the built-in one, runc, crun or a path
    #[arg(long, global = true, value_name = "NAME")]
    pub runtime: Option<String>,
    /// Verbose logging
    #[arg(long, global = true)]
    pub debug: bool,
}

#[derive(Subcommand, Debug)]
pub enum CommandArgs {
    /// Print the raw syntax tree of a Dockerfile, split exactly as BuildKit's parser splits it
    Parse(ParseArgs),
    /// Check a Dockerfile: parse errors, instruction errors and build-check (lint) findings
    Check(FrontendArgs),
    /// Print the build graph a Dockerfile lowers to
    Graph(GraphArgs),
    /// Import a root filesystem tarball (plain, gzip or zstd; `-` for stdin) as a one-layer image
    Import(ImportArgs),
    /// List images
    Images(ImagesArgs),
    /// Give an image another name
    Tag(TagArgs),
    /// Remove images (tags; an image's layers go when nothing uses them)
    Rmi(RmiArgs),
    /// Show an image's details as JSON
    Inspect(InspectArgs),
    /// Run a command in a new container (the image plus a writable layer thrown away at exit)
    Run(RunArgs),
    /// Build an image from a Dockerfile
    Build(Box<BuildArgs>),
    /// Show the space used by images, the build cache and shared layers
    Du,
    /// Write images to a docker (default) or OCI archive
    Save(SaveArgs),
    /// Load images from a docker archive or an OCI layout (tar or directory)
    Load(LoadArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Pull an image from a registry
    Pull(PullArgs),
    /// Push an image to a registry
    Push(PushArgs),
    /// Log in to a registry (credentials go to the docker config file)
    Login(LoginArgs),
    /// Log out of a registry
    Logout(LogoutArgs),
    /// Remove build cache and the layers nothing uses any more
    Prune(PruneArgs),
    /// List, register (--install) or remove (--uninstall) QEMU emulators for other platforms
    Binfmt(BinfmtArgs),
    /// Past builds, as `docker buildx history` keeps them: list, inspect, remove
    Builds(BuildsArgs),
    #[command(name = "__shim", hide = true)]
    Shim(ShimArgs),
    #[command(name = "__init", hide = true)]
    Init(InitArgs),
    #[command(name = "__fileop", hide = true)]
    FileOp(InitArgs),
}

#[derive(Args, Debug)]
pub struct BuildsArgs {
    #[command(subcommand)]
    pub command: BuildsCommand,
}

#[derive(Subcommand, Debug)]
pub enum BuildsCommand {
    /// The recorded builds, newest first
    Ls {
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// One build: every step with its time, cache result and reason, its output on failure,
    /// and the critical path
    Inspect {
        /// A build ID (or a unique prefix of one)
        id: String,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Forget builds
    Rm {
        ids: Vec<String>,
        /// Every recorded build
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Args, Debug)]
pub struct BinfmtArgs {
    /// Register Debian's qemu-user-static emulator (with the fix-binary flag) for these
    /// platforms (os/arch[/variant], or `all`), as root
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub install: Vec<String>,
    /// Remove every registered QEMU emulator, as root
    #[arg(long, conflicts_with = "install")]
    pub uninstall: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkArg {
    Host,
    None,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Remove the container when it exits (always the case: accepted for docker compatibility)
    #[arg(long)]
    pub rm: bool,
    /// Keep standard input open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Network: the host's, or none (loopback only)
    #[arg(long, value_enum, default_value = "host")]
    pub network: NetworkArg,
    /// Overwrite the image's ENTRYPOINT
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Give the container all capabilities and no seccomp filter
    #[arg(long)]
    pub privileged: bool,
    /// Run an init as PID 1 that forwards signals and reaps processes (the command is its
    /// child), as `docker run --init`
    #[arg(long)]
    pub init: bool,
    /// Pull the image before running: when it is not in the local store, always, or never
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullPolicy,
    /// Platform of the image (default: this machine's); pulled for it when missing
    #[arg(long)]
    pub platform: Option<String>,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// When `strata run` pulls its image.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull when the local store lacks the image (for the platform asked for)
    Missing,
    /// Pull every time
    Always,
    /// Never pull
    Never,
}

#[derive(Args, Debug)]
pub struct ShimArgs {
    pub bundle: std::path::PathBuf,
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub runtime_path: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    pub bundle: std::path::PathBuf,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The platform of the image (the machine's by default); several, comma-separated, make
    /// one multi-platform image of as many tarballs, in the same order
    #[arg(long)]
    pub platform: Option<String>,
    /// The tarball (`-` for standard input), one per platform, then NAME[:TAG] for the new
    /// image
    #[arg(required = true, num_args = 1..)]
    pub args: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Show manifest digests
    #[arg(long)]
    pub digests: bool,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Remove the image even when several tags name it
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseFormat {
    /// BuildKit's S-expression dump (the format of its parser fixtures)
    Sexp,
    Json,
}

#[derive(Args, Debug)]
pub struct ParseArgs {
    #[arg(long, value_enum, default_value = "sexp")]
    pub format: ParseFormat,
    /// The Dockerfile (`-` for standard input)
    pub file: String,
}

#[derive(Args, Debug, Clone)]
pub struct FrontendArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; `-` for standard input)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,
    /// Set a build-time variable (`K=V`, or `K` to take the value from the environment)
    #[arg(long = "build-arg", value_name = "K[=V]")]
    pub build_args: Vec<String>,
    /// The stage to build (default: the last one)
    #[arg(long)]
    pub target: Option<String>,
    /// Target platform (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// The build context directory
    pub context: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Json,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub frontend: FrontendArgs,
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressArg {
    /// tty on a terminal, plain otherwise
    Auto,
    Tty,
    Plain,
    Rawjson,
    Quiet,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub frontend: FrontendArgs,
    /// Name and optionally a tag (NAME[:TAG]); may be repeated
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Do not use the cache: run every step
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for the steps of these stages
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// How to show progress
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// Only print the image ID (same as --progress quiet)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Network for RUN steps that do not choose one (default: the host's); `host` given
    /// here also grants the network.host entitlement, as buildx does
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// Set metadata on the image (K=V); may be repeated
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write build result metadata (JSON) to this file
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Steps run at the same time at most (default: one COPY/ADD per CPU, four RUN steps per CPU)
    #[arg(long, value_name = "N")]
    pub max_parallelism: Option<usize>,
    /// Where the result goes (type=image|oci|docker|local|tar,dest=…,compression=…); repeatable
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the image to its registry under every -t name
    #[arg(long)]
    pub push: bool,
    /// Pull base images again even when they are in the local store
    #[arg(long)]
    pub pull: bool,
    /// Import build cache: type=local,src=DIR or type=registry,ref=REF; repeatable
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export build cache: type=local,dest=DIR or type=registry,ref=REF[,mode=min|max]
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR; repeatable
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// An SSH agent for RUN --mount=type=ssh: default or ID=SOCKET (default: $SSH_AUTH_SOCK)
    #[arg(long = "ssh", value_name = "ID[=SOCKET]")]
    pub ssh: Vec<String>,
    /// Entitlements: security.insecure (lets RUN --security=insecure run privileged),
    /// network.host (lets RUN --network=host use the host's network)
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Platform of the image to pull (default: this machine's)
    #[arg(long, conflicts_with = "all_platforms")]
    pub platform: Option<String>,
    /// Every platform of a multi-platform image
    #[arg(short = 'a', long)]
    pub all_platforms: bool,
    pub reference: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The local image
    pub image: String,
    /// Where to push it (default: the image name)
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: String,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    pub server: String,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    pub server: String,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<String>,
    /// Archive format
    #[arg(long, default_value = "docker", value_name = "docker|oci")]
    pub format: String,
    /// Layer compression (gzip, zstd or uncompressed)
    #[arg(long, value_name = "C")]
    pub compression: Option<String>,
    /// Of a multi-platform image, save this platform's image (default: this machine's)
    #[arg(long)]
    pub platform: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from this file (or OCI layout directory) instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Do not shorten the commands
    #[arg(long)]
    pub no_trunc: bool,
    pub image: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all build cache (also entries whose layers images use) and untagged images
    #[arg(short, long)]
    pub all: bool,
    /// Keep this much build cache (e.g. 500MB, 2GB), removing the least recently used first
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Only `until=DURATION` (e.g. 24h, 30m, 90s): cache not used for that long
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
}

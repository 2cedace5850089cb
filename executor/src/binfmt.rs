//! Running binaries of other platforms through the kernel's binfmt_misc and QEMU's static
//! user-mode emulators (Debian's `qemu-user-static`).
//!
//! A handler registered with the fix-binary (`F`) flag has its interpreter opened by the
//! kernel when it is registered, so it works inside a container's root without being mounted
//! into it: a RUN step for `linux/arm64` simply execs its aarch64 binaries. [`handler_for`]
//! finds the handler that would run a platform's ELF binaries; [`install`] registers Debian's
//! emulators the way `tonistiigi/binfmt` does (`F`), [`uninstall`] removes them.
//!
//! Handlers are recognised by what they match (the ELF class, byte order and machine in their
//! magic and mask), not by their names, so an emulator registered by any tool counts.

use crate::error::{ExecError, IoContext};
use std::path::{Path, PathBuf};
use strata_solver::graph::Platform;

/// Where binfmt_misc lives.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// The platforms `strata binfmt` lists and `--install all` registers (each has an
/// [`elf_kind`]).
pub const PLATFORMS: &[&str] = &[
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/amd64",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];

/// What an ELF binary of one architecture starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfKind {
    /// 1: 32-bit, 2: 64-bit.
    pub class: u8,
    /// 1: little-endian, 2: big-endian.
    pub data: u8,
    /// `e_machine`.
    pub machine: u16,
    /// QEMU's name for it (`qemu-NAME-static`).
    pub qemu: &'static str,
}

/// The ELF kind of a platform's binaries, for the platforms QEMU emulates.
pub fn elf_kind(p: &Platform) -> Option<ElfKind> {
    let p = p.clone().normalized();
    let k = |class, data, machine, qemu| {
        Some(ElfKind {
            class,
            data,
            machine,
            qemu,
        })
    };
    match p.architecture.as_str() {
        "amd64" => k(2, 1, 0x3e, "x86_64"),
        "386" => k(1, 1, 0x03, "i386"),
        "arm64" => k(2, 1, 0xb7, "aarch64"),
        "arm" => k(1, 1, 0x28, "arm"),
        "ppc64le" => k(2, 1, 0x15, "ppc64le"),
        "s390x" => k(2, 2, 0x16, "s390x"),
        "riscv64" => k(2, 1, 0xf3, "riscv64"),
        "mips64le" => k(2, 1, 0x08, "mips64el"),
        "loong64" => k(2, 1, 0x102, "loongarch64"),
        _ => None,
    }
}

/// One registered binfmt_misc handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: PathBuf,
    pub flags: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
}

impl Handler {
    /// Parses `/proc/sys/fs/binfmt_misc/NAME`.
    pub fn parse(name: &str, text: &str) -> Option<Handler> {
        let mut h = Handler {
            name: name.to_string(),
            enabled: false,
            interpreter: PathBuf::new(),
            flags: String::new(),
            offset: 0,
            magic: vec![],
            mask: vec![],
        };
        for line in text.lines() {
            let line = line.trim();
            if line == "enabled" {
                h.enabled = true;
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                h.interpreter = PathBuf::from(v);
            } else if let Some(v) = line.strip_prefix("flags:") {
                h.flags = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("offset ") {
                h.offset = v.trim().parse().ok()?;
            } else if let Some(v) = line.strip_prefix("magic ") {
                h.magic = unhex(v.trim())?;
            } else if let Some(v) = line.strip_prefix("mask ") {
                h.mask = unhex(v.trim())?;
            }
        }
        (!h.interpreter.as_os_str().is_empty()).then_some(h)
    }

    /// Whether this handler takes an ELF binary of `kind` (the header bytes its magic and
    /// mask look at).
    pub fn matches(&self, kind: &ElfKind) -> bool {
        let header = elf_header(kind);
        if self.offset != 0 || self.magic.is_empty() || self.magic.len() > header.len() {
            return false;
        }
        self.magic.iter().enumerate().all(|(i, m)| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            header[i] & mask == m & mask
        })
    }

    /// Whether the interpreter is held by the kernel (`F`), so it works inside containers.
    pub fn fix_binary(&self) -> bool {
        self.flags.contains('F')
    }
}

/// The first 20 bytes of an executable ELF file of `kind` (what handlers match on).
fn elf_header(kind: &ElfKind) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = kind.class;
    h[5] = kind.data;
    h[6] = 1; // EI_VERSION
    let (etype, machine) = if kind.data == 2 {
        (2u16.to_be_bytes(), kind.machine.to_be_bytes())
    } else {
        (2u16.to_le_bytes(), kind.machine.to_le_bytes())
    };
    h[16..18].copy_from_slice(&etype);
    h[18..20].copy_from_slice(&machine);
    h
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The handlers registered under `dir` (normally [`BINFMT_DIR`]); none when binfmt_misc is
/// not mounted.
pub fn handlers(dir: &Path) -> Vec<Handler> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<Handler> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                return None;
            }
            // A handler's entry is a small regular file; anything else (a FIFO in a directory
            // given by STRATA_BINFMT_DIR) is not read.
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                return None;
            }
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(std::fs::File::open(e.path()).ok()?, 64 << 10),
                &mut text,
            )
            .ok()?;
            Handler::parse(&name, &text)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// How a platform's binaries run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// The machine runs them itself.
    Native,
    /// Through this handler (enabled, `F`).
    Emulated(Handler),
    /// Not at all; the reason says what is missing.
    Missing(String),
}

/// How binaries for `platform` run here, given the registered `handlers`.
pub fn support(platform: &Platform, handlers: &[Handler]) -> Support {
    if Platform::host().rank(platform).is_some() {
        return Support::Native;
    }
    let Some(kind) = elf_kind(platform) else {
        return Support::Missing(format!("no emulator is known for {platform}"));
    };
    let matching: Vec<&Handler> = handlers.iter().filter(|h| h.matches(&kind)).collect();
    if let Some(h) = matching.iter().find(|h| h.enabled && h.fix_binary()) {
        return Support::Emulated((*h).clone());
    }
    Support::Missing(match matching.first() {
        Some(h) if !h.enabled => format!("the binfmt_misc handler {} is disabled", h.name),
        Some(h) => format!(
            "the binfmt_misc handler {} lacks the fix-binary (F) flag, so its interpreter {} cannot be found inside a container",
            h.name,
            h.interpreter.display()
        ),
        None => format!(
            "no binfmt_misc handler runs {platform} binaries (qemu-{}-static)",
            kind.qemu
        ),
    })
}

/// The error for a platform that cannot run here: which platform, why, and the command that
/// fixes it.
pub fn missing_error(platform: &Platform, why: &str) -> String {
    format!(
        "{platform} binaries cannot run on this {} machine: {why}; register QEMU's emulator with `strata binfmt --install {}` (as root; it needs Debian's qemu-user-static: apt-get install qemu-user-static)",
        Platform::host(),
        platform.clone().normalized()
    )
}

/// The registration line for `kind`, with `interpreter` and the `F` flag.
pub fn register_line(name: &str, kind: &ElfKind, interpreter: &Path) -> String {
    let header = elf_header(kind);
    // What varies between binaries of one architecture is masked out: OS ABI and padding
    // (bytes 7–15) and the executable/shared-object type's low bit.
    let mut mask = [0xffu8; 20];
    for m in &mut mask[7..16] {
        *m = 0;
    }
    let type_low = if kind.data == 2 { 17 } else { 16 };
    mask[type_low] = 0xfe;
    let hex = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
    format!(
        ":{name}:M::{}:{}:{}:PF",
        hex(&header),
        hex(&mask),
        interpreter.display()
    )
}

/// Where Debian installs the emulator for `kind`.
pub fn debian_emulator(kind: &ElfKind) -> PathBuf {
    PathBuf::from(format!("/usr/bin/qemu-{}-static", kind.qemu))
}

/// Mounts binfmt_misc at [`BINFMT_DIR`] when it is not there yet.
fn ensure_mounted() -> Result<(), ExecError> {
    if Path::new(BINFMT_DIR).join("register").exists() {
        return Ok(());
    }
    nix::mount::mount(
        Some("binfmt_misc"),
        BINFMT_DIR,
        Some("binfmt_misc"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
    .doing(|| format!("mounting binfmt_misc at {BINFMT_DIR}"))
}

/// What [`install`] did for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Registered {
        name: String,
        interpreter: PathBuf,
    },
    /// This machine runs it itself.
    Native,
    /// Already emulated, through this handler (with `F`).
    Emulated(Handler),
}

/// Registers the Debian emulator of each platform with the `F` flag (root). A platform that
/// already runs is left alone; a handler for it without `F` is replaced.
pub fn install(platforms: &[Platform]) -> Result<Vec<(Platform, Installed)>, ExecError> {
    if !rustix::process::geteuid().is_root() {
        return Err(ExecError::NeedsRoot(
            "registering binfmt_misc handlers needs root",
        ));
    }
    ensure_mounted()?;
    let dir = Path::new(BINFMT_DIR);
    let mut out = Vec::new();
    for p in platforms {
        let now = handlers(dir);
        match support(p, &now) {
            Support::Native => {
                out.push((p.clone(), Installed::Native));
                continue;
            }
            Support::Emulated(h) => {
                out.push((p.clone(), Installed::Emulated(h)));
                continue;
            }
            Support::Missing(_) => {}
        }
        let kind = elf_kind(p)
            .ok_or_else(|| ExecError::Binfmt(format!("no QEMU emulator is known for {p}")))?;
        let interpreter = debian_emulator(&kind);
        if !interpreter.is_file() {
            return Err(ExecError::Binfmt(format!(
                "{} is not installed: apt-get install qemu-user-static",
                interpreter.display()
            )));
        }
        // A handler that matches but cannot serve containers (no F, disabled) goes first.
        for h in now.iter().filter(|h| h.matches(&kind)) {
            std::fs::write(dir.join(&h.name), "-1")
                .doing(|| format!("removing the binfmt_misc handler {}", h.name))?;
        }
        let name = format!("qemu-{}", kind.qemu);
        std::fs::write(
            dir.join("register"),
            register_line(&name, &kind, &interpreter),
        )
        .doing(|| format!("registering {name} in {BINFMT_DIR}"))?;
        out.push((p.clone(), Installed::Registered { name, interpreter }));
    }
    Ok(out)
}

/// Removes every handler whose interpreter is a QEMU emulator (root); returns their names.
pub fn uninstall() -> Result<Vec<String>, ExecError> {
    if !rustix::process::geteuid().is_root() {
        return Err(ExecError::NeedsRoot(
            "removing binfmt_misc handlers needs root",
        ));
    }
    let dir = Path::new(BINFMT_DIR);
    let mut removed = Vec::new();
    for h in handlers(dir) {
        let is_qemu = h
            .interpreter
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("qemu-"))
            || h.name.starts_with("qemu-");
        if is_qemu {
            std::fs::write(dir.join(&h.name), "-1")
                .doing(|| format!("removing the binfmt_misc handler {}", h.name))?;
            removed.push(h.name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aarch64_handler(flags: &str) -> Handler {
        let conf = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
        let mut h = Handler::parse("qemu-aarch64", conf).unwrap();
        h.flags = flags.into();
        h
    }

    #[test]
    fn a_handler_is_recognised_by_what_it_matches() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let h = aarch64_handler("F");
        assert!(h.matches(&elf_kind(&arm64).unwrap()));
        assert!(!h.matches(&elf_kind(&Platform::parse("linux/arm/v7").unwrap()).unwrap()));
        assert!(!h.matches(&elf_kind(&Platform::parse("linux/s390x").unwrap()).unwrap()));
        assert_eq!(
            support(&arm64, std::slice::from_ref(&h)),
            Support::Emulated(h)
        );
    }

    #[test]
    fn what_is_missing_is_said() {
        let arm64 = Platform::parse("linux/arm64/v8").unwrap();
        let no_f = aarch64_handler("OP");
        match support(&arm64, &[no_f]) {
            Support::Missing(why) => assert!(why.contains("fix-binary (F)"), "{why}"),
            s => panic!("{s:?}"),
        }
        match support(&arm64, &[]) {
            Support::Missing(why) => assert!(why.contains("qemu-aarch64-static"), "{why}"),
            s => panic!("{s:?}"),
        }
        let msg = missing_error(&arm64, "none");
        assert!(msg.contains("strata binfmt --install linux/arm64"), "{msg}");
    }

    #[test]
    fn every_listed_platform_has_its_elf_kind() {
        for p in PLATFORMS {
            assert!(elf_kind(&Platform::parse(p).unwrap()).is_some(), "{p}");
        }
    }

    #[test]
    fn the_host_platform_is_native() {
        assert_eq!(support(&Platform::host(), &[]), Support::Native);
    }

    #[test]
    fn registration_lines_match_their_own_handler() {
        for p in [
            "linux/arm64",
            "linux/arm/v7",
            "linux/s390x",
            "linux/ppc64le",
            "linux/riscv64",
        ] {
            let kind = elf_kind(&Platform::parse(p).unwrap()).unwrap();
            let line = register_line("x", &kind, Path::new("/usr/bin/qemu-x-static"));
            // What the kernel shows for the line: magic and mask as hex.
            let field = |i: usize| line.split(':').nth(i).unwrap().replace("\\x", "");
            let text = format!(
                "enabled\ninterpreter /q\nflags: F\noffset 0\nmagic {}\nmask {}\n",
                field(4),
                field(5)
            );
            let h = Handler::parse("x", &text).unwrap();
            assert!(h.matches(&kind), "{p}: {line}");
            assert!(line.ends_with(":PF"));
        }
    }

    #[test]
    fn debians_registration_matches_as_ours_does() {
        // /usr/lib/binfmt.d/qemu-arm.conf of Debian's qemu-user-static.
        let text = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
        let h = Handler::parse("qemu-arm", text).unwrap();
        let armv7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(h.matches(&elf_kind(&armv7).unwrap()));
        assert!(h.fix_binary());
    }
}

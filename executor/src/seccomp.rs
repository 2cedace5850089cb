//! The seccomp filter of containers: an allowlist with the effect of Docker's default profile,
//! kept as data in `seccomp/profile.toml`. [`filters`] compiles it with seccompiler for the
//! built-in runtime; [`oci_section`] writes the same rules into config.json for runc and crun.
//!
//! A profile is a list of rules; for one container (its capability set and architecture) the
//! rules whose conditions hold are selected. The first BPF program allows what the selected
//! rules allow and fails everything else with the profile's errno (EPERM); a rule with an
//! `errno` of its own (clone3 → ENOSYS) becomes one more program that fails its system calls
//! with that errno and allows everything else. The first program lets those calls through, so
//! the errno wins whatever the order the programs are installed in (the kernel takes the
//! strictest answer of all installed filters, and an errno is stricter than allow).

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The profile's text, as kept in the repository.
pub const PROFILE: &str = include_str!("seccomp/profile.toml");

/// What can go wrong turning the profile into a filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parsing the seccomp profile: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid seccomp profile: {0}")]
    Invalid(String),
    #[error("no seccomp support for the architecture {0}")]
    Arch(String),
    #[error("compiling the seccomp filter: {0}")]
    Compile(#[from] seccompiler::BackendError),
    #[error("building the seccomp section of config.json: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
}

/// A parsed profile (the format is described at the top of `seccomp/profile.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The errno of a system call no rule allows.
    default_errno: u32,
    /// Architecture → system call name → number, for names seccompiler's table lacks.
    #[serde(default)]
    numbers: BTreeMap<String, BTreeMap<String, u32>>,
    #[serde(rename = "rule")]
    rules: Vec<Rule>,
}

/// One rule: its system calls, its action, and when it applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    names: Vec<String>,
    /// Fail with this errno instead of allowing.
    #[serde(default)]
    errno: Option<u32>,
    /// Only on these architectures (seccompiler's names); empty: on all.
    #[serde(default)]
    arches: Vec<String>,
    /// Only when the container has every one of these.
    #[serde(default)]
    caps: Vec<Capability>,
    /// Only when the container has none of these.
    #[serde(default)]
    without_caps: Vec<Capability>,
    /// Alternatives, any one of which must hold; each is comparisons that must all hold.
    /// Empty: whatever the arguments.
    #[serde(default)]
    args: Vec<Vec<Cmp>>,
}

/// A comparison of one argument of a system call.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cmp {
    arg: u8,
    op: Op,
    value: u64,
    /// For `masked_eq`: `(arg & mask) == value`.
    #[serde(default)]
    mask: Option<u64>,
    /// 32: only the low half of the argument is compared.
    #[serde(default = "full_width")]
    bits: u8,
}

fn full_width() -> u8 {
    64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq,
}

fn arch_name(arch: TargetArch) -> &'static str {
    match arch {
        TargetArch::x86_64 => "x86_64",
        TargetArch::aarch64 => "aarch64",
        TargetArch::riscv64 => "riscv64",
    }
}

/// The architecture strata runs on.
pub fn native_arch() -> Result<TargetArch, Error> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| Error::Arch(std::env::consts::ARCH.to_string()))
}

/// System call numbers by architecture and name, kept as data beside the profile.
const NUMBERS: &str = include_str!("seccomp/numbers.toml");

fn number_table() -> &'static HashMap<String, HashMap<String, i64>> {
    static TABLE: std::sync::OnceLock<HashMap<String, HashMap<String, i64>>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| toml::from_str(NUMBERS).unwrap_or_default())
}

/// The profile kept in the repository.
pub fn builtin() -> Result<Profile, Error> {
    Profile::parse(PROFILE)
}

/// The BPF programs for a container with capabilities `caps` on `arch`, in the order to
/// install them. Compiled once per process for each capability set (a build's steps share
/// them; [`write_programs`] hands them to the container's init).
pub fn filters(caps: &HashSet<Capability>, arch: TargetArch) -> Result<Vec<BpfProgram>, Error> {
    static CACHE: Cache<Vec<BpfProgram>> = Cache::new();
    CACHE.get(caps, arch, || builtin()?.programs(caps, arch))
}

/// The programs for the container `spec` describes, on this architecture: `None` when the
/// spec has no seccomp section (`--security=insecure`), else [`filters`] for the capabilities
/// of its bounding set.
pub fn for_spec(spec: &oci_spec::runtime::Spec) -> Result<Option<Vec<BpfProgram>>, Error> {
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .is_none()
    {
        return Ok(None);
    }
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default();
    filters(&caps, native_arch()?).map(Some)
}

/// The seccomp section of config.json for a container with capabilities `caps` on `arch`
/// (made once per process for each capability set).
pub fn oci_section(caps: &HashSet<Capability>, arch: TargetArch) -> Result<LinuxSeccomp, Error> {
    static CACHE: Cache<LinuxSeccomp> = Cache::new();
    CACHE.get(caps, arch, || builtin()?.oci(caps, arch))
}

/// Results by (capability set, architecture), computed once.
struct Cache<T>(std::sync::Mutex<Option<HashMap<String, T>>>);

impl<T: Clone> Cache<T> {
    const fn new() -> Cache<T> {
        Cache(std::sync::Mutex::new(None))
    }

    fn get(
        &self,
        caps: &HashSet<Capability>,
        arch: TargetArch,
        make: impl FnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        names.sort();
        let key = format!("{}/{}", arch_name(arch), names.join(","));
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        if let Some(v) = map.get(&key) {
            return Ok(v.clone());
        }
        let v = make()?;
        map.insert(key, v.clone());
        Ok(v)
    }
}

/// Writes compiled programs to `path` for the container's init to install as they are (so
/// the init compiles nothing): per program its length, then each instruction (code, jt, jf,
/// k), native-endian.
pub fn write_programs(path: &std::path::Path, progs: &[BpfProgram]) -> std::io::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(&(progs.len() as u32).to_ne_bytes());
    for p in progs {
        out.extend_from_slice(&(p.len() as u32).to_ne_bytes());
        for i in p {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
    }
    std::fs::write(path, out)
}

/// Reads what [`write_programs`] wrote; `None` if it is not well formed.
pub fn read_programs(bytes: &[u8]) -> Option<Vec<BpfProgram>> {
    let mut at = 0usize;
    let u32_at = |at: &mut usize| -> Option<u32> {
        let b = bytes.get(*at..*at + 4)?;
        *at += 4;
        Some(u32::from_ne_bytes(b.try_into().ok()?))
    };
    let n = u32_at(&mut at)?;
    let mut progs = Vec::new();
    for _ in 0..n {
        let len = u32_at(&mut at)? as usize;
        if len > 4096 {
            return None;
        }
        let mut p = Vec::with_capacity(len);
        for _ in 0..len {
            let b = bytes.get(at..at + 8)?;
            p.push(seccompiler::sock_filter {
                code: u16::from_ne_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            });
            at += 8;
        }
        progs.push(p);
    }
    (at == bytes.len()).then_some(progs)
}

/// System call → the argument alternatives under which it matches; `None`: whatever the
/// arguments.
type Matches = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add_match(m: &mut Matches, nr: i64, rules: Option<Vec<SeccompRule>>) {
    let slot = m.entry(nr).or_insert_with(|| Some(Vec::new()));
    match rules {
        None => *slot = None,
        Some(more) => {
            if let Some(have) = slot {
                have.extend(more);
            }
        }
    }
}

fn compile(
    m: Matches,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, Error> {
    let rules = m
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(rules, mismatch, matched, arch)?;
    Ok(BpfProgram::try_from(filter)?)
}

/// The numbers seccompiler's table gives `names` on `arch`, read from the programs it compiles
/// for them (the comparison after the load of the system call number). One compilation for
/// many names (seccompiler builds its table once per call); a batch with a name the table
/// lacks fails as a whole and is split in two, so the unknown names cost a few more calls.
fn seccompiler_numbers<'a>(names: &[&'a str], arch: TargetArch, out: &mut HashMap<&'a str, i64>) {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    if names.is_empty() {
        return;
    }
    let mut filters = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        filters.insert(
            format!("n{i}"),
            serde_json::json!({
                "mismatch_action": "allow",
                "match_action": {"errno": 1},
                "filter": [{"syscall": name}],
            }),
        );
    }
    let json = serde_json::Value::Object(filters).to_string();
    match seccompiler::compile_from_json(json.as_bytes(), arch) {
        Ok(progs) => {
            for (i, name) in names.iter().enumerate() {
                let nr = progs.get(&format!("n{i}")).and_then(|p| {
                    p.windows(2).find_map(|w| {
                        (w[0].code == LD_W_ABS && w[0].k == 0 && w[1].code == JEQ_K)
                            .then_some(i64::from(w[1].k))
                    })
                });
                if let Some(nr) = nr {
                    out.insert(name, nr);
                }
            }
        }
        Err(_) if names.len() == 1 => {}
        Err(_) => {
            let (a, b) = names.split_at(names.len() / 2);
            seccompiler_numbers(a, arch, out);
            seccompiler_numbers(b, arch, out);
        }
    }
}

impl Cmp {
    fn condition(&self) -> Result<SeccompCondition, Error> {
        let len = if self.bits == 32 {
            SeccompCmpArgLen::Dword
        } else {
            SeccompCmpArgLen::Qword
        };
        let op = match self.op {
            Op::Eq => SeccompCmpOp::Eq,
            Op::Ne => SeccompCmpOp::Ne,
            Op::Lt => SeccompCmpOp::Lt,
            Op::Le => SeccompCmpOp::Le,
            Op::Gt => SeccompCmpOp::Gt,
            Op::Ge => SeccompCmpOp::Ge,
            Op::MaskedEq => SeccompCmpOp::MaskedEq(self.mask.unwrap_or(u64::MAX)),
        };
        Ok(SeccompCondition::new(self.arg, len, op, self.value)?)
    }

    /// As runtimes read it: libseccomp's MASKED_EQ takes the mask first, the value second.
    fn oci(&self) -> Result<LinuxSeccompArg, Error> {
        let b = LinuxSeccompArgBuilder::default().index(usize::from(self.arg));
        let b = match self.op {
            Op::MaskedEq => b
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .value(self.mask.unwrap_or(u64::MAX))
                .value_two(self.value),
            op => b
                .op(match op {
                    Op::Eq => LinuxSeccompOperator::ScmpCmpEq,
                    Op::Ne => LinuxSeccompOperator::ScmpCmpNe,
                    Op::Lt => LinuxSeccompOperator::ScmpCmpLt,
                    Op::Le => LinuxSeccompOperator::ScmpCmpLe,
                    Op::Gt => LinuxSeccompOperator::ScmpCmpGt,
                    _ => LinuxSeccompOperator::ScmpCmpGe,
                })
                .value(self.value),
        };
        Ok(b.build()?)
    }
}

impl Rule {
    fn applies(&self, caps: &HashSet<Capability>, arch: TargetArch) -> bool {
        (self.arches.is_empty() || self.arches.iter().any(|a| a == arch_name(arch)))
            && self.caps.iter().all(|c| caps.contains(c))
            && !self.without_caps.iter().any(|c| caps.contains(c))
    }

    /// The rule's argument alternatives as seccompiler rules; `None`: unconditional.
    fn seccomp_rules(&self) -> Result<Option<Vec<SeccompRule>>, Error> {
        if self.args.is_empty() {
            return Ok(None);
        }
        let rules = self
            .args
            .iter()
            .map(|alt| {
                let conds = alt.iter().map(Cmp::condition).collect::<Result<_, _>>()?;
                Ok(SeccompRule::new(conds)?)
            })
            .collect::<Result<_, Error>>()?;
        Ok(Some(rules))
    }

    fn validate(&self) -> Result<(), String> {
        if self.names.is_empty() {
            return Err("a rule without names".into());
        }
        let what = || self.names.join(", ");
        if let Some(e) = self.errno
            && !(1..=4095).contains(&e)
        {
            return Err(format!("errno {e} of {} is not an errno", what()));
        }
        for a in &self.arches {
            TargetArch::try_from(a.as_str())
                .map_err(|_| format!("unknown architecture {a:?} in the rule of {}", what()))?;
        }
        for alt in &self.args {
            if alt.is_empty() {
                return Err(format!("an empty argument alternative for {}", what()));
            }
            for c in alt {
                if c.arg > 5 {
                    return Err(format!("argument {} of {} does not exist", c.arg, what()));
                }
                if c.bits != 32 && c.bits != 64 {
                    return Err(format!("bits = {} for {}: 32 or 64", c.bits, what()));
                }
                if (c.op == Op::MaskedEq) != c.mask.is_some() {
                    return Err(format!(
                        "a mask goes with masked_eq, and only there ({})",
                        what()
                    ));
                }
                if c.bits == 32 && (c.value > u64::from(u32::MAX)) {
                    return Err(format!(
                        "a 32-bit comparison with {:#x} ({})",
                        c.value,
                        what()
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Profile {
    /// Parses and checks a profile.
    pub fn parse(text: &str) -> Result<Profile, Error> {
        let p: Profile = toml::from_str(text)?;
        if !(1..=4095).contains(&p.default_errno) {
            return Err(Error::Invalid(format!(
                "default_errno {} is not an errno",
                p.default_errno
            )));
        }
        for a in p.numbers.keys() {
            TargetArch::try_from(a.as_str())
                .map_err(|_| Error::Invalid(format!("numbers for unknown architecture {a:?}")))?;
        }
        for r in &p.rules {
            r.validate().map_err(Error::Invalid)?;
        }
        Ok(p)
    }

    /// The rules that apply to a container with capabilities `caps` on `arch`.
    pub fn select(&self, caps: &HashSet<Capability>, arch: TargetArch) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.applies(caps, arch))
            .collect()
    }

    /// The number of every system call the profile names that `arch` has.
    pub fn numbers(&self, arch: TargetArch) -> HashMap<&str, i64> {
        self.numbers_of(self.rules.iter(), arch)
    }

    /// The numbers of the system calls `rules` name that `arch` has, from the table kept as
    /// data (`numbers.toml`); looked up through seccompiler for an architecture it lacks.
    fn numbers_of<'a>(
        &'a self,
        rules: impl Iterator<Item = &'a Rule>,
        arch: TargetArch,
    ) -> HashMap<&'a str, i64> {
        let Some(table) = number_table().get(arch_name(arch)) else {
            return self.slow_numbers_of(rules, arch);
        };
        rules
            .flat_map(|r| r.names.iter())
            .filter_map(|n| table.get(n.as_str()).map(|nr| (n.as_str(), *nr)))
            .collect()
    }

    /// Every number seccompiler's table and the profile's own give the names of the profile
    /// on `arch` (slow: compiles filters to read the numbers).
    #[cfg(test)]
    fn slow_numbers(&self, arch: TargetArch) -> HashMap<&str, i64> {
        self.slow_numbers_of(self.rules.iter(), arch)
    }

    /// The numbers of the system calls `rules` name that `arch` has: seccompiler's, else the
    /// profile's own.
    fn slow_numbers_of<'a>(
        &'a self,
        rules: impl Iterator<Item = &'a Rule>,
        arch: TargetArch,
    ) -> HashMap<&'a str, i64> {
        let extra = self.numbers.get(arch_name(arch));
        let mut names: Vec<&str> = rules
            .flat_map(|r| r.names.iter())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut out = HashMap::new();
        // Names the profile numbers itself are the ones seccompiler's table lacks: leaving them
        // out keeps the batch whole (one compilation).
        let asked: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !extra.is_some_and(|e| e.contains_key(*n)))
            .collect();
        seccompiler_numbers(&asked, arch, &mut out);
        for name in names {
            if !out.contains_key(name)
                && let Some(n) = extra.and_then(|e| e.get(name))
            {
                out.insert(name, i64::from(*n));
            }
        }
        out
    }

    /// The BPF programs for a container with capabilities `caps` on `arch`: the allowlist
    /// first, then one program per errno the selected rules give.
    pub fn programs(
        &self,
        caps: &HashSet<Capability>,
        arch: TargetArch,
    ) -> Result<Vec<BpfProgram>, Error> {
        let selected = self.select(caps, arch);
        let numbers = self.numbers_of(selected.iter().copied(), arch);
        let mut allowed = Matches::new();
        let mut errnos: BTreeMap<u32, Matches> = BTreeMap::new();
        for rule in selected {
            let conds = rule.seccomp_rules()?;
            for nr in rule.names.iter().filter_map(|n| numbers.get(n.as_str())) {
                // The allowlist lets an errno rule's calls through to the errno's program.
                add_match(&mut allowed, *nr, conds.clone());
                if let Some(e) = rule.errno {
                    add_match(errnos.entry(e).or_default(), *nr, conds.clone());
                }
            }
        }
        let mut progs = vec![compile(
            allowed,
            SeccompAction::Errno(self.default_errno),
            SeccompAction::Allow,
            arch,
        )?];
        for (e, m) in errnos {
            progs.push(compile(
                m,
                SeccompAction::Allow,
                SeccompAction::Errno(e),
                arch,
            )?);
        }
        Ok(progs)
    }

    /// The seccomp section of config.json: the selected rules as SCMP_ACT_ALLOW (or
    /// SCMP_ACT_ERRNO) entries, one per argument alternative, and everything else failing
    /// with the default errno. The names are all the rules', for libseccomp to resolve on the
    /// native architecture and the ones Docker adds beside it (i386 and x32 on x86_64, arm on
    /// aarch64).
    pub fn oci(&self, caps: &HashSet<Capability>, arch: TargetArch) -> Result<LinuxSeccomp, Error> {
        let mut syscalls: Vec<LinuxSyscall> = Vec::new();
        for rule in self.select(caps, arch) {
            let alternatives: Vec<Vec<LinuxSeccompArg>> = if rule.args.is_empty() {
                vec![vec![]]
            } else {
                rule.args
                    .iter()
                    .map(|alt| alt.iter().map(Cmp::oci).collect::<Result<_, _>>())
                    .collect::<Result<_, _>>()?
            };
            for args in alternatives {
                let mut b = LinuxSyscallBuilder::default().names(rule.names.clone());
                b = match rule.errno {
                    Some(e) => b.action(LinuxSeccompAction::ScmpActErrno).errno_ret(e),
                    None => b.action(LinuxSeccompAction::ScmpActAllow),
                };
                if !args.is_empty() {
                    b = b.args(args);
                }
                syscalls.push(b.build()?);
            }
        }
        let architectures = match arch {
            TargetArch::x86_64 => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
            TargetArch::aarch64 => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
            TargetArch::riscv64 => vec![Arch::ScmpArchRiscv64],
        };
        Ok(LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .default_errno_ret(self.default_errno)
            .architectures(architectures)
            .syscalls(syscalls)
            .build()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_CAPS;
    use seccompiler::sock_filter;

    /// The architectures strata builds filters for.
    const ARCHES: [TargetArch; 3] = [TargetArch::x86_64, TargetArch::aarch64, TargetArch::riscv64];

    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_EPERM: u32 = 0x0005_0000 | 1;
    const RET_ENOSYS: u32 = 0x0005_0000 | 38;

    // clone flags (CLONE_*) and SIGCHLD.
    const NEWNS: u64 = 0x0002_0000;
    const NEWUSER: u64 = 0x1000_0000;
    const NEWNET: u64 = 0x4000_0000;
    const VM: u64 = 0x100;
    const VFORK: u64 = 0x4000;
    const CHLD: u64 = 17;

    fn audit_arch(arch: TargetArch) -> u32 {
        match arch {
            TargetArch::x86_64 => 0xc000_003e,
            TargetArch::aarch64 => 0xc000_00b7,
            TargetArch::riscv64 => 0xc000_00f3,
        }
    }

    /// Runs one classic BPF program (the instructions seccompiler emits) over a
    /// `struct seccomp_data` given as its 16 words.
    fn run(prog: &[sock_filter], data: &[u32; 16]) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &prog[pc];
            pc += 1;
            let jump = |cond: bool| usize::from(if cond { i.jt } else { i.jf });
            match i.code {
                0x20 => a = data[(i.k / 4) as usize], // LD W ABS
                0x54 => a &= i.k,                     // ALU AND K
                0x05 => pc += i.k as usize,           // JA
                0x15 => pc += jump(a == i.k),         // JEQ K
                0x25 => pc += jump(a > i.k),          // JGT K
                0x35 => pc += jump(a >= i.k),         // JGE K
                0x45 => pc += jump(a & i.k != 0),     // JSET K
                0x06 => return i.k,                   // RET K
                c => panic!("unexpected BPF instruction {c:#x}"),
            }
        }
    }

    /// What the kernel answers with `progs` installed (in order): the strictest action of
    /// all, the most recently installed program's among equals.
    fn verdict(progs: &[BpfProgram], arch: u32, nr: i64, args: &[u64]) -> u32 {
        let mut data = [0u32; 16];
        data[0] = nr as u32;
        data[1] = arch;
        for (i, v) in args.iter().enumerate() {
            data[4 + 2 * i] = *v as u32;
            data[5 + 2 * i] = (*v >> 32) as u32;
        }
        let mut ret = RET_ALLOW;
        for p in progs.iter().rev() {
            let cur = run(p, &data);
            if ((cur & 0xffff_0000) as i32) < ((ret & 0xffff_0000) as i32) {
                ret = cur;
            }
        }
        ret
    }

    struct Container {
        progs: Vec<BpfProgram>,
        arch: u32,
    }

    impl Container {
        fn new(extra: &[Capability], arch: TargetArch) -> Container {
            let caps: HashSet<Capability> = DEFAULT_CAPS.iter().chain(extra).copied().collect();
            Container {
                progs: filters(&caps, arch).unwrap(),
                arch: audit_arch(arch),
            }
        }

        fn native(extra: &[Capability]) -> Container {
            Container::new(extra, native_arch().unwrap())
        }

        fn call(&self, nr: i64, args: &[u64]) -> u32 {
            verdict(&self.progs, self.arch, nr, args)
        }
    }

    /// The profile's names that none of strata's architectures has (32-bit calls, other
    /// architectures' calls): a name not here must resolve somewhere, which catches typos.
    const FOREIGN: &[&str] = &[
        "_llseek",
        "_newselect",
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "breakpoint",
        "cacheflush",
        "chown32",
        "clock_adjtime64",
        "clock_getres_time64",
        "clock_gettime64",
        "clock_nanosleep_time64",
        "clock_settime64",
        "fadvise64_64",
        "fchown32",
        "fcntl64",
        "fstat64",
        "fstatat64",
        "fstatfs64",
        "ftruncate64",
        "futex_time64",
        "getegid32",
        "geteuid32",
        "getgid32",
        "getgroups32",
        "getresgid32",
        "getresuid32",
        "getuid32",
        "io_pgetevents_time64",
        "ipc",
        "lchown32",
        "lstat64",
        "mmap2",
        "mq_timedreceive_time64",
        "mq_timedsend_time64",
        "ppoll_time64",
        "pselect6_time64",
        "recv",
        "recvmmsg_time64",
        "rt_sigtimedwait_time64",
        "sched_rr_get_interval_time64",
        "semtimedop_time64",
        "send",
        "sendfile64",
        "set_tls",
        "setfsgid32",
        "setfsuid32",
        "setgid32",
        "setgroups32",
        "setregid32",
        "setresgid32",
        "setresuid32",
        "setreuid32",
        "setuid32",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "stat64",
        "statfs64",
        "stime",
        "swapcontext",
        "sync_file_range2",
        "timer_gettime64",
        "timer_settime64",
        "timerfd_gettime64",
        "timerfd_settime64",
        "truncate64",
        "ugetrlimit",
        "umount",
        "utimensat_time64",
        "waitpid",
    ];

    #[test]
    fn seccomp_profile_parses_and_every_name_is_a_system_call() {
        let p = builtin().unwrap();
        let tables: Vec<HashMap<&str, i64>> = ARCHES.iter().map(|a| p.numbers(*a)).collect();
        let unknown: Vec<&str> = p
            .rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .filter(|n| !tables.iter().any(|t| t.contains_key(n)) && !FOREIGN.contains(n))
            .collect();
        assert!(unknown.is_empty(), "not system calls: {unknown:?}");
        // The numbers come out of seccompiler's table as the kernel has them.
        let native = p.numbers(native_arch().unwrap());
        assert_eq!(native["read"], libc_nr(nix::libc::SYS_read));
        assert_eq!(native["openat"], libc_nr(nix::libc::SYS_openat));
        assert_eq!(native["clone3"], libc_nr(nix::libc::SYS_clone3));
        assert_eq!(native["personality"], libc_nr(nix::libc::SYS_personality));
        assert_eq!(native["getxattrat"], 464);
        assert!(!native.contains_key("io_uring_setup"));
    }

    /// A libc system call number as seccompiler's (c_long is i64 on strata's architectures).
    #[allow(clippy::useless_conversion)]
    fn libc_nr(n: nix::libc::c_long) -> i64 {
        i64::from(n)
    }

    #[test]
    fn seccomp_profile_rejects_malformed_rules() {
        let bad = [
            "default_errno = 1\n[[rule]]\nnames = []\n",
            "default_errno = 0\n[[rule]]\nnames = [\"read\"]\n",
            "default_errno = 1\n[[rule]]\nnames = [\"read\"]\narches = [\"sparc\"]\n",
            "default_errno = 1\n[[rule]]\nnames = [\"read\"]\ncaps = [\"CAP_NOPE\"]\n",
            "default_errno = 1\n[[rule]]\nnames = [\"read\"]\nargs = [[{ arg = 6, op = \"eq\", value = 0 }]]\n",
            "default_errno = 1\n[[rule]]\nnames = [\"read\"]\nargs = [[{ arg = 0, op = \"masked_eq\", value = 0 }]]\n",
            "default_errno = 1\n[[rule]]\nnames = [\"read\"]\nallow = true\n",
        ];
        for text in bad {
            assert!(Profile::parse(text).is_err(), "accepted: {text}");
        }
    }

    /// What a container with Docker's default capabilities may call.
    #[test]
    fn seccomp_default_caps_allow_what_docker_allows() {
        use nix::libc::*;
        let c = Container::native(&[]);
        for nr in [
            SYS_read,
            SYS_write,
            SYS_openat,
            SYS_close,
            SYS_execve,
            SYS_exit_group,
            SYS_mmap,
            SYS_futex,
            SYS_rt_sigaction,
            SYS_wait4,
            SYS_ptrace,
            SYS_chroot,
            SYS_capset,
            SYS_prctl,
            SYS_setuid,
            SYS_pidfd_open,
            SYS_name_to_handle_at,
            SYS_seccomp,
        ] {
            assert_eq!(c.call(libc_nr(nr), &[]), RET_ALLOW, "system call {nr}");
        }
        // Linux 6.13's xattr calls, which seccompiler's table does not have yet.
        assert_eq!(c.call(464, &[]), RET_ALLOW);
        // fork, vfork and threads through clone, without new namespaces.
        for flags in [CHLD, VM | VFORK | CHLD, 0x003d_0f00] {
            assert_eq!(
                c.call(libc_nr(SYS_clone), &[flags]),
                RET_ALLOW,
                "{flags:#x}"
            );
        }
        for persona in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(c.call(libc_nr(SYS_personality), &[persona]), RET_ALLOW);
        }
        for family in [1, 2, 10, 16, 17, 39, 41, 44] {
            assert_eq!(
                c.call(libc_nr(SYS_socket), &[family, 1, 0]),
                RET_ALLOW,
                "{family}"
            );
        }
    }

    /// What it may not: RET_EPERM, except clone3 (RET_ENOSYS, for libc to fall back to clone).
    #[test]
    fn seccomp_default_caps_refuse_what_docker_refuses() {
        use nix::libc::*;
        let c = Container::native(&[]);
        for nr in [
            SYS_io_uring_setup,
            SYS_io_uring_enter,
            SYS_io_uring_register,
            SYS_kexec_load,
            SYS_kexec_file_load,
            SYS_init_module,
            SYS_finit_module,
            SYS_delete_module,
            SYS_bpf,
            SYS_perf_event_open,
            SYS_mount,
            SYS_umount2,
            SYS_fsopen,
            SYS_open_tree,
            SYS_move_mount,
            SYS_pivot_root,
            SYS_unshare,
            SYS_setns,
            SYS_keyctl,
            SYS_add_key,
            SYS_request_key,
            SYS_userfaultfd,
            SYS_reboot,
            SYS_swapon,
            SYS_syslog,
            SYS_acct,
            SYS_kcmp,
            SYS_pidfd_getfd,
            SYS_process_madvise,
            SYS_open_by_handle_at,
            SYS_settimeofday,
            SYS_clock_settime,
            SYS_vhangup,
            SYS_mbind,
            SYS_set_mempolicy,
            SYS_move_pages,
            SYS_sethostname,
            SYS_quotactl,
            SYS_lookup_dcookie,
        ] {
            assert_eq!(c.call(libc_nr(nr), &[]), RET_EPERM, "system call {nr}");
        }
        // Numbers no rule names: newer than the profile (open_tree_attr, Linux 6.15), unknown.
        for nr in [467, 999, 0x3fff_ffff] {
            assert_eq!(c.call(nr, &[]), RET_EPERM, "system call {nr}");
        }
        for flags in [NEWUSER | CHLD, NEWNET, NEWNS | VM, 0x7e02_0000] {
            assert_eq!(
                c.call(libc_nr(SYS_clone), &[flags]),
                RET_EPERM,
                "{flags:#x}"
            );
        }
        assert_eq!(c.call(libc_nr(SYS_clone3), &[]), RET_ENOSYS);
        // READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, one with PER_LINUX32, one above the int the
        // kernel reads.
        for persona in [0x0040_0000, 0x0004_0000, 0x0040_0008, 0x1_0040_0000] {
            assert_eq!(c.call(libc_nr(SYS_personality), &[persona]), RET_EPERM);
        }
        // AF_ALG and AF_VSOCK, also with junk in the high half of the int.
        for family in [38, 40, 0x1_0000_0026] {
            assert_eq!(
                c.call(libc_nr(SYS_socket), &[family, 1, 0]),
                RET_EPERM,
                "{family}"
            );
        }
        // Another architecture's system calls (i386 through int 0x80) kill the process.
        assert_eq!(verdict(&c.progs, 0x4000_0003, 0, &[]), RET_KILL_PROCESS);
    }

    #[test]
    fn seccomp_cap_sys_admin_allows_mount_and_namespaces() {
        use nix::libc::*;
        let c = Container::native(&[Capability::SysAdmin]);
        for nr in [
            SYS_mount,
            SYS_umount2,
            SYS_unshare,
            SYS_setns,
            SYS_clone3,
            SYS_bpf,
            SYS_perf_event_open,
            SYS_syslog,
            SYS_sethostname,
            SYS_fsopen,
        ] {
            assert_eq!(c.call(libc_nr(nr), &[]), RET_ALLOW, "system call {nr}");
        }
        assert_eq!(c.call(libc_nr(SYS_clone), &[NEWUSER | CHLD]), RET_ALLOW);
        for nr in [
            SYS_io_uring_setup,
            SYS_kexec_load,
            SYS_init_module,
            SYS_keyctl,
        ] {
            assert_eq!(c.call(libc_nr(nr), &[]), RET_EPERM, "system call {nr}");
        }
        assert_eq!(c.call(libc_nr(SYS_personality), &[0x0040_0000]), RET_EPERM);
    }

    #[test]
    fn seccomp_capabilities_open_their_groups() {
        use Capability::*;
        use nix::libc::*;
        let cases: Vec<(Capability, &[c_long])> = vec![
            (SysPtrace, &[SYS_kcmp, SYS_pidfd_getfd, SYS_process_madvise]),
            (
                SysModule,
                &[SYS_init_module, SYS_finit_module, SYS_delete_module],
            ),
            (SysBoot, &[SYS_reboot]),
            (SysTime, &[SYS_settimeofday, SYS_clock_settime]),
            (SysNice, &[SYS_mbind, SYS_get_mempolicy, SYS_set_mempolicy]),
            (SysPacct, &[SYS_acct]),
            (SysTtyConfig, &[SYS_vhangup]),
            (Syslog, &[SYS_syslog]),
            (Bpf, &[SYS_bpf]),
            (Perfmon, &[SYS_perf_event_open]),
            (DacReadSearch, &[SYS_open_by_handle_at]),
            #[cfg(target_arch = "x86_64")]
            (SysRawio, &[SYS_iopl, SYS_ioperm]),
        ];
        for (cap, calls) in cases {
            let with = Container::native(&[cap]);
            let without = Container::native(&[]);
            for nr in calls {
                assert_eq!(with.call(libc_nr(*nr), &[]), RET_ALLOW, "{cap} {nr}");
                assert_eq!(without.call(libc_nr(*nr), &[]), RET_EPERM, "{nr}");
            }
            // A capability opens its group only.
            assert_eq!(with.call(libc_nr(SYS_mount), &[]), RET_EPERM, "{cap}");
        }
    }

    #[test]
    fn seccomp_filters_for_other_architectures() {
        // aarch64: read 63, personality 92, mount 40, io_uring_setup 425, clone 220.
        let c = Container::new(&[], TargetArch::aarch64);
        assert_eq!(c.call(63, &[]), RET_ALLOW);
        assert_eq!(c.call(92, &[0]), RET_ALLOW);
        assert_eq!(c.call(92, &[0x0040_0000]), RET_EPERM);
        assert_eq!(c.call(40, &[]), RET_EPERM);
        assert_eq!(c.call(425, &[]), RET_EPERM);
        assert_eq!(c.call(220, &[CHLD]), RET_ALLOW);
        assert_eq!(c.call(220, &[NEWUSER]), RET_EPERM);
        assert_eq!(
            verdict(&c.progs, audit_arch(TargetArch::x86_64), 0, &[]),
            RET_KILL_PROCESS
        );
        // riscv64: riscv_flush_icache (259) from the profile's own numbers.
        let c = Container::new(&[], TargetArch::riscv64);
        assert_eq!(c.call(259, &[]), RET_ALLOW);
        assert_eq!(c.call(63, &[]), RET_ALLOW);
        // x86_64's arch_prctl (158) and modify_ldt (154) only there.
        let p = builtin().unwrap();
        let caps: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
        let names = |arch| -> Vec<String> {
            p.select(&caps, arch)
                .iter()
                .flat_map(|r| r.names.clone())
                .collect()
        };
        assert!(names(TargetArch::x86_64).contains(&"arch_prctl".to_string()));
        assert!(!names(TargetArch::aarch64).contains(&"arch_prctl".to_string()));
        let c = Container::new(&[], TargetArch::x86_64);
        assert_eq!(c.call(158, &[]), RET_ALLOW);
        assert_eq!(c.call(154, &[]), RET_ALLOW);
    }

    #[test]
    fn seccomp_oci_section_is_the_same_allowlist() {
        let caps: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
        let j = serde_json::to_value(oci_section(&caps, TargetArch::x86_64).unwrap()).unwrap();
        assert_eq!(j["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(j["defaultErrnoRet"], 1);
        assert_eq!(
            j["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let rules = j["syscalls"].as_array().unwrap();
        let with = |name: &str| -> Vec<&serde_json::Value> {
            rules
                .iter()
                .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
                .collect()
        };
        let read = with("read");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0]["action"], "SCMP_ACT_ALLOW");
        assert!(read[0]["args"].is_null());
        let personality = with("personality");
        assert_eq!(personality.len(), 5);
        assert!(personality.iter().any(|r| r["args"][0]
            == serde_json::json!({"index": 0, "value": 0x20008, "op": "SCMP_CMP_EQ"})));
        let clone = with("clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0]["args"][0],
            serde_json::json!({"index": 0, "value": 0x7e02_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"})
        );
        let clone3 = with("clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], 38);
        assert_eq!(with("socket").len(), 3);
        for name in ["io_uring_setup", "mount", "keyctl", "kexec_load", "bpf"] {
            assert!(with(name).is_empty(), "{name}");
        }
        // With CAP_SYS_ADMIN: mount, clone and clone3 whatever their arguments.
        let mut admin = caps.clone();
        admin.insert(Capability::SysAdmin);
        let j = serde_json::to_value(oci_section(&admin, TargetArch::x86_64).unwrap()).unwrap();
        let rules = j["syscalls"].as_array().unwrap();
        let has = |name: &str| {
            rules
                .iter()
                .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
                .map(|r| (r["action"].clone(), r["args"].is_null()))
                .collect::<Vec<_>>()
        };
        let allow = serde_json::json!("SCMP_ACT_ALLOW");
        assert_eq!(has("mount"), vec![(allow.clone(), true)]);
        assert_eq!(has("clone"), vec![(allow.clone(), true)]);
        assert_eq!(has("clone3"), vec![(allow, true)]);
        assert!(has("io_uring_setup").is_empty());
    }

    #[test]
    fn seccomp_number_table_matches_seccompiler() {
        let p = builtin().unwrap();
        let mut expected = String::new();
        let mut same = true;
        for arch in ARCHES {
            let slow = p.slow_numbers(arch);
            let fast = p.numbers(arch);
            same &= slow == fast;
            expected.push_str(&format!("[{}]\n", arch_name(arch)));
            let mut v: Vec<(&str, i64)> = slow.into_iter().collect();
            v.sort_by_key(|x| (x.1, x.0));
            for (n, nr) in v {
                expected.push_str(&format!("{n} = {nr}\n"));
            }
            expected.push('\n');
        }
        if !same {
            let out = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/seccomp-numbers.toml"
            );
            let _ = std::fs::write(out, &expected);
            panic!("seccomp/numbers.toml is out of date: the expected table is in {out}");
        }
        assert!(number_table().get("x86_64").is_some_and(|t| t.len() > 300));
    }
}

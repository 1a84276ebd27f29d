//! Build script: binds msrp_relay to the Kamailio that is installed here.
//!
//! * version, compile flags and defines come from `kamailio -I` (the module is
//!   refused at load time unless `module_version`/`module_flags` equal the
//!   core's strings, and struct layouts depend on the defines);
//! * the Kamailio source tree (kamailio-headers/fetch.sh) must be the same
//!   version as the binary;
//! * bindgen generates the bindings, `cc` compiles the C shim;
//! * ABI guards: a C probe compiled with the same defines prints the version
//!   strings and struct layouts, which must match `kamailio -I` and bindgen's
//!   layout; every function/variable bound must be exported by the binary.

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compile-flag tokens of `kamailio -I` that are plain `-D` defines.
const KNOWN_FLAGS: &[&str] = &[
    "USE_TCP",
    "USE_TLS",
    "USE_SCTP",
    "TLS_HOOKS",
    "USE_RAW_SOCKS",
    "DISABLE_NAGLE",
    "USE_MCAST",
    "DNS_IP_HACK",
    "SHM_MMAP",
    "PKG_MALLOC",
    "MEM_JOIN_FREE",
    "Q_MALLOC",
    "F_MALLOC",
    "TLSF_MALLOC",
    "DBG_SR_MEMORY",
    "USE_FUTEX",
    "FAST_LOCK",
    "ADAPTIVE_WAIT",
    "USE_DNS_CACHE",
    "USE_DNS_FAILOVER",
    "USE_NAPTR",
    "USE_DST_BLOCKLIST",
    "HAVE_RESOLV_RES",
    "USE_COMP",
    "USE_STUN",
    "NO_DEBUG",
    "NO_LOG",
    "USE_PTHREAD_MUTEX",
    "USE_POSIX_SEM",
    "USE_SYSV_SEM",
    "DBG_QM_MALLOC",
    "DBG_F_MALLOC",
    "DBG_TLSF_MALLOC",
    "SHM_MEM",
    "STATS",
];

/// Defines Debian's build uses that `kamailio -I` does not print
/// (see docs/KAMAILIO-FFI.md; checked against Debian's msrp.so).
const IMPLIED_DEFINES: &[&str] = &[
    "WITH_XAVP",
    "MEM_JOIN_FREE",
    "USE_CORE_STATS",
    "STATISTICS",
    "MALLOC_STATS",
    "CC_GCC_LIKE_ASM",
    "HAVE_GETHOSTBYNAME2",
    "HAVE_UNION_SEMUN",
    "HAVE_SCHED_YIELD",
    "HAVE_MSG_NOSIGNAL",
    "HAVE_MSGHDR_MSG_CONTROL",
    "HAVE_ALLOCA_H",
    "HAVE_TIMEGM",
    "HAVE_SCHED_SETSCHEDULER",
    "HAVE_IP_MREQN",
    "HAVE_EPOLL",
    "HAVE_SIGIO_RT",
    "SIGINFO64_WORKARROUND",
    "HAVE_SELECT",
];

/// Kamailio functions and variables the Rust side calls directly. Every one
/// must be exported by the kamailio binary (checked below).
const BOUND_FUNCTIONS: &[&str] = &[
    "register_procs",
    "cfg_register_child",
    "fork_process",
    "cfg_child_init",
    "fixup_spve_spve",
    "fixup_free_spve_spve",
    "fixup_spve_all",
    "fixup_free_spve_all",
    "fixup_igp_null",
    "fixup_free_igp_null",
    "pv_get_strval",
    "pv_get_sintval",
    "pv_get_null",
    "pv_get_strintval",
    "pv_get_intstrval",
    "my_pid",
    "register_timer",
    "register_trans_mod",
    "sr_kemi_modules_add",
    "counter_register",
    "rpc_register_array",
    "msrp_shim_.*",
];
const BOUND_TYPES: &[&str] = &[
    "module_exports",
    "cmd_export_t",
    "param_export_t",
    "pv_export_t",
    "pv_spec_t",
    "pv_param_t",
    "pv_value_t",
    "rpc_export_t",
    "rpc_t",
    "sip_msg",
    "tr_export_t",
    "sr_kemi_t",
    "trans_t",
    "counter_handle_t",
];
const BOUND_VARS: &[&str] = &[
    "PARAM_STRING",
    "PARAM_INT",
    "PARAM_USE_FUNC",
    "PROC_MAIN",
    "PROC_XWORKER",
    "PROC_RANK127",
    "PROC_INIT",
    "PVT_OTHER",
    "PV_VAL_STR",
    "SR_KEMIP_NONE",
    "SR_KEMIP_INT",
    "SR_KEMIP_STR",
    "L_ERR",
    "L_WARN",
    "L_NOTICE",
    "L_INFO",
    "L_DBG",
    "L_CRIT",
    "L_ALERT",
    "DEFAULT_DLFLAGS",
];

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let hdr_dir = root.join("kamailio-headers");
    let src_root = env::var_os("KAMAILIO_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| hdr_dir.join("src"));
    let kamailio = env::var("KAMAILIO_BIN").unwrap_or_else(|_| "kamailio".to_string());

    println!("cargo:rerun-if-env-changed=KAMAILIO_SRC");
    println!("cargo:rerun-if-env-changed=KAMAILIO_BIN");
    for f in ["wrapper.h", "msrp_shim.h", "msrp_shim.c", "probe.c"] {
        println!("cargo:rerun-if-changed={}", hdr_dir.join(f).display());
    }

    let info = KamailioInfo::read(&kamailio);
    let core_src = src_root.join("src");
    check_source_version(&core_src, &info.version_number);

    let defines = defines(&info);
    let include = core_src.clone();

    // C shim, compiled with the exact defines of the binary.
    let mut cc = cc::Build::new();
    cc.file(hdr_dir.join("msrp_shim.c"))
        .include(&include)
        .include(&hdr_dir)
        .flag("-pthread")
        .flag("-std=gnu99")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-sign-compare")
        .flag_if_supported("-Wno-missing-field-initializers")
        .warnings(false);
    for (k, v) in &defines {
        cc.define(k, v.as_deref());
    }
    cc.compile("msrp_shim");

    // ABI probe with the same compiler and defines.
    let probe = run_probe(&cc, &hdr_dir, &include, &out);
    if probe.version != info.full_version {
        panic!(
            "ABI guard: headers say version {:?} but `{kamailio} -I` says {:?}",
            probe.version, info.full_version
        );
    }
    if probe.flags != info.flags {
        panic!(
            "ABI guard: headers' SER_COMPILE_FLAGS {:?} differ from `{kamailio} -I` {:?}",
            probe.flags, info.flags
        );
    }

    // Bindings.
    let mut b = bindgen::Builder::default()
        .header(hdr_dir.join("wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .clang_arg(format!("-I{}", hdr_dir.display()))
        .clang_arg("-pthread")
        .layout_tests(true)
        .derive_default(true)
        .generate_comments(false)
        .prepend_enum_name(false);
    for (k, v) in &defines {
        b = b.clang_arg(match v {
            Some(v) => format!("-D{k}={v}"),
            None => format!("-D{k}"),
        });
    }
    for f in BOUND_FUNCTIONS {
        b = b.allowlist_function(f);
    }
    for t in BOUND_TYPES {
        b = b.allowlist_type(t);
    }
    for v in BOUND_VARS {
        b = b.allowlist_var(v);
    }
    let bindings = b
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on kamailio headers: {e}"));
    let bindings_path = out.join("bindings.rs");
    bindings
        .write_to_file(&bindings_path)
        .expect("write bindings.rs");

    check_exported_symbols(&kamailio, &bindings_path);

    // Version strings and layout asserts for src/kamailio/sys.rs.
    let mut gen = String::new();
    writeln!(
        gen,
        "/// SER_FULL_VERSION of the installed kamailio (`kamailio -I`).\n\
         pub const SER_FULL_VERSION: &core::ffi::CStr = c{:?};\n\
         /// SER_COMPILE_FLAGS of the installed kamailio.\n\
         pub const SER_COMPILE_FLAGS: &core::ffi::CStr = c{:?};",
        info.full_version, info.flags
    )
    .ok();
    for line in &probe.layout {
        gen.push_str(line);
        gen.push('\n');
    }
    fs::write(out.join("kamailio_abi.rs"), gen).expect("write kamailio_abi.rs");
}

struct KamailioInfo {
    /// "kamailio 5.6.3 (x86_64/linux)"
    full_version: String,
    /// "5.6.3"
    version_number: String,
    /// "USE_TCP, USE_TLS, ..."
    flags: String,
    adaptive_wait_loops: Option<String>,
    compiler: String,
    arch: String,
    os: String,
}

impl KamailioInfo {
    fn read(kamailio: &str) -> Self {
        let output = Command::new(kamailio)
            .arg("-I")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `{kamailio} -I` ({e}): install kamailio first (make deps)")
            });
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let field = |name: &str| -> Option<String> {
            text.lines()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let version_line = field("Version:")
            .unwrap_or_else(|| panic!("`{kamailio} -I` printed no Version line:\n{text}"));
        // Debian appends a repository suffix after the ')'.
        let full_version = match version_line.find(')') {
            Some(i) => version_line[..=i].to_string(),
            None => panic!("unexpected Version line {version_line:?}"),
        };
        let version_number = full_version
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected Version line {version_line:?}"))
            .to_string();
        let flags = field("Compile flags:")
            .unwrap_or_else(|| panic!("`{kamailio} -I` printed no Compile flags line"));
        let arch_os = full_version
            .rsplit_once('(')
            .and_then(|(_, r)| r.strip_suffix(')'))
            .unwrap_or("x86_64/linux")
            .to_string();
        let (arch, os) = arch_os
            .split_once('/')
            .map(|(a, o)| (a.to_string(), o.to_string()))
            .unwrap_or_else(|| ("x86_64".into(), "linux".into()));
        KamailioInfo {
            full_version,
            version_number,
            flags,
            adaptive_wait_loops: field("ADAPTIVE_WAIT_LOOPS="),
            compiler: field("Compiled with:").unwrap_or_else(|| "gcc".into()),
            arch,
            os,
        }
    }
}

fn check_source_version(core_src: &Path, want: &str) {
    let defs = core_src.join("Makefile.defs");
    let text = fs::read_to_string(&defs).unwrap_or_else(|e| {
        panic!(
            "Kamailio source not found at {} ({e}). Run `make headers` \
             (kamailio-headers/fetch.sh) or set KAMAILIO_SRC.",
            defs.display()
        )
    });
    let get = |key: &str| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let have = format!(
        "{}.{}.{}",
        get("VERSION"),
        get("PATCHLEVEL"),
        get("SUBLEVEL")
    );
    if have != want {
        panic!(
            "Kamailio source at {} is version {have}, but the installed kamailio is {want}: \
             refusing to build against mismatched headers (re-run kamailio-headers/fetch.sh)",
            core_src.display()
        );
    }
}

fn defines(info: &KamailioInfo) -> Vec<(String, Option<String>)> {
    let mut set: Vec<(String, Option<String>)> = Vec::new();
    for token in info
        .flags
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let names: Vec<&str> = match token {
            "TLS_PTHREAD_MUTEX_SHARED" => vec!["KSR_PTHREAD_MUTEX_SHARED"],
            t if t.contains('-') => t.split('-').collect(),
            t => vec![t],
        };
        for n in names {
            if n != "KSR_PTHREAD_MUTEX_SHARED" && !KNOWN_FLAGS.contains(&n) {
                panic!(
                    "unknown kamailio compile flag {n:?} in {:?}: extend KNOWN_FLAGS in build.rs \
                     after checking what it means in src/Makefile.defs",
                    info.flags
                );
            }
            set.push((n.to_string(), None));
            if n == "ADAPTIVE_WAIT" {
                let loops = info
                    .adaptive_wait_loops
                    .clone()
                    .unwrap_or_else(|| "1024".into());
                set.push(("ADAPTIVE_WAIT_LOOPS".into(), Some(loops)));
            }
        }
    }
    for d in IMPLIED_DEFINES {
        // MEM_JOIN_FREE is in the flags string from Kamailio 6.0 on.
        if !set.iter().any(|(k, _)| k == d) {
            set.push((d.to_string(), None));
        }
    }
    let mut parts = info
        .version_number
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (ma, mi, pa) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    let q = |s: &str| Some(format!("\"{s}\""));
    set.push(("NAME".into(), q("kamailio")));
    set.push(("VERSION".into(), q(&info.version_number)));
    set.push(("ARCH".into(), q(&info.arch)));
    set.push(("OS".into(), Some(format!("{}_", info.os))));
    set.push(("OS_QUOTED".into(), q(&info.os)));
    set.push(("COMPILER".into(), q(&info.compiler)));
    set.push((
        "VERSIONVAL".into(),
        Some((ma * 1_000_000 + mi * 1000 + pa).to_string()),
    ));
    set.push((format!("__CPU_{}", info.arch), None));
    set.push((format!("__OS_{}", info.os), None));
    set.push(("CFG_DIR".into(), q("/etc/kamailio/")));
    set.push(("SHARE_DIR".into(), q("/usr/share/kamailio/")));
    set.push(("RUN_DIR".into(), q("/run/kamailio/")));
    set.push(("MOD_NAME".into(), q("msrp_relay")));
    set
}

struct Probe {
    version: String,
    flags: String,
    layout: Vec<String>,
}

fn rust_type(c: &str) -> String {
    match c {
        "str" => "_str".to_string(),
        t => t.strip_prefix("struct ").unwrap_or(t).to_string(),
    }
}

fn run_probe(cc: &cc::Build, hdr_dir: &Path, include: &Path, out: &Path) -> Probe {
    let compiler = cc.get_compiler();
    let exe = out.join("kamailio_probe");
    let mut cmd = compiler.to_command();
    cmd.arg(hdr_dir.join("probe.c"))
        .arg(format!("-I{}", include.display()))
        .arg(format!("-I{}", hdr_dir.display()))
        .arg("-o")
        .arg(&exe);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run C compiler for the ABI probe: {e}"));
    if !status.success() {
        panic!("ABI probe failed to compile: {cmd:?}");
    }
    let output = Command::new(&exe).output().expect("run ABI probe");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut probe = Probe {
        version: String::new(),
        flags: String::new(),
        layout: Vec::new(),
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("version ") {
            probe.version = v.to_string();
        } else if let Some(v) = line.strip_prefix("flags ") {
            probe.flags = v.to_string();
        } else if let Some(rest) = line.strip_prefix("size ") {
            let (ty, n) = rest.rsplit_once(' ').expect("probe size line");
            probe.layout.push(format!(
                "const _: () = assert!(core::mem::size_of::<{}>() == {n}, \"ABI: size of {ty}\");",
                rust_type(ty)
            ));
        } else if let Some(rest) = line.strip_prefix("offset ") {
            let (ty_field, n) = rest.rsplit_once(' ').expect("probe offset line");
            let (ty, field) = ty_field.rsplit_once(' ').expect("probe offset line");
            probe.layout.push(format!(
                "const _: () = assert!(core::mem::offset_of!({}, {field}) == {n}, \"ABI: offset of {ty}.{field}\");",
                rust_type(ty)
            ));
        }
    }
    // the probe is compiled with the same defines as the shim
    let _ = cc;
    probe
}

/// Every function and variable in the bindings (except the shim's own) must be
/// exported by the kamailio binary: a prototype in a header can be a macro in
/// disguise, and dlopen would then fail with "undefined symbol".
fn check_exported_symbols(kamailio: &str, bindings: &Path) {
    let path = which(kamailio).unwrap_or_else(|| PathBuf::from(kamailio));
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run nm on {} ({e}): install binutils",
                path.display()
            )
        });
    let exported: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(|s| s.to_string()))
        .collect();
    if exported.is_empty() {
        panic!("nm found no exported symbols in {}", path.display());
    }
    let text = fs::read_to_string(bindings).expect("read bindings");
    let mut missing = Vec::new();
    let mut in_extern = false;
    for line in text.lines() {
        if line.starts_with("extern \"C\" {") || line.starts_with("unsafe extern \"C\" {") {
            in_extern = true;
            continue;
        }
        if line.starts_with('}') {
            in_extern = false;
        }
        if !in_extern {
            continue;
        }
        let l = line.trim();
        let name = l
            .strip_prefix("pub fn ")
            .or_else(|| l.strip_prefix("pub static mut "))
            .and_then(|r| r.split(['(', ':', '<']).next())
            .map(str::trim);
        if let Some(n) = name {
            if !n.starts_with("msrp_shim_") && !exported.contains(n) {
                missing.push(n.to_string());
            }
        }
    }
    if !missing.is_empty() {
        panic!(
            "ABI guard: bound symbols not exported by {}: {missing:?}",
            path.display()
        );
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    if bin.contains('/') {
        return Some(PathBuf::from(bin));
    }
    env::var_os("PATH").and_then(|p| {
        env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|c| c.is_file())
    })
}

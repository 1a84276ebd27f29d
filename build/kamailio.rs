//! The installed Kamailio: what `kamailio -I` says, the version of the
//! source tree the headers come from, and the `-D` set both imply.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::lists::{IMPLIED_DEFINES, KNOWN_FLAGS};

pub struct KamailioInfo {
    /// "kamailio 5.6.3 (x86_64/linux)"
    pub full_version: String,
    /// "5.6.3"
    pub version_number: String,
    /// "USE_TCP, USE_TLS, ..."
    pub flags: String,
    adaptive_wait_loops: Option<String>,
    compiler: String,
    arch: String,
    os: String,
}

impl KamailioInfo {
    pub fn read(kamailio: &str) -> Self {
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

pub fn check_source_version(core_src: &Path, want: &str) {
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

pub fn defines(info: &KamailioInfo) -> Vec<(String, Option<String>)> {
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
                    "unknown kamailio compile flag {n:?} in {:?}: extend KNOWN_FLAGS in build/lists.rs \
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

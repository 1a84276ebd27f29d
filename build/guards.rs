//! ABI guards: a C probe compiled with the shim's defines prints the
//! version strings and struct layouts (which must match `kamailio -I` and
//! become const asserts against bindgen's layout), and every bound
//! function and variable must be exported by the kamailio binary.

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Probe {
    pub version: String,
    pub flags: String,
    pub layout: Vec<String>,
}

fn rust_type(c: &str) -> String {
    match c {
        "str" => "_str".to_string(),
        t => t.strip_prefix("struct ").unwrap_or(t).to_string(),
    }
}

pub fn run_probe(cc: &cc::Build, hdr_dir: &Path, include: &Path, out: &Path) -> Probe {
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
pub fn check_exported_symbols(kamailio: &str, bindings: &Path) {
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

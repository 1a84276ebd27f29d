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

#[path = "build/guards.rs"]
mod guards;
#[path = "build/kamailio.rs"]
mod kamailio;
#[path = "build/lists.rs"]
mod lists;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use guards::{check_exported_symbols, run_probe, Probe};
use kamailio::{check_source_version, defines, KamailioInfo};
use lists::{BOUND_FUNCTIONS, BOUND_TYPES, BOUND_VARS};

/// A define: name and optional value.
type Define = (String, Option<String>);

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
    for f in ["guards.rs", "kamailio.rs", "lists.rs"] {
        println!(
            "cargo:rerun-if-changed={}",
            root.join("build").join(f).display()
        );
    }

    let info = KamailioInfo::read(&kamailio);
    let include = src_root.join("src");
    check_source_version(&include, &info.version_number);
    let defines = defines(&info);

    let cc = compile_shim(&hdr_dir, &include, &defines);
    let probe = run_probe(&cc, &hdr_dir, &include, &out);
    check_probe(&probe, &info, &kamailio);
    let bindings_path = generate_bindings(&hdr_dir, &include, &defines, &out);
    check_exported_symbols(&kamailio, &bindings_path);
    write_abi(&info, &probe, &out);
}

/// The C shim, compiled with the exact defines of the binary.
fn compile_shim(hdr_dir: &Path, include: &Path, defines: &[Define]) -> cc::Build {
    let mut cc = cc::Build::new();
    cc.file(hdr_dir.join("msrp_shim.c"))
        .include(include)
        .include(hdr_dir)
        .flag("-pthread")
        .flag("-std=gnu99")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-sign-compare")
        .flag_if_supported("-Wno-missing-field-initializers")
        .warnings(false);
    for (k, v) in defines {
        cc.define(k, v.as_deref());
    }
    cc.compile("msrp_shim");
    cc
}

/// The probe, compiled with the same compiler and defines, must print the
/// binary's own version and flags strings.
fn check_probe(probe: &Probe, info: &KamailioInfo, kamailio: &str) {
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
}

/// bindgen over wrapper.h with the same defines; returns the file written.
fn generate_bindings(hdr_dir: &Path, include: &Path, defines: &[Define], out: &Path) -> PathBuf {
    let mut b = bindgen::Builder::default()
        .header(hdr_dir.join("wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .clang_arg(format!("-I{}", hdr_dir.display()))
        .clang_arg("-pthread")
        .layout_tests(true)
        .derive_default(true)
        .generate_comments(false)
        .prepend_enum_name(false);
    for (k, v) in defines {
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
    let path = out.join("bindings.rs");
    bindings.write_to_file(&path).expect("write bindings.rs");
    path
}

/// Version strings and layout asserts for src/kamailio/sys.rs.
fn write_abi(info: &KamailioInfo, probe: &Probe, out: &Path) {
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

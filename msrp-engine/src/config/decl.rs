//! The module parameters' declaration machinery: what a parameter is
//! ([`ParamDecl`]: name, kind, default, range, doc), and the `Param` enum,
//! the `PARAMS` table and `ConfigBuilder::set` generated from the one
//! `modparams!` list in the parent module.

use std::ffi::CStr;
use std::time::Duration;

use super::{
    alias_name, callback_name, dns_server, file_path, origin, parse_listen, sni_cert, tls_version,
    use_path_host, verify_client, ConfigBuilder, ConfigError,
};

/// An integer parameter's default and allowed values.
#[derive(Debug, Clone, Copy)]
pub struct IntSpec {
    pub default: i64,
    pub min: i64,
    pub max: i64,
    /// A value outside `min..=max` that is allowed too, and what it means.
    pub special: Option<(i64, &'static str)>,
}

impl IntSpec {
    /// Fails the build when the default is not an allowed value or a bound
    /// is negative (every [`FromInt`] target is unsigned).
    pub const fn new(
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        special: Option<(i64, &'static str)>,
    ) -> IntSpec {
        let spec = IntSpec {
            default,
            min: *range.start(),
            max: *range.end(),
            special,
        };
        assert!(spec.min >= 0 && spec.min <= spec.max, "bad modparam range");
        assert!(spec.allows(default), "modparam default out of range");
        spec
    }

    pub const fn allows(&self, v: i64) -> bool {
        (v >= self.min && v <= self.max) || matches!(self.special, Some((s, _)) if s == v)
    }

    /// The allowed values as error messages and the README show them.
    pub fn range_text(&self) -> String {
        match self.special {
            Some((s, _)) => format!("{s} or {}..={}", self.min, self.max),
            None => format!("{}..={}", self.min, self.max),
        }
    }

    pub(super) fn check(&self, name: &'static str, value: i64) -> Result<i64, ConfigError> {
        if self.allows(value) {
            Ok(value)
        } else {
            Err(ConfigError::OutOfRange {
                name,
                value,
                range: self.range_text(),
            })
        }
    }
}

/// What a parameter takes.
#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    Int(IntSpec),
    /// One string; `default` documents what applies when it is not set.
    Str {
        default: &'static str,
    },
    /// A repeatable string.
    StrList {
        default: &'static str,
    },
    /// Any integer, without effect (stock `msrp` compatibility).
    Accepted,
}

impl ParamKind {
    /// Whether Kamailio hands the value over as a string (PARAM_STRING).
    pub const fn takes_string(&self) -> bool {
        matches!(self, ParamKind::Str { .. } | ParamKind::StrList { .. })
    }

    pub(super) fn type_text(&self) -> &'static str {
        match self {
            ParamKind::Int(_) => "int",
            ParamKind::Str { .. } => "string",
            ParamKind::StrList { .. } => "string, repeatable",
            ParamKind::Accepted => "int, ignored",
        }
    }
}

/// One declared module parameter.
#[derive(Debug, Clone, Copy)]
pub struct ParamDecl {
    pub name: &'static str,
    /// `name` NUL-terminated, for Kamailio's tables.
    pub c_name: &'static CStr,
    pub kind: ParamKind,
    /// One line: what the parameter does.
    pub doc: &'static str,
}

/// A value Kamailio passed for a parameter.
#[derive(Debug, Clone, Copy)]
pub enum ParamValue<'a> {
    Int(i64),
    Str(&'a str),
}

/// Converts a range-checked (hence non-negative) integer parameter into the
/// type of its [`Config`] field.
pub trait FromInt {
    fn from_int(v: i64) -> Self;
}

impl FromInt for usize {
    fn from_int(v: i64) -> Self {
        usize::try_from(v.max(0)).unwrap_or(usize::MAX)
    }
}

impl FromInt for u32 {
    fn from_int(v: i64) -> Self {
        u32::try_from(v.max(0)).unwrap_or(u32::MAX)
    }
}

impl FromInt for u64 {
    fn from_int(v: i64) -> Self {
        u64::try_from(v.max(0)).unwrap_or(u64::MAX)
    }
}

impl FromInt for bool {
    fn from_int(v: i64) -> Self {
        v != 0
    }
}

/// Seconds.
impl FromInt for Duration {
    fn from_int(v: i64) -> Self {
        Duration::from_secs(u64::from_int(v))
    }
}

/// `concat!(name, "\0")` as a `&CStr`, checked at compile time.
const fn c_name(with_nul: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("modparam name must not contain NUL"),
    }
}

/// `ParamKind` of a declaration item.
macro_rules! param_kind {
    (int { default: $d:expr, range: $r:expr, $(special: $s:literal => $sd:literal,)? set: $($f:ident).+ $(,)? }) => {
        ParamKind::Int(IntSpec::new($d, $r, param_kind!(@special $($s, $sd)?)))
    };
    (string { parse: $p:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        ParamKind::Str { default: $d }
    };
    (strings { parse: $p:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        ParamKind::StrList { default: $d }
    };
    (accepted {}) => {
        ParamKind::Accepted
    };
    (@special) => { None };
    (@special $s:literal, $sd:literal) => { Some(($s, $sd)) };
}

/// Stores value `$v` of `$p` into `$b` ([`ConfigBuilder`]).
macro_rules! param_set {
    ($b:ident, $p:ident, $v:ident, int { default: $d:expr, range: $r:expr, $(special: $s:literal => $sd:literal,)? set: $($f:ident).+ $(,)? }) => {
        if let Some(i) = $b.int($p, $v)? {
            $b.config.$($f).+ = FromInt::from_int(i);
        }
    };
    ($b:ident, $p:ident, $v:ident, string { parse: $parse:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        $b.config.$($f).+ = $parse($b.string($p, $v)?)?
    };
    ($b:ident, $p:ident, $v:ident, strings { parse: $parse:path, default: $d:literal, set: $($f:ident).+ $(,)? }) => {
        $b.config.$($f).+.push($parse($b.string($p, $v)?)?)
    };
    ($b:ident, $p:ident, $v:ident, accepted {}) => {
        $b.int($p, $v).map(drop)?
    };
}

/// Generates [`Param`], [`PARAMS`] and [`ConfigBuilder::set`] from the
/// declaration.
macro_rules! declare_params {
    ($( $(#[doc = $doc:literal])+ $id:ident $name:literal $kind:ident { $($spec:tt)* } )*) => {
        /// A declared module parameter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Param {
            $( #[doc = concat!("`", $name, "`")] $id, )*
        }

        /// Every parameter, in declaration order (`PARAMS[p as usize]`
        /// declares `p`).
        pub const PARAMS: &[ParamDecl] = &[
            $( ParamDecl {
                name: $name,
                c_name: c_name(concat!($name, "\0")),
                kind: param_kind!($kind { $($spec)* }),
                doc: concat!($($doc),+),
            }, )*
        ];

        impl Param {
            pub const ALL: &'static [Param] = &[ $(Param::$id),* ];
            pub const COUNT: usize = Param::ALL.len();

            pub const fn decl(self) -> &'static ParamDecl {
                &PARAMS[self as usize]
            }
        }

        impl ConfigBuilder {
            /// `modparam("msrp_relay", p, v)`. A string that does not parse
            /// is an error now (Kamailio refuses the modparam line); an
            /// integer out of range is kept for [`ConfigBuilder::build`],
            /// which reports all of them together.
            pub fn set(&mut self, p: Param, v: ParamValue<'_>) -> Result<(), ConfigError> {
                match p {
                    $( Param::$id => { param_set!(self, p, v, $kind { $($spec)* }); } )*
                }
                Ok(())
            }
        }
    };
}

modparams!(declare_params);

impl Param {
    /// The parameter's [`IntSpec`]; a compile error (in const context) for
    /// a parameter that is not an `int`.
    pub const fn int_spec(self) -> IntSpec {
        match self.decl().kind {
            ParamKind::Int(spec) => spec,
            _ => panic!("not an int modparam"),
        }
    }
}

/// The README's parameter table, rendered from the declaration.
pub fn readme_table() -> String {
    let mut t =
        String::from("| name | type | default | range | meaning |\n|---|---|---|---|---|\n");
    for d in PARAMS {
        let (default, range) = match d.kind {
            ParamKind::Int(spec) => {
                let range = match spec.special {
                    Some((s, what)) => format!("`{}..={}`; `{s}` = {what}", spec.min, spec.max),
                    None => format!("`{}..={}`", spec.min, spec.max),
                };
                (format!("`{}`", spec.default), range)
            }
            ParamKind::Str { default } | ParamKind::StrList { default } => {
                (default.to_string(), "—".to_string())
            }
            ParamKind::Accepted => ("—".to_string(), "any".to_string()),
        };
        t.push_str(&format!(
            "| `{}` | {} | {default} | {range} | {} |\n",
            d.name,
            d.kind.type_text(),
            d.doc.trim()
        ));
    }
    t
}

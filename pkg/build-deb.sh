#!/usr/bin/env bash
# Builds kamailio-msrp-relay-module_<version>_<arch>.deb from a built module
# (`make deb` calls this after `make build`):
#   pkg/build-deb.sh MODULE_SO OUT_DIR
# The package installs msrp_relay.so into the module directory of the
# kamailio it was built for ("Default paths to modules" of `kamailio -I`),
# README, the example configs (kamailio-tls.cfg with make-certs.sh,
# kamailio-auth.cfg with msrp-auth-db.sh) and the browser client
# examples/web/ under
# /usr/share/doc/kamailio-msrp-relay-module/,
# and depends on the Debian kamailio packages of the upstream version it was
# built against, any Debian revision: kamailio (>= 5.6.3), kamailio (<< 5.6.4~).
# That is the range the core's own check accepts at load time (module_version
# must equal "kamailio 5.6.3 (x86_64/linux)"), so a security update of the
# same upstream version (5.6.3-2+deb12u1) is not held back by apt.
# Version: <crate version>+kamailio<kamailio version>, e.g. 0.1.0+kamailio5.6.3.
set -euo pipefail

so=${1:?"usage: $0 MODULE_SO OUT_DIR"}
out=${2:?"usage: $0 MODULE_SO OUT_DIR"}
here=$(cd "$(dirname "$0")/.." && pwd)
name=kamailio-msrp-relay-module
maintainer=${DEB_MAINTAINER:-"msrp_relay maintainers <root@localhost>"}
die() { echo "build-deb.sh: $*" >&2; exit 1; }

[ -f "$so" ] || die "module $so not found: run 'make build' first"
kamailio=$(command -v kamailio) || die "kamailio not found in PATH: the package is built for Debian's kamailio package"
owner=$(dpkg-query -S "$(readlink -f "$kamailio")" 2>/dev/null | cut -d: -f1 || true)
[ "$owner" = kamailio ] \
  || die "$kamailio is not from Debian's kamailio package (a Kamailio built from source?): a .deb can only depend on a Debian kamailio; install the module with 'make install' instead"
kam_deb_version=$(dpkg-query -W -f='${Version}' kamailio)
info=$("$kamailio" -I)
kam_version=$(sed -n 's/^ *Version: kamailio \([0-9.]*\) .*/\1/p' <<<"$info")
full_version=$(sed -n 's/^ *Version: \(kamailio [^)]*)\).*/\1/p' <<<"$info")
moddir=$(sed -n 's/^ *Default paths to modules: *\([^:]*\).*/\1/p' <<<"$info")
[ -n "$kam_version" ] && [ -n "$moddir" ] || die "cannot read the version and module directory from '$kamailio -I'"
# Depends range: the same upstream version with any Debian revision (and the
# package's epoch, if it has one); "~" sorts before everything, so
# "<< 5.6.4~" also excludes 5.6.4 pre-releases such as 5.6.4~rc1.
epoch=""
[[ "$kam_deb_version" == *:* ]] && epoch="${kam_deb_version%%:*}:"
[[ "$kam_version" =~ ^(.*\.)?([0-9]+)$ ]] || die "cannot read the upstream version '$kam_version'"
kam_next="${BASH_REMATCH[1]}$((BASH_REMATCH[2] + 1))"
kam_depends="kamailio (>= $epoch$kam_version), kamailio (<< $epoch$kam_next~)"
dpkg --compare-versions "$kam_deb_version" ge "$epoch$kam_version" \
  && dpkg --compare-versions "$kam_deb_version" lt "$epoch$kam_next~" \
  || die "the installed kamailio $kam_deb_version is outside '$kam_depends' (its upstream version is not $kam_version?)"
# The module carries the core version it was built for (module_version):
# refuse to package a module built for another Kamailio.
grep -qaF "$full_version" "$so" \
  || die "$so was not built for $full_version (built against another Kamailio? run 'make build' without KAMAILIO_SRC)"

crate_version=$(awk -F'"' '/^\[package\]/{p=1;next} /^\[/{p=0} p && /^version *=/{print $2; exit}' "$here/Cargo.toml")
[ -n "$crate_version" ] || die "no [package] version in $here/Cargo.toml"
version="$crate_version+kamailio$kam_version"
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
doc="$stage/usr/share/doc/$name"
umask 022
mkdir -p "$stage/DEBIAN" "$stage$moddir" "$doc/examples"
# Debug info stripped (1 MB instead of 8); .symtab stays for backtraces.
objcopy --strip-debug "$so" "$stage$moddir/msrp_relay.so"
chmod 0644 "$stage$moddir/msrp_relay.so"
install -m 0644 "$here/README.md" "$doc/README.md"
install -m 0644 "$here"/cfg/*.cfg "$here"/cfg/*.lua "$doc/examples/"
# test certificates for kamailio-tls.cfg (openssl)
install -m 0755 "$here/scripts/make-certs.sh" "$doc/examples/"
# the browser client (README: TLS and WebSocket, In a browser)
install -d "$doc/examples/web"
install -m 0644 "$here"/examples/web/*.html "$here"/examples/web/*.js "$here"/examples/web/*.css "$doc/examples/web/"
# the credentials database of kamailio-auth.cfg (sqlite3)
install -m 0755 "$here/scripts/msrp-auth-db.sh" "$doc/examples/"
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: msrp_relay

Files: *
License: GPL-2.0-or-later
 On Debian systems, the full text of the GNU General Public License
 version 2 can be found in /usr/share/common-licenses/GPL-2.
COPYRIGHT

# Shared-library dependencies of the module itself (libc6, libgcc-s1).
mkdir -p "$work/shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$name" "$name" > "$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$stage$moddir/msrp_relay.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependencies of msrp_relay.so"

cat > "$stage/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $kam_depends, $shlibs
Suggests: kamailio-lua-modules, kamailio-sqlite-modules, sqlite3
Section: net
Priority: optional
Description: MSRP relay module for Kamailio (msrp_relay)
 A Kamailio module, written in Rust, that makes Kamailio an MSRP relay
 (RFC 4975 / RFC 4976): it owns its MSRP sockets, streams messages of any
 size in bounded memory, re-chunks SENDs, answers and sends REPORTs, and
 runs event_route[msrp:frame-in] for every frame.
 .
 Built for kamailio $kam_version ($full_version; Debian $kam_deb_version);
 any Debian revision of kamailio $kam_version loads it. loadmodule "msrp_relay.so".
 Example configurations are in /usr/share/doc/$name/examples/.
CONTROL
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum > DEBIAN/md5sums)

mkdir -p "$out"
deb="$out/${name}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"

#!/usr/bin/env bash
# Obtain the Kamailio source tree that matches the installed kamailio binary,
# from Debian's source package, verify it, and unpack it into $1
# (default: kamailio-headers/src, which git ignores). Never committed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-"$here/src"}
stamp="$dest/.msrp_relay_source_ok"

# Version of the installed binary, e.g. "5.6.3".
bin_version=$(kamailio -I 2>/dev/null | sed -n 's/^ *Version: kamailio \([0-9.]*\) .*/\1/p')
[ -n "$bin_version" ] || { echo "fetch.sh: cannot read the version from 'kamailio -I' (is kamailio installed?)" >&2; exit 1; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$bin_version" ]; then
  exit 0
fi

# Debian's source package needs a deb-src entry.
if ! apt-get source --download-only --print-uris kamailio >/dev/null 2>&1; then
  echo "fetch.sh: enabling deb-src for Debian main" >&2
  . /etc/os-release
  cat > /etc/apt/sources.list.d/msrp-relay-deb-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME} ${VERSION_CODENAME}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq
fi

pkg_version=$(dpkg-query -W -f='${Version}' kamailio)
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source --download-only "kamailio=$pkg_version" >/dev/null)

dsc=$(ls "$work"/kamailio_*.dsc)
# Verify every file the .dsc lists by its SHA-256 sum.
awk '/^Checksums-Sha256:/{on=1;next} /^[^ ]/{on=0} on && NF==3 {print $1"  "$3}' "$dsc" > "$work/sums"
[ -s "$work/sums" ] || { echo "fetch.sh: no SHA-256 sums in $dsc" >&2; exit 1; }
(cd "$work" && sha256sum --quiet -c sums) || { echo "fetch.sh: SHA-256 mismatch in Debian source package" >&2; exit 1; }

orig=$(ls "$work"/kamailio_*.orig.tar.* | head -n1)
rm -rf "$dest"
mkdir -p "$dest"
tar -xf "$orig" -C "$dest" --strip-components=1

mk="$dest/src/Makefile.defs"
src_version=$(awk -F'= *' '/^VERSION *=/{v=$2} /^PATCHLEVEL *=/{p=$2} /^SUBLEVEL *=/{s=$2} END{print v"."p"."s}' "$mk" | tr -d ' ')
if [ "$src_version" != "$bin_version" ]; then
  echo "fetch.sh: source version $src_version does not match installed kamailio $bin_version" >&2
  exit 1
fi
echo "$bin_version" > "$stamp"
echo "fetch.sh: Kamailio $src_version source ready in $dest" >&2

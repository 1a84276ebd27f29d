#!/usr/bin/env bash
# Check that a Kamailio source tree the operator already has ($1, e.g. from
# KAMAILIO_SRC=/path/to/kamailio-5.8.4 make build) is the same version as the
# kamailio binary the module will be built for and loaded into
# (${KAMAILIO_BIN:-kamailio} -I). build.rs checks the same again; this check
# runs first so that a wrong tree stops `make` with a clear message before
# any compiling.
set -euo pipefail

src=${1:?"usage: $0 /path/to/kamailio-source (the top directory, holding src/Makefile.defs)"}
kamailio=${KAMAILIO_BIN:-kamailio}

defs="$src/src/Makefile.defs"
if [ ! -f "$defs" ]; then
  echo "check-src.sh: KAMAILIO_SRC=$src is not a Kamailio source tree: $defs not found" >&2
  echo "  (point KAMAILIO_SRC at the top directory of the unpacked kamailio source)" >&2
  exit 1
fi
src_version=$(awk -F'=' '
  $1 ~ /^[ \t]*VERSION[ \t]*$/    {gsub(/[ \t]/, "", $2); v=$2}
  $1 ~ /^[ \t]*PATCHLEVEL[ \t]*$/ {gsub(/[ \t]/, "", $2); p=$2}
  $1 ~ /^[ \t]*SUBLEVEL[ \t]*$/   {gsub(/[ \t]/, "", $2); s=$2}
  END {print v "." p "." s}' "$defs")

if ! info=$("$kamailio" -I 2>/dev/null); then
  echo "check-src.sh: cannot run '$kamailio -I': put the Kamailio the module is for first in PATH (or set KAMAILIO_BIN)" >&2
  exit 1
fi
bin_version=$(sed -n 's/^ *Version: kamailio \([0-9.]*\) .*/\1/p' <<<"$info")
if [ -z "$bin_version" ]; then
  echo "check-src.sh: '$kamailio -I' printed no 'Version: kamailio X.Y.Z' line" >&2
  exit 1
fi

if [ "$src_version" != "$bin_version" ]; then
  echo "check-src.sh: KAMAILIO_SRC=$src is Kamailio $src_version, but $(command -v "$kamailio" || echo "$kamailio") is $bin_version." >&2
  echo "  The module must be built from the headers of the exact Kamailio it is loaded into:" >&2
  echo "  point KAMAILIO_SRC at the $bin_version source, or put that Kamailio's sbin first in PATH." >&2
  exit 1
fi
major=${bin_version%%.*}
minor=${bin_version#*.}; minor=${minor%%.*}
if [ "$major" -lt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -lt 6 ]; }; then
  echo "check-src.sh: Kamailio $bin_version is older than 5.6, which msrp_relay needs" >&2
  exit 1
fi
echo "check-src.sh: Kamailio $src_version source at $src matches $(command -v "$kamailio" || echo "$kamailio")" >&2

#!/usr/bin/env bash
# Tests kamailio-headers/check-src.sh (the KAMAILIO_SRC check of `make build`)
# with fake source trees: one of the installed kamailio's version passes, one
# of another version and a directory that is no source tree fail with a
# message that names both versions / the missing file.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
check="$here/kamailio-headers/check-src.sh"
version=$(kamailio -I 2>/dev/null | sed -n 's/^ *Version: kamailio \([0-9]*\)\.\([0-9]*\)\.\([0-9]*\) .*/\1 \2 \3/p')
[ -n "$version" ] || { echo "check-src test: cannot read the version of 'kamailio -I'" >&2; exit 1; }
read -r major minor sub <<<"$version"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fake_tree() { # dir major minor sub
  mkdir -p "$1/src"
  printf 'VERSION = %s\nPATCHLEVEL = %s\nSUBLEVEL = %s\nEXTRAVERSION =\n' "$2" "$3" "$4" > "$1/src/Makefile.defs"
}
fail() { echo "check-src test FAILED: $*" >&2; exit 1; }

fake_tree "$tmp/same" "$major" "$minor" "$sub"
"$check" "$tmp/same" 2>"$tmp/out" || fail "a tree of the installed version $major.$minor.$sub was refused: $(cat "$tmp/out")"

fake_tree "$tmp/other" "$major" "$minor" "$((sub + 1))"
if "$check" "$tmp/other" 2>"$tmp/out"; then fail "a tree of version $major.$minor.$((sub + 1)) was accepted"; fi
grep -q "is Kamailio $major.$minor.$((sub + 1)), but .* is $major.$minor.$sub" "$tmp/out" \
  || fail "unclear message for a tree of another version: $(cat "$tmp/out")"

mkdir -p "$tmp/empty"
if "$check" "$tmp/empty" 2>"$tmp/out"; then fail "a directory without src/Makefile.defs was accepted"; fi
grep -q "is not a Kamailio source tree" "$tmp/out" || fail "unclear message for a non-tree: $(cat "$tmp/out")"

# And through make: `KAMAILIO_SRC=<other version> make headers` stops.
if make -s -C "$here" headers KAMAILIO_SRC="$tmp/other" >"$tmp/out" 2>&1; then
  fail "make headers accepted KAMAILIO_SRC of another version"
fi
grep -q "is Kamailio $major.$minor.$((sub + 1))" "$tmp/out" || fail "make headers: unclear message: $(cat "$tmp/out")"
echo "check-src test: ok (same version accepted; other version and non-tree refused with a clear message)"

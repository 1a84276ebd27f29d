#!/usr/bin/env bash
# The size rule of the code (issue 18): no source file over 500 lines, tests
# aside. Counts each .rs file of the crates up to its `#[cfg(test)]` module
# (unit tests at the end of a file do not count); files that are tests
# (tests/ directories, tests.rs) are skipped. Functions over 80 lines are
# clippy's `too_many_lines` (clippy.toml), checked by `make lint`.
set -euo pipefail
cd "$(dirname "$0")/../.."
max=500
bad=0
while IFS= read -r f; do
  n=$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n + 0 }' "$f")
  if [ "$n" -gt "$max" ]; then
    echo "check-sizes: $f has $n lines before its tests (at most $max)" >&2
    bad=1
  fi
done < <(find msrp-core/src msrp-engine/src msrp-tools/src src -name '*.rs' \
           -not -path '*/tests/*' -not -name 'tests.rs' | sort)
[ "$bad" -eq 0 ] && echo "check-sizes: ok (no source file over $max lines, tests aside)"
exit "$bad"

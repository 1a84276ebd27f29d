#!/usr/bin/env bash
# Tests scripts/msrp-auth-db.sh: create makes Kamailio's version and
# subscriber tables (subscriber version 7, what auth_db checks) and refuses
# an existing file; add stores MD5(user:realm:password) as ha1 and
# MD5(user@realm:realm:password) as ha1b (checked against Python's hashlib)
# and no plain password; add again replaces; names that would break the SQL
# are refused; remove deletes. (That Kamailio's auth_db accepts the result
# is tested in tests/compat.rs with the shipped auth config.)
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
db_sh="$here/scripts/msrp-auth-db.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "msrp-auth-db test FAILED: $*" >&2; exit 1; }
db="$tmp/auth.sqlite"
md5() { python3 -c 'import hashlib,sys; print(hashlib.md5(sys.argv[1].encode()).hexdigest())' "$1"; }
q() { sqlite3 "$db" "$1"; }

"$db_sh" create "$db" >/dev/null || fail "create failed"
[ "$(q "SELECT table_version FROM version WHERE table_name='subscriber'")" = 7 ] || fail "subscriber version is not 7"
if "$db_sh" create "$db" 2>/dev/null; then fail "create overwrote an existing database"; fi

"$db_sh" add "$db" alice xyz123 >/dev/null || fail "add failed"
[ "$(q "SELECT ha1 FROM subscriber WHERE username='alice'")" = "$(md5 alice:myrealm:xyz123)" ] || fail "wrong ha1"
[ "$(q "SELECT ha1b FROM subscriber WHERE username='alice'")" = "$(md5 alice@myrealm:myrealm:xyz123)" ] || fail "wrong ha1b"
[ "$(q "SELECT domain || '/' || password FROM subscriber WHERE username='alice'")" = "myrealm/" ] || fail "domain or password column"

"$db_sh" add "$db" alice 'new pass' other.realm >/dev/null || fail "second add failed"
"$db_sh" add "$db" alice 'newer' >/dev/null || fail "replacing add failed"
[ "$(q "SELECT count(*) FROM subscriber WHERE username='alice' AND domain='myrealm'")" = 1 ] || fail "add did not replace"
[ "$(q "SELECT ha1 FROM subscriber WHERE domain='myrealm'")" = "$(md5 alice:myrealm:newer)" ] || fail "replaced ha1"

for bad in "a'b" "a b" "x;DROP" ""; do
  if "$db_sh" add "$db" "$bad" pw 2>/dev/null; then fail "user name '$bad' accepted"; fi
done
[ "$(q "SELECT count(*) FROM subscriber")" = 2 ] || fail "a refused add changed the table"

"$db_sh" remove "$db" alice || fail "remove failed"
[ "$(q "SELECT count(*) FROM subscriber")" = 0 ] || fail "remove left rows"
echo "msrp-auth-db test: ok (schema, ha1/ha1b, replace, refused names, remove)"

#!/usr/bin/env bash
# The SQLite credentials database of cfg/kamailio-auth.cfg: Kamailio's own
# subscriber table (the schema of Debian's kamailio-sqlite-modules, the same
# table kamctl/kamdbctl manage and SIP users authenticate against), with
# Digest hashes only (ha1 = MD5(user:realm:password); no plain password).
#   msrp-auth-db.sh create DB                      # new database (refuses an existing file)
#   msrp-auth-db.sh add DB USER PASSWORD [REALM]   # add or replace a user (REALM: myrealm,
#                                                  # the realm of cfg/kamailio-auth.cfg)
#   msrp-auth-db.sh remove DB USER
# A running relay sees added and removed users at their next AUTH.
# Needs sqlite3 and kamailio-sqlite-modules (for the schema).
set -euo pipefail

schema=${KAMAILIO_SQLITE_SCHEMA:-/usr/share/kamailio/db_sqlite}
die() { echo "msrp-auth-db.sh: $*" >&2; exit 1; }
usage() { sed -n '6,9p' "$0" | sed 's/^# /usage: /' >&2; exit 2; }
command -v sqlite3 >/dev/null || die "sqlite3 not found: apt-get install sqlite3"

# A user name or realm goes into SQL as a quoted literal: allow the
# characters of SIP user names and domains only.
check_name() {
  [[ "$2" =~ ^[A-Za-z0-9._@+-]+$ ]] || die "$1 '$2': only letters, digits and . _ @ + - are allowed"
}
md5() { printf '%s' "$1" | md5sum | cut -d' ' -f1; }

cmd=${1:-}
db=${2:-}
[ -n "$cmd" ] && [ -n "$db" ] || usage
case "$cmd" in
create)
  [ ! -e "$db" ] || die "$db exists already"
  for f in standard-create.sql auth_db-create.sql; do
    [ -f "$schema/$f" ] || die "$schema/$f not found: apt-get install kamailio-sqlite-modules"
  done
  cat "$schema/standard-create.sql" "$schema/auth_db-create.sql" | sqlite3 "$db"
  echo "msrp-auth-db.sh: created $db (tables version, subscriber)"
  ;;
add)
  user=${3:-} pass=${4:-} realm=${5:-myrealm}
  [ -n "$user" ] && [ -n "$pass" ] || usage
  check_name user "$user"
  check_name realm "$realm"
  [ -f "$db" ] || die "$db not found: create it first ($0 create $db)"
  ha1=$(md5 "$user:$realm:$pass")
  ha1b=$(md5 "$user@$realm:$realm:$pass")
  sqlite3 "$db" "DELETE FROM subscriber WHERE username='$user' AND domain='$realm';
    INSERT INTO subscriber (username, domain, password, ha1, ha1b)
    VALUES ('$user', '$realm', '', '$ha1', '$ha1b');"
  echo "msrp-auth-db.sh: $user@$realm in $db"
  ;;
remove)
  user=${3:-}
  [ -n "$user" ] || usage
  check_name user "$user"
  sqlite3 "$db" "DELETE FROM subscriber WHERE username='$user';"
  ;;
*) usage ;;
esac

#!/usr/bin/env bash
# Installs the .deb on this machine (dpkg -i), starts Kamailio with the plain
# example config from the installed docs (ports and the ctl socket moved to
# free ones / a temporary directory), relays one MSRP SEND through it with
# msrp-ping, looks at it with kamcmd, stops it and removes the package
# (dpkg -r). `make deb-test` calls this as root:
#   pkg/deb-test.sh DEB MSRP_PING
# The machine is left as it was: a msrp_relay.so that `make install` put in
# the module directory is restored; if the package itself is installed
# already, the test refuses to run (it would remove it).
set -euo pipefail

deb=${1:?"usage: $0 DEB MSRP_PING"}
ping=${2:?"usage: $0 DEB MSRP_PING"}
name=kamailio-msrp-relay-module
die() { echo "deb-test: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (dpkg -i / dpkg -r)"
[ -f "$deb" ] || die "$deb not found: run 'make deb' first"
[ -x "$ping" ] || die "$ping not found: build msrp-tools first"
if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed\|unpacked\|half'; then
  die "$name is installed already ($(dpkg-query -W -f='${Version}' "$name")); this test installs and removes it: remove it first (dpkg -r $name)"
fi
moddir=$(kamailio -I | sed -n 's/^ *Default paths to modules: *\([^:]*\).*/\1/p')
[ -d "$moddir" ] || die "cannot find Kamailio's module directory (kamailio -I)"
doc=/usr/share/doc/$name

tmp=$(mktemp -d)
chmod 755 "$tmp"
kpid=""
installed=0
backup=""
cleanup() {
  local rc=$?
  if [ -n "$kpid" ] && kill -0 "$kpid" 2>/dev/null; then
    kill -TERM -- "-$kpid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$kpid" 2>/dev/null || true
  fi
  if [ "$installed" = 1 ]; then
    dpkg -r "$name" >/dev/null || { echo "deb-test: dpkg -r $name failed" >&2; rc=1; }
  fi
  if [ -n "$backup" ]; then
    cp -p "$backup" "$moddir/msrp_relay.so" && echo "deb-test: restored the msrp_relay.so that was installed before" >&2
  fi
  if [ "$rc" != 0 ] && [ -f "$tmp/kamailio.log" ]; then
    echo "deb-test: kamailio log tail:" >&2
    tail -n 30 "$tmp/kamailio.log" >&2
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# A module installed by `make install` (no package owns it): dpkg -i would
# overwrite it and dpkg -r delete it, so keep a copy to put back.
if [ -f "$moddir/msrp_relay.so" ]; then
  backup="$tmp/msrp_relay.so.before"
  cp -p "$moddir/msrp_relay.so" "$backup"
fi

# A port no socket uses now (/proc/net lists them in hex).
free_port() {
  local p hex
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    hex=$(printf ':%04X ' "$p")
    if ! cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | grep -q "$hex"; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# Does kamailio version $2 satisfy every "kamailio (OP VERSION)" relation of
# the Depends field $1? dpkg --compare-versions evaluates the same operators
# dpkg and apt use for Depends.
satisfies() {
  local rel op ver n=0
  while read -r rel; do
    [[ "$rel" =~ ^kamailio\ \((\>=|\<\<|=|\<=|\>\>)\ ([^\)]+)\)$ ]] || die "unexpected kamailio relation '$rel' in Depends '$1'"
    op=${BASH_REMATCH[1]} ver=${BASH_REMATCH[2]} n=$((n + 1))
    case "$op" in '>=') op=ge ;; '<<') op=lt ;; '=') op=eq ;; '<=') op=le ;; '>>') op=gt ;; esac
    dpkg --compare-versions "$2" "$op" "$ver" || return 1
  done < <(tr ',' '\n' <<<"$1" | sed 's/^ *//; s/ *$//' | grep '^kamailio\( \|$\)')
  [ "$n" -gt 0 ] || die "Depends '$1' names no kamailio version"
}
# Issue 23 item 7: the module's load-time check accepts any build of the same
# upstream version, so must the package: a later Debian revision (a security
# update such as 5.6.3-2+deb12u1) satisfies Depends, another upstream does not.
check_kamailio_range() {
  local inst up head last next prev v
  inst=$(dpkg-query -W -f='${Version}' kamailio)
  up=${inst%-*}
  [[ "$up" =~ ^(.*\.)?([0-9]+)$ ]] || die "cannot read the upstream part of kamailio $inst"
  head=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]}
  next="$head$((last + 1))"
  prev="$head$((last > 0 ? last - 1 : 0))"
  for v in "$inst" "$inst+deb12u1" "$inst+deb12u2" "$up-99" "$inst~bpo11+1"; do
    satisfies "$1" "$v" || die "kamailio $v (same upstream $up) does not satisfy Depends '$1'"
  done
  for v in "$next-1" "$next~rc1-1" "${head%.}.99-1" "$((${up%%.*} + 1)).0.0-1"; do
    satisfies "$1" "$v" && die "kamailio $v (another upstream version) satisfies Depends '$1'"
  done
  if [ "$prev" != "$up" ]; then
    satisfies "$1" "$prev-1" && die "kamailio $prev-1 (an older upstream version) satisfies Depends '$1'"
  fi
  echo "deb-test: Depends accepts kamailio $inst, $inst+deb12u1, $up-99; refuses $next-1, $next~rc1-1, $prev-1" >&2
}

# Before installing: the relation in the .deb itself.
check_kamailio_range "$(dpkg-deb -f "$deb" Depends)"

start=$(date +%s%N)
dpkg -i "$deb" >/dev/null || { installed=1; die "dpkg -i $deb failed"; }
installed=1
[ -f "$moddir/msrp_relay.so" ] || die "the package did not install $moddir/msrp_relay.so"
for f in README.md examples/kamailio.cfg examples/kamailio-auth.cfg examples/kamailio-kemi.cfg examples/kamailio-tls.cfg examples/msrp-prometheus.cfg examples/make-certs.sh examples/msrp-auth-db.sh examples/msrp-relay.lua examples/web/index.html examples/web/msrp.js examples/web/md5.js; do
  [ -f "$doc/$f" ] || die "the package did not install $doc/$f"
done
depends=$(dpkg-query -W -f='${Depends}' "$name")
[ "$depends" = "$(dpkg-deb -f "$deb" Depends)" ] || die "the installed Depends '$depends' differs from the .deb's"
check_kamailio_range "$depends"

# The plain example, as installed, with free ports and a private ctl socket.
msrp_port=$(free_port)
sip_port=$(free_port)
sed -e "s|tcp:127.0.0.1:2855|tcp:127.0.0.1:$msrp_port|" \
    -e "s|udp:127.0.0.1:5060|udp:127.0.0.1:$sip_port|" \
    -e "s|unix:/run/kamailio/kamailio_ctl|unix:$tmp/kamailio_ctl|" \
    "$doc/examples/kamailio.cfg" > "$tmp/kamailio.cfg"
for s in "tcp:127.0.0.1:$msrp_port" "udp:127.0.0.1:$sip_port" "unix:$tmp/kamailio_ctl" 'loadmodule "msrp_relay.so"'; do
  grep -qF "$s" "$tmp/kamailio.cfg" || die "the installed example config has changed: '$s' not found after adjusting it"
done

# Own process group (setsid), so the whole Kamailio can be stopped.
setsid kamailio -f "$tmp/kamailio.cfg" -DD -E -m 64 -M 16 -Y "$tmp" -w "$tmp" >"$tmp/kamailio.log" 2>&1 &
kpid=$!
for _ in $(seq 150); do
  kill -0 "$kpid" 2>/dev/null || die "kamailio exited during start-up"
  if (exec 3<>"/dev/tcp/127.0.0.1/$msrp_port") 2>/dev/null; then break; fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$msrp_port") 2>/dev/null || die "kamailio did not listen on 127.0.0.1:$msrp_port within 15 s"

"$ping" --relay "127.0.0.1:$msrp_port" || die "no MSRP SEND relayed through the installed module"
grep -q "MSRP SEND" "$tmp/kamailio.log" || die "the example's event_route did not log the SEND (xlog 'MSRP SEND ...')"
kamcmd -s "unix:$tmp/kamailio_ctl" msrp_relay.connections >/dev/null || die "kamcmd msrp_relay.connections failed"
kamcmd -s "unix:$tmp/kamailio_ctl" msrp_relay.reports >/dev/null || die "kamcmd msrp_relay.reports failed"

kill -TERM -- "-$kpid"
for _ in $(seq 50); do kill -0 "$kpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$kpid" 2>/dev/null && die "kamailio did not stop within 5 s of SIGTERM"
kpid=""
if grep -q "CRITICAL\|panicked" "$tmp/kamailio.log"; then die "kamailio logged a crash or a panic"; fi

dpkg -r "$name" >/dev/null
installed=0
[ -z "$backup" ] && [ -e "$moddir/msrp_relay.so" ] && die "dpkg -r left $moddir/msrp_relay.so"
status=$(dpkg-query -W -f='${Status}' "$name" 2>/dev/null || true)
case "$status" in ""|*not-installed*) ;; *) die "after dpkg -r the package is '$status'";; esac
echo "deb-test: ok: installed $(basename "$deb"), relayed a SEND with the installed example config," \
     "kamcmd answered, removed it again;" \
     "$((($(date +%s%N) - start) / 1000000)) ms"

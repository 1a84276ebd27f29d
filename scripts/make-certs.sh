#!/usr/bin/env bash
# make-certs.sh [--force] DIR
# make-certs.sh --node NAME SAN DIR
#
# Test certificates for msrp_relay's TLS (msrps) and secure WebSocket (wss)
# transports, made with the openssl CLI (Debian package `openssl`):
#
#   ca.pem ca.key               test CA (basicConstraints critical CA:TRUE,
#                               keyUsage critical keyCertSign, cRLSign)
#   relay.pem relay.key         SAN IP:127.0.0.1 DNS:localhost DNS:relay.test,
#                               EKU serverAuth+clientAuth (the relay also
#                               presents it when it dials an msrps next hop)
#   endpoint.pem endpoint.key   SAN IP:127.0.0.1 DNS:localhost DNS:endpoint.test,
#                               serverAuth+clientAuth (test endpoints, next hops)
#   client.pem client.key       SAN DNS:client.test, EKU clientAuth only
#   other-ca.pem other-ca.key   a second CA, unrelated to ca.pem
#   other.pem other.key         signed by other-ca: SAN IP:127.0.0.1 DNS:localhost,
#                               serverAuth+clientAuth (wrong-CA tests)
#
# Leaves: basicConstraints critical CA:FALSE, keyUsage critical
# digitalSignature, subject/authority key identifiers. Keys are EC P-256 in
# PKCS#8 PEM ("BEGIN PRIVATE KEY"), mode 0600. Valid for 10 years from now.
#
# --node: a relay node's set in DIR/NAME, for a relay started with
# CERTS_DIR=DIR/NAME (cfg/kamailio-tls.cfg): relay.pem relay.key signed by
# DIR's test CA (made first if missing) with subjectAltName SAN (e.g.
# "IP:127.0.0.2, DNS:node1.test"), serverAuth+clientAuth (it serves clients
# and the other nodes, and presents it when it dials them), and a copy of
# ca.pem; does nothing when DIR/NAME/ca.pem exists.
#
# Idempotent: does nothing when DIR/ca.pem exists, unless --force (which
# makes everything anew). Concurrent runs on one DIR wait for each other
# (flock on DIR/.lock).
set -euo pipefail

usage() { echo "usage: $0 [--force] DIR" >&2; exit 2; }

force=0
dir=""
node=""
node_san=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --node) [ $# -ge 3 ] || usage; node=$2; node_san=$3; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) usage ;;
    *) [ -z "$dir" ] || usage; dir=$1 ;;
  esac
  shift
done
[ -n "$dir" ] || usage
case "$node" in */*|.*) echo "make-certs.sh: --node NAME must be a plain file name" >&2; exit 2 ;; esac
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found (Debian package openssl)" >&2; exit 1; }

mkdir -p "$dir"
# One run at a time per DIR (tests of several processes may share one).
exec 9>"$dir/.lock"
flock 9
make_base=1
if [ -e "$dir/ca.pem" ] && [ "$force" = 0 ]; then
  make_base=0
  if [ -z "$node" ]; then
    echo "make-certs.sh: $dir/ca.pem exists, nothing to do (--force to make new ones)"
    exit 0
  fi
  if [ -e "$dir/$node/ca.pem" ]; then
    echo "make-certs.sh: $dir/$node/ca.pem exists, nothing to do"
    exit 0
  fi
fi

# Work in a scratch directory and move the results in at the end, so an
# interrupted run never leaves a DIR whose ca.pem exists but whose leaves
# do not (which the idempotence check would then take as complete).
tmp=$(mktemp -d "${dir%/}/.make-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

days=3650

key() { # name
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$1.key" 2>/dev/null
}

# A positive 128-bit serial (first hex digit 1-7).
serial() { echo "0x$(( (RANDOM % 7) + 1 ))$(openssl rand -hex 15)"; }

ca() { # name CN
  key "$1"
  cat >"$tmp/$1.ext" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $2
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  openssl req -new -key "$tmp/$1.key" -config "$tmp/$1.ext" -out "$tmp/$1.csr"
  openssl x509 -req -in "$tmp/$1.csr" -signkey "$tmp/$1.key" -sha256 \
    -set_serial "$(serial)" -days "$days" \
    -extfile "$tmp/$1.ext" -extensions v3_ca -out "$tmp/$1.pem" 2>/dev/null
}

leaf() { # name CN issuer EKU SAN
  key "$1"
  cat >"$tmp/$1.ext" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $2
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $4
subjectAltName = $5
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  openssl req -new -key "$tmp/$1.key" -config "$tmp/$1.ext" -out "$tmp/$1.csr"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/$3.pem" -CAkey "$tmp/$3.key" -sha256 \
    -set_serial "$(serial)" -days "$days" \
    -extfile "$tmp/$1.ext" -extensions v3_leaf -out "$tmp/$1.pem" 2>/dev/null
  openssl verify -CAfile "$tmp/$3.pem" -purpose "$( [ "$4" = clientAuth ] && echo sslclient || echo sslserver )" \
    "$tmp/$1.pem" >/dev/null
}

# A node's certificate, signed by the existing CA of DIR: made in $tmp,
# moved to DIR/NAME with a copy of the CA (ca.pem last).
make_node() {
  cp "$dir/ca.pem" "$tmp/ca.pem"
  cp "$dir/ca.key" "$tmp/ca.key"
  leaf relay "$node" ca "serverAuth, clientAuth" "$node_san"
  chmod 0644 "$tmp/relay.pem" "$tmp/ca.pem"
  chmod 0600 "$tmp/relay.key"
  mkdir -p "$dir/$node"
  chmod 0755 "$dir/$node"
  rm -f "$dir/$node/ca.pem"
  for n in relay.pem relay.key ca.pem; do
    mv -f "$tmp/$n" "$dir/$node/$n"
  done
  echo "make-certs.sh: node $node ($node_san) in $dir/$node"
}

if [ "$make_base" = 0 ]; then
  make_node
  exit 0
fi

ca ca "msrp_relay test CA"
leaf relay relay.test ca "serverAuth, clientAuth" "IP:127.0.0.1, DNS:localhost, DNS:relay.test"
leaf endpoint endpoint.test ca "serverAuth, clientAuth" "IP:127.0.0.1, DNS:localhost, DNS:endpoint.test"
leaf client client.test ca "clientAuth" "DNS:client.test"
ca other-ca "msrp_relay unrelated test CA"
leaf other other.test other-ca "serverAuth, clientAuth" "IP:127.0.0.1, DNS:localhost"

# The wrong-CA pair must really be unrelated.
if openssl verify -CAfile "$tmp/ca.pem" "$tmp/other.pem" >/dev/null 2>&1; then
  echo "make-certs.sh: other.pem verifies against ca.pem" >&2
  exit 1
fi

chmod 0644 "$tmp"/*.pem
chmod 0600 "$tmp"/*.key
# ca.pem last: its presence means the set is complete.
rm -f "$dir/ca.pem"
for n in ca.key relay.pem relay.key endpoint.pem endpoint.key client.pem client.key \
         other-ca.pem other-ca.key other.pem other.key ca.pem; do
  mv -f "$tmp/$n" "$dir/$n"
done
echo "make-certs.sh: test CA and certificates in $dir (valid $days days)"
# node sets signed by an earlier CA are stale now
for d in "$dir"/*/; do
  if [ -e "$d/relay.pem" ] && [ -e "$d/ca.pem" ]; then rm -rf "$d"; fi
done
if [ -n "$node" ]; then
  make_node
fi

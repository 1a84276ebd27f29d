#!/usr/bin/env bash
# Tests scripts/make-certs.sh: every file is made, chains verify against
# their own CA and not against the other one, keys are PKCS#8 EC P-256,
# extensions are what rustls/webpki need, a second run keeps the set, and
# --force replaces it. (That rustls accepts them is tested in msrp-tools:
# tls::tests.)
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
make_certs="$here/scripts/make-certs.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "make-certs test FAILED: $*" >&2; exit 1; }
d="$tmp/certs"

"$make_certs" "$d" >"$tmp/out" 2>&1 || fail "first run failed: $(cat "$tmp/out")"
for f in ca.pem ca.key relay.pem relay.key endpoint.pem endpoint.key client.pem client.key \
         other-ca.pem other-ca.key other.pem other.key; do
  [ -s "$d/$f" ] || fail "$f missing"
done
[ -z "$(find "$d" -mindepth 1 -name '.make-certs.*')" ] || fail "scratch directory left behind"

for f in relay endpoint; do
  openssl verify -CAfile "$d/ca.pem" -purpose sslserver "$d/$f.pem" >/dev/null || fail "$f.pem: not a server cert of ca.pem"
  openssl verify -CAfile "$d/ca.pem" -purpose sslclient "$d/$f.pem" >/dev/null || fail "$f.pem: not a client cert of ca.pem"
done
openssl verify -CAfile "$d/ca.pem" -purpose sslclient "$d/client.pem" >/dev/null || fail "client.pem: not a client cert"
if openssl verify -CAfile "$d/ca.pem" -purpose sslserver "$d/client.pem" >/dev/null 2>&1; then
  fail "client.pem is accepted as a server certificate"
fi
openssl verify -CAfile "$d/other-ca.pem" -purpose sslserver "$d/other.pem" >/dev/null || fail "other.pem: not of other-ca.pem"
if openssl verify -CAfile "$d/ca.pem" "$d/other.pem" >/dev/null 2>&1; then fail "other.pem verifies against ca.pem"; fi
if openssl verify -CAfile "$d/other-ca.pem" "$d/relay.pem" >/dev/null 2>&1; then fail "relay.pem verifies against other-ca.pem"; fi

for k in ca relay endpoint client other-ca other; do
  head -n1 "$d/$k.key" | grep -qx -- '-----BEGIN PRIVATE KEY-----' || fail "$k.key is not PKCS#8 PEM"
  openssl pkey -in "$d/$k.key" -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-256' || fail "$k.key is not EC P-256"
  [ "$(stat -c %a "$d/$k.key")" = 600 ] || fail "$k.key is not mode 0600"
  # key and certificate belong together
  [ "$(openssl pkey -in "$d/$k.key" -pubout)" = "$(openssl x509 -in "$d/$k.pem" -noout -pubkey)" ] \
    || fail "$k.key does not match $k.pem"
done

text() { openssl x509 -in "$d/$1.pem" -noout -text; }
text ca | grep -A1 'Basic Constraints: critical' | grep -q 'CA:TRUE' || fail "ca.pem: no critical CA:TRUE"
text ca | grep -A1 'Key Usage: critical' | grep -q 'Certificate Sign' || fail "ca.pem: no keyCertSign"
text relay | grep -A1 'Basic Constraints: critical' | grep -q 'CA:FALSE' || fail "relay.pem: no critical CA:FALSE"
text relay | grep -A1 'Key Usage: critical' | grep -q 'Digital Signature' || fail "relay.pem: no digitalSignature"
text relay | grep -q 'IP Address:127.0.0.1, DNS:localhost, DNS:relay.test' || fail "relay.pem: SAN"
text endpoint | grep -q 'IP Address:127.0.0.1, DNS:localhost, DNS:endpoint.test' || fail "endpoint.pem: SAN"
text other | grep -q 'IP Address:127.0.0.1, DNS:localhost' || fail "other.pem: SAN"
text relay | grep -q 'TLS Web Server Authentication, TLS Web Client Authentication' || fail "relay.pem: EKU"
text client | grep -A1 'Extended Key Usage' | grep -qx ' *TLS Web Client Authentication' || fail "client.pem: EKU"
text relay | grep -q 'Version: 3' || fail "relay.pem is not X.509 v3"
end=$(openssl x509 -in "$d/relay.pem" -noout -enddate | cut -d= -f2)
[ $(( ($(date -d "$end" +%s) - $(date +%s)) / 86400 )) -ge 3649 ] || fail "relay.pem valid only until $end"

# Idempotent: a second run keeps everything.
sum() { cat "$d"/*.pem "$d"/*.key | sha256sum; }
before=$(sum)
"$make_certs" "$d" >"$tmp/out" 2>&1 || fail "second run failed: $(cat "$tmp/out")"
grep -q 'nothing to do' "$tmp/out" || fail "second run said: $(cat "$tmp/out")"
[ "$(sum)" = "$before" ] || fail "second run changed the files"
# --force makes a new set.
"$make_certs" --force "$d" >"$tmp/out" 2>&1 || fail "--force run failed: $(cat "$tmp/out")"
[ "$(sum)" != "$before" ] || fail "--force did not make new files"
openssl verify -CAfile "$d/ca.pem" "$d/relay.pem" >/dev/null || fail "after --force relay.pem does not verify"
# Bad usage.
if "$make_certs" >/dev/null 2>&1; then fail "no DIR accepted"; fi
echo "make-certs test: ok (chains, keys, extensions, idempotence, --force)"

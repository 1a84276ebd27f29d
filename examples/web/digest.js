// HTTP Digest (RFC 2617, MD5, qop=auth) answering an MSRP AUTH's 401
// (RFC 4976 §5): the method is "AUTH", the digest URI the relay's URI the
// AUTH was sent to.

import { md5hex } from './md5.js';

/** The parameters of a `WWW-Authenticate: Digest ...` value. */
export function parseChallenge(value) {
  const m = /^\s*Digest\s+(.*)$/is.exec(value || '');
  if (!m) throw new Error(`not a Digest challenge: ${value}`);
  const params = {};
  const re = /\s*([a-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?/giy;
  const rest = m[1];
  re.lastIndex = 0;
  let p;
  while (re.lastIndex < rest.length && (p = re.exec(rest))) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  if (!params.realm || !params.nonce) throw new Error(`Digest challenge without realm or nonce: ${value}`);
  return params;
}

function randomHex(n) {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The `Authorization` value answering `chal` for user `user` with
 * password `pass`, AUTH to `uri`, nonce count `nc` (1 for a new nonce).
 */
export function authorization(chal, user, pass, uri, nc = 1) {
  const algorithm = (chal.algorithm || 'MD5').toUpperCase();
  if (algorithm !== 'MD5') throw new Error(`Digest algorithm ${chal.algorithm} not supported (MD5 only)`);
  const ha1 = md5hex(`${user}:${chal.realm}:${pass}`);
  const ha2 = md5hex(`AUTH:${uri}`);
  const qops = (chal.qop || '').split(',').map((q) => q.trim().toLowerCase());
  const fields = [
    `username="${user}"`,
    `realm="${chal.realm}"`,
    `nonce="${chal.nonce}"`,
    `uri="${uri}"`,
  ];
  if (qops.includes('auth')) {
    const ncHex = nc.toString(16).padStart(8, '0');
    const cnonce = randomHex(8);
    const response = md5hex(`${ha1}:${chal.nonce}:${ncHex}:${cnonce}:auth:${ha2}`);
    fields.push(`response="${response}"`, 'algorithm=MD5', 'qop=auth', `nc=${ncHex}`, `cnonce="${cnonce}"`);
  } else if (!chal.qop) {
    fields.push(`response="${md5hex(`${ha1}:${chal.nonce}:${ha2}`)}"`, 'algorithm=MD5');
  } else {
    throw new Error(`Digest qop ${chal.qop} not supported (auth only)`);
  }
  if (chal.opaque !== undefined) fields.push(`opaque="${chal.opaque}"`);
  return `Digest ${fields.join(', ')}`;
}

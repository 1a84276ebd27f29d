// MSRP (RFC 4975) over WebSocket (RFC 7977) in the browser: frames, and a
// session that AUTHs with a relay (RFC 4976), sends messages in chunks and
// reassembles what arrives. One MSRP frame per WebSocket message, both
// ways (RFC 7977 §5.1).

import { authorization, parseChallenge } from './digest.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function randomId(n = 12) {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => ALNUM[b % 36]).join('');
}

/** The bytes of one frame; `body` (a Uint8Array) needs a Content-Type header. */
export function buildFrame({ tid, method, code, comment, headers = [], body, flag = '$' }) {
  const start = method ? `MSRP ${tid} ${method}` : `MSRP ${tid} ${code}${comment ? ` ${comment}` : ''}`;
  let head = `${start}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}`;
  const end = encoder.encode(`-------${tid}${flag}\r\n`);
  if (!body) {
    const h = encoder.encode(head);
    const out = new Uint8Array(h.length + end.length);
    out.set(h);
    out.set(end, h.length);
    return out;
  }
  const h = encoder.encode(`${head}\r\n`);
  const out = new Uint8Array(h.length + body.length + 2 + end.length);
  out.set(h);
  out.set(body, h.length);
  out.set([13, 10], h.length + body.length);
  out.set(end, h.length + body.length + 2);
  return out;
}

function indexOfCrlf(bytes, from) {
  for (let i = from; i + 1 < bytes.length; i++) if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  return -1;
}

/** One frame from the bytes of one WebSocket message. */
export function parseFrame(bytes) {
  let eol = indexOfCrlf(bytes, 0);
  if (eol < 0) throw new Error('no start line');
  const start = decoder.decode(bytes.subarray(0, eol)).split(' ');
  if (start[0] !== 'MSRP' || start.length < 3) throw new Error(`bad start line ${start.join(' ')}`);
  const tid = start[1];
  const f = { tid, headers: new Map(), body: null, flag: '$' };
  if (/^\d{3}$/.test(start[2])) {
    f.code = Number(start[2]);
    f.comment = start.slice(3).join(' ');
  } else {
    f.method = start[2];
  }
  const endLine = `-------${tid}`;
  let pos = eol + 2;
  for (;;) {
    eol = indexOfCrlf(bytes, pos);
    if (eol < 0) throw new Error('frame without end line');
    const line = decoder.decode(bytes.subarray(pos, eol));
    pos = eol + 2;
    if (line.startsWith(endLine)) {
      f.flag = line.slice(endLine.length);
      return f;
    }
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon > 0) f.headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  // body: up to CRLF + end line + flag at the end of the message
  const tail = encoder.encode(`\r\n${endLine}`);
  let at = bytes.length - tail.length - 1;
  while (at >= pos && !tail.every((b, i) => bytes[at + i] === b)) at--;
  if (at < pos) throw new Error('body without end line');
  f.body = bytes.slice(pos, at);
  f.flag = String.fromCharCode(bytes[at + tail.length]);
  return f;
}

const paths = (v) => (v || '').split(/\s+/).filter(Boolean);

/**
 * A client session over one WebSocket. Events: `message` (a complete
 * message: {messageId, fromPath, contentType, headers, data}), `progress`
 * ({messageId, received, total}), `report` (a REPORT), `closed`
 * ({code, reason, clean}), `log` (text).
 */
export class MsrpSession extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    const secure = url.startsWith('wss:');
    // RFC 7977 §5.2: the client's URI has a random .invalid host
    this.uri = `${secure ? 'msrps' : 'msrp'}://${randomId(10)}.invalid:2855/${randomId()};ws`;
    this.pending = new Map();
    this.incoming = new Map();
    this.usePath = null;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Opens the WebSocket with subprotocol `msrp`. */
  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, 'msrp');
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      let open = false;
      ws.onopen = () => {
        open = true;
        if (ws.protocol !== 'msrp') reject(new Error(`the relay selected subprotocol "${ws.protocol}"`));
        else resolve();
      };
      ws.onclose = (e) => {
        const detail = { code: e.code, reason: e.reason, clean: e.wasClean };
        for (const p of this.pending.values()) p.reject(new Error(`connection closed (${e.code})`));
        this.pending.clear();
        if (!open) reject(new Error(`WebSocket to ${this.url} failed (close code ${e.code})`));
        this.emit('closed', detail);
      };
      ws.onmessage = (e) => this.onMessage(e.data);
    });
  }

  close() {
    this.ws?.close(1000);
  }

  onMessage(data) {
    let f;
    try {
      f = parseFrame(typeof data === 'string' ? encoder.encode(data) : new Uint8Array(data));
    } catch (e) {
      this.emit('log', `unparsable frame from the relay: ${e.message}`);
      return;
    }
    if (f.code !== undefined) {
      const p = this.pending.get(f.tid);
      if (p) {
        this.pending.delete(f.tid);
        p.resolve(f);
      }
    } else if (f.method === 'SEND') {
      this.onSend(f);
    } else if (f.method === 'REPORT') {
      this.emit('report', {
        status: f.headers.get('status'),
        messageId: f.headers.get('message-id'),
        byteRange: f.headers.get('byte-range'),
      });
    } else {
      this.respond(f, 501, 'Unknown method');
    }
  }

  /** Answers request `f` hop by hop (RFC 4975 §7.2). */
  respond(f, code, comment) {
    const from = paths(f.headers.get('from-path'));
    const to = paths(f.headers.get('to-path'));
    const headers = [['To-Path', from[0]], ['From-Path', to[0]]];
    this.ws.send(buildFrame({ tid: f.tid, code, comment, headers }));
  }

  onSend(f) {
    if (f.headers.get('failure-report') !== 'no') this.respond(f, 200, 'OK');
    const id = f.headers.get('message-id');
    const range = /^(\d+)-(\d+|\*)\/(\d+|\*)$/.exec(f.headers.get('byte-range') || '1-*/*');
    const startAt = range ? Number(range[1]) - 1 : 0;
    const total = range && range[3] !== '*' ? Number(range[3]) : null;
    let m = this.incoming.get(id);
    if (!m) {
      m = { total, received: 0, parts: [], headers: f.headers };
      this.incoming.set(id, m);
    }
    if (f.body) {
      m.parts.push([startAt, f.body]);
      m.received += f.body.length;
    }
    if (f.headers.has('content-type')) m.headers = f.headers;
    this.emit('progress', { messageId: id, received: m.received, total: m.total });
    const done = f.flag === '$' && (m.total === null || m.received >= m.total);
    if (f.flag === '#' || done) this.incoming.delete(id);
    if (f.flag === '#') {
      this.emit('log', `message ${id} aborted by its sender`);
      return;
    }
    if (!done) return;
    const size = m.total ?? m.parts.reduce((n, [s, b]) => Math.max(n, s + b.length), 0);
    const data = new Uint8Array(size);
    for (const [s, b] of m.parts) data.set(b, s);
    this.emit('message', {
      messageId: id,
      fromPath: paths(f.headers.get('from-path')),
      contentType: m.headers.get('content-type') || '',
      headers: m.headers,
      data,
    });
  }

  /** Sends a request frame and waits for its response. */
  transact(method, toPath, headers = [], body = null, flag = '$', timeoutMs = 30000) {
    const tid = randomId(16);
    const all = [['To-Path', toPath.join(' ')], ['From-Path', this.uri], ...headers];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tid);
        reject(new Error(`${method}: no response within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(tid, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.ws.send(buildFrame({ tid, method, headers: all, body, flag }));
    });
  }

  /**
   * AUTH with the relay at `relayUri` (RFC 4976 §5): a 401 is answered with
   * Digest for `user`/`password`. Returns the Use-Path the relay granted.
   */
  async auth(relayUri, user, password) {
    let r = await this.transact('AUTH', [relayUri]);
    if (r.code === 401) {
      const chal = parseChallenge(r.headers.get('www-authenticate'));
      const answer = authorization(chal, user, password, relayUri, 1);
      r = await this.transact('AUTH', [relayUri], [['Authorization', answer]]);
    }
    if (r.code !== 200) throw new Error(`AUTH: ${r.code} ${r.comment}`);
    this.usePath = paths(r.headers.get('use-path'));
    if (!this.usePath.length) throw new Error('AUTH: 200 without Use-Path');
    this.expires = Number(r.headers.get('expires') || 0);
    return this.usePath;
  }

  /**
   * Sends `data` to `toPath` as one message in chunks of at most
   * `chunkSize` bytes (each chunk one WebSocket message, so it must stay
   * below the relay's ws_max_message_size with its head). `headers` go
   * before Content-Type (RFC 4975 §9: MIME headers such as
   * Content-Disposition). Resolves with the Message-ID once every chunk
   * got its 200.
   */
  async sendMessage(toPath, data, { contentType = 'text/plain', chunkSize = 65536, headers = [], onProgress } = {}) {
    const messageId = randomId(16);
    const total = data.length;
    let offset = 0;
    do {
      const end = Math.min(total, offset + chunkSize);
      const flag = end === total ? '$' : '+';
      const h = [
        ['Message-ID', messageId],
        ['Byte-Range', `${offset + 1}-${end}/${total}`],
        ...headers,
        ['Content-Type', contentType],
      ];
      const r = await this.transact('SEND', toPath, h, data.subarray(offset, end), flag);
      if (r.code !== 200) throw new Error(`SEND: ${r.code} ${r.comment}`);
      offset = end;
      onProgress?.(offset, total);
    } while (offset < total);
    return messageId;
  }
}

// Real-browser test of examples/web against a running relay (started by
// tests/browser.rs): headless Chromium loads the page from a local HTTP
// server, trusting the relay's test certificate by its SPKI pin only.
// Usage: node driver.mjs CONFIG_JSON. Exits 1 with the browser's own
// messages when a step fails.

import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, extname, normalize } from 'node:path';

import { Browser } from './cdp.mjs';
import { md5hex } from '../../examples/web/md5.js';
import { authorization, parseChallenge } from '../../examples/web/digest.js';

const cfg = JSON.parse(process.argv[2]);
const MIB = 1024 * 1024;
const t0 = Date.now();
const step = (s) => console.log(`${((Date.now() - t0) / 1000).toFixed(2)} s: ${s}`);

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo: Chromium's SPKI pin. */
function spkiPin(pemFile) {
  const spki = new X509Certificate(readFileSync(pemFile)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/** Serves the example's files (GET only, nothing outside webDir). */
function serve(dir, port) {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const file = join(dir, path === '/' ? 'index.html' : path);
    try {
      if (!file.startsWith(dir)) throw new Error('outside');
      const body = readFileSync(file);
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

const sel = (s) => JSON.stringify(s);
const q = (s) => `document.querySelector(${sel(s)})`;

async function openPage(browser, url) {
  const page = await browser.newPage();
  await page.goto(url);
  return page;
}

/** Connects and AUTHs a page; returns its address (Use-Path and URI). */
async function login(page, relay) {
  await page.eval(`${q('#connect')}.click()`);
  const state = await page.waitFor(
    `['authed', 'failed', 'closed'].includes(document.body.dataset.state) && document.body.dataset.state`,
    `AUTH at ${relay}`,
  );
  if (state !== 'authed') throw new Error(`AUTH at ${relay}: ${state}\n${await page.report()}`);
  return page.eval(`${q('#address')}.textContent`);
}

async function chatTo(page, address) {
  await page.eval(`${q('#peer')}.value = ${sel(address)}; ${q('#open')}.click()`);
}

async function say(from, to, text) {
  await from.eval(`${q('#text')}.value = ${sel(text)}; ${q('#send')}.click()`);
  const want = `peer: ${text}`;
  await to.waitFor(
    `[...document.querySelectorAll('#messages li.in.text')].some(l => l.textContent === ${sel(want)})`,
    `"${text}" arriving`,
  );
  await from.waitFor(
    `[...document.querySelectorAll('#messages li.out.text')].some(l => l.dataset.delivered)`,
    `200 for "${text}"`,
  );
}

/** Sends a file of `size` random bytes in chunks of `chunk`; checks the receiver's SHA-256. */
async function sendFile(from, to, dir, size, chunk) {
  const data = randomBytes(size);
  const path = join(dir, `file-${size}-${chunk}.bin`);
  writeFileSync(path, data);
  const hash = createHash('sha256').update(data).digest('hex');
  const before = await to.eval(`document.querySelectorAll('#messages li.in.file').length`);
  await from.eval(`${q('#chunk')}.value = ${chunk}`);
  await from.setFile('#file', path);
  await from.eval(`${q('#sendfile')}.click()`);
  const li = `document.querySelectorAll('#messages li.in.file')[${before}]`;
  await to.waitFor(`${li}?.dataset.check`, `${size} bytes in chunks of ${chunk} arriving`, 30000);
  const got = await to.eval(`({check: ${li}.dataset.check, sha: ${li}.dataset.sha256, size: ${li}.dataset.size})`);
  if (got.check !== 'ok' || got.sha !== hash || Number(got.size) !== size) {
    throw new Error(`file of ${size} bytes: sent SHA-256 ${hash}, page got ${JSON.stringify(got)}`);
  }
  return hash;
}

/** The page's MD5 and Digest against node's MD5 and RFC 2617's example. */
function checkDigestCode() {
  for (const n of [0, 1, 3, 55, 56, 63, 64, 65, 1000]) {
    const text = 'é'.repeat(n) + 'x'.repeat(n % 7);
    const want = createHash('md5').update(text).digest('hex');
    if (md5hex(text) !== want) throw new Error(`md5.js of ${text.length} chars: ${md5hex(text)}, node: ${want}`);
  }
  const chal = parseChallenge('Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"');
  const answer = authorization(chal, 'Mufasa', 'Circle Of Life', '/dir/index.html');
  const field = (k) => new RegExp(`${k}="?([^",]*)`).exec(answer)?.[1];
  // RFC 2617 §3.5 with method GET; ours hashes method AUTH (RFC 4976 §5)
  const ha1 = md5hex('Mufasa:testrealm@host.com:Circle Of Life');
  const ha2 = md5hex('AUTH:/dir/index.html');
  const want = md5hex(`${ha1}:${chal.nonce}:${field('nc')}:${field('cnonce')}:auth:${ha2}`);
  if (ha1 !== '939e7578ed9e3c518a452acee763bce9' || field('response') !== want || field('opaque') !== chal.opaque) {
    throw new Error(`digest.js answered ${answer}`);
  }
}

async function main() {
  checkDigestCode();
  step('md5.js and digest.js agree with node and RFC 2617');
  const tmp = mkdtempSync(join(cfg.tmp, 'browser-'));
  const server = await serve(cfg.webDir, cfg.httpPort);
  const pin = spkiPin(cfg.cert);
  const browser = Browser.launch(cfg.chromium, join(tmp, 'profile'), [`--ignore-certificate-errors-spki-list=${pin}`]);
  const pages = [];
  try {
    const page = (relay, host = '127.0.0.1') => {
      const url = `http://${host}:${cfg.httpPort}/index.html?relay=${encodeURIComponent(relay)}`;
      return openPage(browser, url).then((p) => (pages.push(p), p));
    };
    // wss: with the shipped TLS config: Digest AUTH, chat both ways
    const a = await page(cfg.wssUrl);
    const b = await page(cfg.wssUrl);
    const addrA = await login(a, cfg.wssUrl);
    const addrB = await login(b, cfg.wssUrl);
    const shape = new RegExp(`^msrps://127\\.0\\.0\\.1:${new URL(cfg.wssUrl).port}/\\S+;ws msrps://\\S+\\.invalid:2855/\\S+;ws$`);
    for (const addr of [addrA, addrB]) if (!shape.test(addr)) throw new Error(`address ${addr} is not ${shape}`);
    step(`wss: both pages AUTHed (Digest): ${addrA} / ${addrB}`);
    await chatTo(a, addrB);
    await say(a, b, 'hello from A');
    await say(b, a, 'hello from B'); // B replies over the path A's message came by
    step('wss: chat both ways');
    const hash = await sendFile(a, b, tmp, 5 * MIB, 65536);
    step(`wss: 5 MiB file in 64 KiB chunks, SHA-256 ${hash} verified by the receiving page`);
    await sendFile(b, a, tmp, MIB, MIB);
    step('wss: 1 MiB file as one WebSocket message (fits ws_max_message_size)');
    // the peer disconnects: the next message is not delivered, and the
    // page says why (the relay's response or REPORT)
    await b.eval(`${q('#disconnect')}.click()`);
    await b.waitFor(`document.body.dataset.state === 'closed'`, 'disconnecting');
    await a.eval(`${q('#text')}.value = 'anyone there?'; ${q('#send')}.click()`);
    const why = await a.waitFor(
      `[...document.querySelectorAll('#events li.error')].map(l => l.textContent).find(t => /not delivered|REPORT/.test(t))`,
      'an error for a message to a page that went away',
    );
    step(`wss: peer gone: ${why.replace(/^\S+ \S* ?/, '')}`);
    // one message far over ws_max_message_size: the relay closes with
    // 1009, and the page gets that code although it was still sending
    await a.eval(`${q('#chunk')}.value = ${4 * MIB}`);
    writeFileSync(join(tmp, 'big.bin'), randomBytes(2 * MIB));
    await a.setFile('#file', join(tmp, 'big.bin'));
    await a.eval(`${q('#sendfile')}.click()`);
    await a.waitFor(`document.body.dataset.state === 'closed'`, 'close after an oversized message');
    const closed = await a.eval(`${q('#status')}.textContent`);
    if (closed !== 'closed (1009)') throw new Error(`oversized message: page status "${closed}", not "closed (1009)"\n${await a.report()}`);
    step(`wss: 2 MiB in one message (over ${cfg.wsMaxMessage}) closed with 1009`);

    // plain ws: on another relay, with an Origin allow-list
    const c = await page(cfg.wsUrl);
    const d = await page(cfg.wsUrl);
    const addrD = await login(d, cfg.wsUrl);
    await login(c, cfg.wsUrl);
    await chatTo(c, addrD);
    await say(c, d, 'hello over ws:');
    await say(d, c, 'and back over ws:');
    step('ws: AUTH and chat both ways');
    // the same page from another origin (http://localhost:PORT) is refused
    const e = await page(cfg.wsUrl, 'localhost');
    await e.eval(`${q('#connect')}.click()`);
    await e.waitFor(`document.body.dataset.state === 'failed'`, 'refusal of a foreign Origin');
    const said = e.logs.join('\n');
    if (!/Unexpected response code: 403/.test(said)) {
      throw new Error(`foreign Origin: the browser did not report a 403\n${await e.report()}`);
    }
    step(`ws: foreign Origin refused: ${e.logs.find((l) => l.includes('403'))}`);
    step('done');
  } catch (err) {
    const said = [];
    for (const [i, p] of pages.entries()) said.push(`page ${i}: ${await p.report().catch((e) => e.message)}`);
    console.error(`FAILED: ${err.message}\n${said.join('\n')}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
    server.close();
    // the browser's helper processes may still be writing to the profile
    try {
      rmSync(tmp, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch (err) {
      console.error(`warning: could not remove ${tmp}: ${err.message}`);
    }
  }
}

main().then(() => step("browser closed, files removed"));

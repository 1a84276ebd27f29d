// The page: connect over WebSocket, AUTH, show the Use-Path, chat with
// another page's address, send files in chunks with a SHA-256 check.

import { MsrpSession } from './msrp.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let session = null;
let toPath = null;

function setState(state, text) {
  document.body.dataset.state = state;
  $('status').textContent = text;
}

function note(text, cls = 'info') {
  const li = document.createElement('li');
  li.className = cls;
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('events').append(li);
}

function shown(li, cls) {
  li.className = cls;
  $('messages').append(li);
  return li;
}

async function sha256hex(data) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The relay's MSRP URI for a WebSocket URL (RFC 7977 §6: transport ws). */
function relayUri(url) {
  const u = new URL(url);
  const scheme = u.protocol === 'wss:' ? 'msrps' : 'msrp';
  const port = u.port || (u.protocol === 'wss:' ? '443' : '80');
  return `${scheme}://${u.hostname}:${port};ws`;
}

function enableChat(on) {
  for (const id of ['open', 'copy', 'disconnect']) $(id).disabled = !on;
  for (const id of ['text', 'send', 'file', 'sendfile']) $(id).disabled = !(on && toPath);
}

function openChat(path) {
  toPath = path;
  $('topath').textContent = toPath.join(' ');
  enableChat(true);
}

async function connect() {
  session?.close();
  const url = $('relay').value.trim();
  session = new MsrpSession(url);
  session.addEventListener('closed', ({ detail }) => {
    const why = detail.code === 1009 ? ' (message too big: lower the chunk size)' : '';
    note(`connection closed: ${detail.code}${detail.reason ? ` ${detail.reason}` : ''}${why}`, 'error');
    setState('closed', `closed (${detail.code})`);
    enableChat(false);
  });
  session.addEventListener('report', ({ detail }) =>
    note(`REPORT for ${detail.messageId} (${detail.byteRange}): ${detail.status}`, 'error'),
  );
  session.addEventListener('log', ({ detail }) => note(detail, 'error'));
  session.addEventListener('progress', ({ detail }) => {
    $('recvprogress').max = detail.total || detail.received || 1;
    $('recvprogress').value = detail.received;
  });
  session.addEventListener('message', ({ detail }) => received(detail));
  setState('connecting', `connecting to ${url}`);
  await session.connect();
  setState('connected', 'connected, AUTH…');
  const usePath = await session.auth(relayUri(url), $('user').value, $('password').value);
  $('address').textContent = [...usePath, session.uri].join(' ');
  setState('authed', `AUTHed for ${session.expires} s`);
  enableChat(true);
}

async function received(m) {
  if (!toPath) openChat(m.fromPath); // reply over the path it came by
  const li = document.createElement('li');
  const disposition = m.headers.get('content-disposition') || '';
  if (!disposition.startsWith('attachment')) {
    li.textContent = `peer: ${new TextDecoder().decode(m.data)}`;
    shown(li, 'in text');
    return;
  }
  const name = /filename="([^"]*)"/.exec(disposition)?.[1] || 'file';
  const want = /SHA-256 ([0-9a-f]{64})/i.exec(m.headers.get('content-description') || '')?.[1];
  const got = await sha256hex(m.data);
  const ok = want === got;
  li.dataset.sha256 = got;
  li.dataset.size = m.data.length;
  li.dataset.check = ok ? 'ok' : 'mismatch';
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([m.data], { type: m.contentType }));
  a.download = name;
  a.textContent = name;
  li.append('peer sent ', a, `: ${m.data.length} bytes, SHA-256 ${ok ? 'verified' : `MISMATCH (sent ${want})`}`);
  shown(li, `in file ${ok ? '' : 'error'}`);
}

async function sendText(e) {
  e.preventDefault();
  const text = $('text').value;
  if (!text) return;
  const li = shown(document.createElement('li'), 'out text');
  li.textContent = `me: ${text}`;
  $('text').value = '';
  try {
    await session.sendMessage(toPath, new TextEncoder().encode(text));
    li.dataset.delivered = 'yes';
  } catch (err) {
    note(`message not delivered: ${err.message}`, 'error');
  }
}

async function sendFile() {
  const file = $('file').files[0];
  if (!file) return;
  const data = new Uint8Array(await file.arrayBuffer());
  const hash = await sha256hex(data);
  const li = shown(document.createElement('li'), 'out file');
  li.textContent = `me: ${file.name}, ${data.length} bytes, SHA-256 ${hash}`;
  li.dataset.sha256 = hash;
  const progress = $('sendprogress');
  progress.max = data.length || 1;
  progress.value = 0;
  const safeName = file.name.replace(/["\r\n\\]/g, '_');
  try {
    await session.sendMessage(toPath, data, {
      contentType: file.type || 'application/octet-stream',
      chunkSize: Math.max(1, Number($('chunk').value) || 65536),
      headers: [
        ['Content-Disposition', `attachment; filename="${safeName}"`],
        ['Content-Description', `SHA-256 ${hash}`],
      ],
      onProgress: (n) => (progress.value = n),
    });
    li.dataset.delivered = 'yes';
  } catch (err) {
    note(`file not delivered: ${err.message}`, 'error');
  }
}

function start() {
  const host = location.hostname || '127.0.0.1';
  $('relay').value = params.get('relay') || `wss://${host}:8443/`;
  $('user').value = params.get('user') || 'alice';
  $('password').value = params.get('password') || 'xyz123';
  $('connect').onclick = () =>
    connect().catch((err) => {
      note(err.message, 'error');
      setState('failed', `failed: ${err.message}`);
    });
  $('disconnect').onclick = () => session?.close();
  $('copy').onclick = () => navigator.clipboard?.writeText($('address').textContent);
  $('open').onclick = () => {
    const peer = $('peer').value.trim().split(/\s+/).filter(Boolean);
    if (peer.length) openChat([...session.usePath, ...peer]);
  };
  $('textform').onsubmit = sendText;
  $('sendfile').onclick = sendFile;
}

start();

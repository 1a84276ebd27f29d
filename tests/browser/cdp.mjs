// Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands on fd 3, answers and events on fd 4,
// NUL-terminated JSON). No npm package, no browser download.

import { spawn } from 'node:child_process';

export class Browser {
  /** Starts `exe` headless with a fresh profile in `profileDir`. */
  static launch(exe, profileDir, extraArgs = []) {
    const args = [
      '--headless',
      '--no-sandbox', // root in CI
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profileDir}`,
      '--remote-debugging-pipe',
      ...extraArgs,
      'about:blank',
    ];
    const proc = spawn(exe, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    return new Browser(proc);
  }

  constructor(proc) {
    this.proc = proc;
    this.nextId = 1;
    this.calls = new Map();
    this.handlers = new Map(); // sessionId -> (method, params) => void
    this.stderr = '';
    proc.stderr.on('data', (d) => (this.stderr = (this.stderr + d).slice(-4000)));
    let buf = '';
    proc.stdio[4].on('data', (d) => {
      buf += d.toString('utf8');
      let nul;
      while ((nul = buf.indexOf('\0')) >= 0) {
        this.dispatch(JSON.parse(buf.slice(0, nul)));
        buf = buf.slice(nul + 1);
      }
    });
    this.exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(`exit ${code ?? sig}`)));
    this.exited.then((why) => {
      for (const c of this.calls.values()) c.reject(new Error(`chromium ended (${why}): ${this.stderr}`));
    });
  }

  dispatch(msg) {
    if (msg.id !== undefined) {
      const c = this.calls.get(msg.id);
      this.calls.delete(msg.id);
      if (msg.error) c?.reject(new Error(`${c.method}: ${msg.error.message}`));
      else c?.resolve(msg.result);
    } else {
      this.handlers.get(msg.sessionId)?.(msg.method, msg.params);
    }
  }

  send(method, params = {}, sessionId) {
    const id = this.nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject, method });
      this.proc.stdio[3].write(`${JSON.stringify(msg)}\0`);
    });
  }

  async newPage() {
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId);
    this.handlers.set(sessionId, (m, p) => page.onEvent(m, p));
    await page.send('Runtime.enable');
    await page.send('Log.enable');
    await page.send('Page.enable');
    return page;
  }

  /** Closes the browser and waits (at most 5 s) until it has exited. */
  async close() {
    const timeout = (ms) => new Promise((r) => setTimeout(r, ms));
    // SIGTERM: Chromium shuts its helper processes down before it exits
    this.proc.kill('SIGTERM');
    await Promise.race([this.exited, timeout(5000)]);
    this.proc.kill('SIGKILL');
    await Promise.race([this.exited, timeout(1000)]);
  }
}

export class Page {
  constructor(browser, sessionId) {
    this.browser = browser;
    this.sessionId = sessionId;
    /** What the browser said: console, exceptions, network errors. */
    this.logs = [];
  }

  send(method, params) {
    return this.browser.send(method, params, this.sessionId);
  }

  onEvent(method, p) {
    if (method === 'Runtime.consoleAPICalled') {
      this.logs.push(`console.${p.type}: ${p.args.map((a) => a.value ?? a.description).join(' ')}`);
    } else if (method === 'Runtime.exceptionThrown') {
      this.logs.push(`exception: ${p.exceptionDetails.exception?.description ?? p.exceptionDetails.text}`);
    } else if (method === 'Log.entryAdded') {
      this.logs.push(`${p.entry.source} ${p.entry.level}: ${p.entry.text}`);
    }
  }

  async goto(url) {
    const r = await this.send('Page.navigate', { url });
    if (r.errorText) throw new Error(`loading ${url}: ${r.errorText}`);
    await this.waitFor(`document.readyState === 'complete'`, `loading ${url}`);
  }

  /** Evaluates `expr` in the page (awaiting a promise), returning its value. */
  async eval(expr) {
    const r = await this.send('Runtime.evaluate', { expression: expr, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) {
      throw new Error(`${expr}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    }
    return r.result.value;
  }

  /** Waits until `expr` is truthy; on timeout the error has the page's state and the browser's own messages. */
  async waitFor(expr, what, timeoutMs = 15000) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.eval(expr);
      if (v) return v;
      if (Date.now() > until) throw new Error(`${what}: timed out after ${timeoutMs} ms\n${await this.report()}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  }

  /** The page's status and event list, and what the browser logged. */
  async report() {
    const state = await this.eval(
      `JSON.stringify({status: document.getElementById('status')?.textContent,` +
        ` events: [...document.querySelectorAll('#events li')].map(l => l.textContent)})`,
    ).catch((e) => e.message);
    return `page: ${state}\nbrowser said:\n  ${this.logs.join('\n  ') || '(nothing)'}`;
  }

  async setFile(selector, path) {
    const { root } = await this.send('DOM.getDocument', {});
    const { nodeId } = await this.send('DOM.querySelector', { nodeId: root.nodeId, selector });
    await this.send('DOM.setFileInputFiles', { nodeId, files: [path] });
  }
}

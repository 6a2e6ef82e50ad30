// The web chat page in a real browser: Debian's chromium, headless, driven through
// chromedriver with the W3C WebDriver protocol over Node's built-in fetch (no package).
//
//   node tests/node/web-check.mjs --url http://127.0.0.1:PORT/ --key KEY --out DIR
//
// Against a running duet-gateway (with a worker) it signs in (a wrong key first), sends a
// message, waits for the answer to stream in token by token and complete, checks the
// session in the list and in the API, continues the chat in the same session, stops a
// (deliberately slowed) answer with the Stop button, checks the phone layout (390x844,
// the list behind a button), renames and deletes the chat, and signs out. Screenshots go
// to DIR; their paths are printed as "screenshot: PATH". Exit status 0 when every check
// passed, 1 otherwise (the reason on stderr, a failure screenshot in DIR).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
const ENTER = '\uE007';

function parseArgs(argv) {
  const o = {
    chromium: '/usr/bin/chromium',
    chromedriver: '/usr/bin/chromedriver',
  };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!['url', 'key', 'out', 'chromium', 'chromedriver'].includes(name) || i + 1 >= argv.length) {
      throw new Error(`usage: web-check.mjs --url URL --key KEY --out DIR (bad "${argv[i]}")`);
    }
    o[name] = argv[++i];
  }
  if (!o.url || !o.key || !o.out) {
    throw new Error('usage: web-check.mjs --url URL --key KEY --out DIR');
  }
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---- WebDriver ----

class Driver {
  constructor(base) {
    this.base = base;
    this.session = null;
  }

  async cmd(method, route, body) {
    const url = this.session ? `${this.base}/session/${this.session}${route}` : this.base + route;
    const res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) {
      const v = json.value || {};
      throw new Error(`WebDriver ${method} ${route}: ${v.error || res.status}: ${v.message || ''}`);
    }
    return json.value;
  }

  async start(chromium, userDir) {
    const caps = {
      capabilities: {
        alwaysMatch: {
          browserName: 'chrome',
          'goog:chromeOptions': {
            binary: chromium,
            args: [
              '--headless=new',
              '--no-sandbox',
              '--disable-gpu',
              '--disable-dev-shm-usage',
              '--window-size=1280,800',
              '--no-first-run',
              '--no-default-browser-check',
              `--user-data-dir=${userDir}`,
            ],
          },
          'goog:loggingPrefs': { browser: 'ALL' },
          unhandledPromptBehavior: 'ignore',
        },
      },
    };
    const v = await this.cmd('POST', '/session', caps);
    this.session = v.sessionId;
  }

  async quit() {
    if (this.session) {
      await this.cmd('DELETE', '').catch(() => {});
      this.session = null;
    }
  }

  go(url) {
    return this.cmd('POST', '/url', { url });
  }

  js(script, ...args) {
    return this.cmd('POST', '/execute/sync', { script, args });
  }

  async find(css) {
    const v = await this.cmd('POST', '/element', { using: 'css selector', value: css });
    return v[ELEMENT];
  }

  async click(css) {
    await this.cmd('POST', `/element/${await this.find(css)}/click`, {});
  }

  async type(css, text) {
    await this.cmd('POST', `/element/${await this.find(css)}/value`, { text });
  }

  async screenshot(file) {
    const b64 = await this.cmd('GET', '/screenshot');
    fs.writeFileSync(file, Buffer.from(b64, 'base64'));
    console.log(`screenshot: ${file}`);
  }

  cdp(cmd, params) {
    return this.cmd('POST', '/goog/cdp/execute', { cmd, params });
  }

  log() {
    return this.cmd('POST', '/se/log', { type: 'browser' });
  }

  // Waits until script returns something truthy (and returns it).
  async until(what, script, timeoutMs = 20000, ...args) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.js(script, ...args);
      if (v) {
        return v;
      }
      if (Date.now() > end) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      }
      await sleep(100);
    }
  }
}

async function startChromedriver(binary) {
  const port = await freePort();
  const proc = spawn(binary, [`--port=${port}`, '--allowed-ips=127.0.0.1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) {
      throw new Error(`chromedriver exited (${proc.exitCode}): ${err}`);
    }
    try {
      const res = await fetch(`${base}/status`);
      const s = await res.json();
      if (s.value && s.value.ready) {
        return { proc, base };
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error('chromedriver did not become ready in 10 s');
}

// ---- the gateway's API, to check what the page did ----

async function apiGet(o, route) {
  const res = await fetch(new URL(route, o.url), { headers: { Authorization: `Bearer ${o.key}` } });
  if (!res.ok) {
    throw new Error(`GET ${route}: ${res.status} ${await res.text()}`);
  }
  return res.json();
}

function check(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
  console.log(`ok: ${what}`);
}

// ---- in-page helpers (run in the browser) ----

// Records every change to an answer's text, so the test can see tokens arrive one by one.
const WATCH = `
  window.__steps = [];
  const obs = new MutationObserver((records) => {
    const a = [...document.querySelectorAll('#messages .msg.assistant .msg-text')].pop();
    const grew = records.filter((r) => r.type === 'characterData').length;
    if (a && grew) window.__steps.push({ grew, len: a.textContent.length, t: performance.now() });
  });
  obs.observe(document.getElementById('messages'), { characterData: true, subtree: true, childList: true });
  return true;`;

const visible = (css) => `
  const e = document.querySelector(${JSON.stringify(css)});
  if (!e) return false;
  const s = getComputedStyle(e);
  const r = e.getBoundingClientRect();
  return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0 &&
         r.right > 0 && r.left < innerWidth;`;

// Slows the page's chat streams down to one server-sent event every 300 ms, so Stop can be
// pressed while an answer is still arriving however fast the model is. The page's abort
// still reaches the real request: its signal is passed on.
const SLOW_STREAMS = `
  const real = window.fetch.bind(window);
  window.fetch = async (url, init) => {
    const res = await real(url, init);
    if (!String(url).includes('/v1/chat/completions') || !res.ok || !res.body) return res;
    const reader = res.body.getReader();
    const signal = init && init.signal;
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    let buf = '', ended = false;
    const body = new ReadableStream({
      async pull(ctrl) {
        await new Promise((r) => setTimeout(r, 300));
        if (signal && signal.aborted) { ctrl.error(new DOMException('stopped', 'AbortError')); return; }
        while (!ended && !buf.includes('\\n\\n')) {
          const { value, done } = await reader.read();
          if (done) ended = true; else buf += dec.decode(value, { stream: true });
        }
        const i = buf.indexOf('\\n\\n');
        if (i >= 0) { ctrl.enqueue(enc.encode(buf.slice(0, i + 2))); buf = buf.slice(i + 2); }
        else { if (buf) ctrl.enqueue(enc.encode(buf)); ctrl.close(); }
      },
      cancel(reason) { return reader.cancel(reason); },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  return true;`;

// A script waiting for the last answer to satisfy cond (a JavaScript expression over a, the
// answer's element, and text, its text), then describing it.
const answerWhere = (cond) => `
  const a = [...document.querySelectorAll('#messages .msg.assistant')].pop();
  if (!a) return null;
  const text = a.querySelector('.msg-text').textContent;
  return (${cond}) && { state: a.dataset.state || '', text,
                        notes: [...a.querySelectorAll('.note')].map((n) => n.textContent) };`;

// ---- the checks ----

async function sendAndWait(d, text) {
  await d.js(WATCH);
  await d.type('#input', text + ENTER);
  await d.until('the answer to start', `return !!document.querySelector('#messages .msg.assistant');`);
  const answer = await d.until(
    'the answer to finish',
    answerWhere(`a.dataset.state && a.dataset.state !== 'streaming'`),
    30000,
  );
  const steps = await d.js('return window.__steps;');
  return { answer, steps };
}

async function run(o, d) {
  const base = new URL('/', o.url).href;
  await d.go(base);
  await d.until('the sign-in form', `return !document.getElementById('signin').hidden;`);
  check(true, 'the page loads and its script runs (the sign-in form is shown)');

  // a wrong key is refused, the right one signs in
  await d.type('#key', 'not-the-key');
  await d.click('#signin-button');
  const refused = await d.until('the refusal', `return document.getElementById('signin-error').textContent;`);
  check(/refused/i.test(refused), `a wrong key is refused: "${refused}"`);
  await d.js(`document.getElementById('key').value = '';`);
  await d.type('#key', o.key);
  await d.click('#signin-button');
  await d.until('the chat view', `return !document.getElementById('app').hidden;`);
  check(
    await d.js(`return localStorage.getItem('duet.apiKey') === arguments[0];`, o.key),
    'the key is kept in localStorage',
  );

  // first message: no session yet; the answer streams in and completes
  const question = 'Tell me a story about <b>Lily</b> & the cat.';
  const first = await sendAndWait(d, question);
  check(first.answer.state === 'complete', `the answer completes (state ${first.answer.state})`);
  check(first.answer.text.trim().length > 0, `the answer has text: "${first.answer.text.slice(0, 60)}..."`);
  const deltas = first.steps.reduce((n, s) => n + s.grew, 0);
  check(deltas >= 2, `the answer grew token by token (${deltas} appends in ${first.steps.length} renders)`);
  const shown = await d.js(`
    const u = document.querySelector('#messages .msg.user .msg-text');
    return { text: u.textContent, tags: document.querySelectorAll('#messages b, #messages img').length };`);
  check(shown.text === question && shown.tags === 0, 'the message is shown as text, not HTML');

  // the session is in the list, selected, and is what the gateway has
  const listed = await d.until(
    'the session in the list',
    `const li = document.querySelector('#sessions li.session.current');
     return li && { id: li.dataset.id, title: li.querySelector('.session-title').textContent,
                    header: document.getElementById('chat-title').textContent };`,
  );
  let sessions = await apiGet(o, '/v1/sessions');
  check(sessions.total === 1 && sessions.data[0].id === listed.id, `the list shows the session ${listed.id}`);
  check(listed.title.startsWith('Tell me a story') && listed.header === listed.title, `titled "${listed.title}"`);
  let stored = await apiGet(o, `/v1/sessions/${listed.id}`);
  check(
    stored.messages.length === 2 && stored.messages[1].content === first.answer.text,
    'the gateway stored the question and exactly the answer shown',
  );

  // a second turn goes to the same session (only the new message is sent)
  const second = await sendAndWait(d, 'And then?');
  check(second.answer.state === 'complete', 'the second answer completes');
  sessions = await apiGet(o, '/v1/sessions');
  stored = await apiGet(o, `/v1/sessions/${listed.id}`);
  check(
    sessions.total === 1 && stored.messages.length === 4 && stored.messages[2].content === 'And then?',
    'the second turn continued the same session',
  );
  await d.screenshot(path.join(o.out, 'desktop.png'));

  // a message too long for the context: the gateway's 400 is shown, the text is given back
  const onScreen = await d.js(`return document.querySelectorAll('#messages .msg').length;`);
  const long = 'word '.repeat(1500).trim();
  await d.js(`document.getElementById('input').value = arguments[0];`, long);
  await d.type('#input', ENTER);
  const said = await d.until('the error', `const s = document.getElementById('status');
    return !s.hidden && s.textContent;`);
  check(/context of \d+/.test(said), `a 400 shows the gateway's message: "${said.slice(0, 90)}..."`);
  check(
    await d.js(
      `return document.getElementById('input').value === arguments[0] &&
              document.querySelectorAll('#messages .msg').length === arguments[1];`,
      long,
      onScreen,
    ),
    'the refused message goes back to the input box',
  );
  stored = await apiGet(o, `/v1/sessions/${listed.id}`);
  check(stored.messages.length === 4, 'nothing of it was stored');
  await d.js(`document.getElementById('input').value = '';`);

  // Stop: the answer is cut, marked, and the composer is ready again
  await d.js(SLOW_STREAMS);
  await d.type('#input', 'Once upon a time' + ENTER);
  await d.until('the Stop button', visible('#stop'));
  await d.until('a first token', answerWhere(`a.dataset.state === 'streaming' && text.length > 0`));
  await d.click('#stop');
  const stopped = await d.until('the stopped answer', answerWhere(`a.dataset.state === 'partial'`));
  check(stopped.notes.includes('Stopped'), `a stopped answer is marked (${stopped.notes.join(', ')})`);
  check(
    await d.js(`return document.getElementById('stop').hidden && !document.getElementById('send').hidden;`),
    'after Stop the Send button is back',
  );
  await d.go(base); // a fresh page: the real fetch again, the key still stored
  await d.until('the chat view after a reload', `return !document.getElementById('app').hidden &&
    document.querySelectorAll('#sessions li.session').length === 1;`);
  check(true, 'a reload keeps the user signed in');

  // phone size: the list hides behind the Chats button
  await d.cdp('Emulation.setDeviceMetricsOverride', { width: 390, height: 844, deviceScaleFactor: 2, mobile: true });
  await d.until('the phone layout', visible('#toggle-sessions'));
  check(!(await d.js(visible('#sidebar'))), 'on a phone the sessions list is hidden');
  check(
    await d.js(`return document.documentElement.scrollWidth <= innerWidth;`),
    'on a phone nothing overflows sideways',
  );
  await d.click('#toggle-sessions');
  await d.until('the drawer', visible('#sidebar'));
  await sleep(300); // the drawer slides in
  await d.screenshot(path.join(o.out, 'phone-sessions.png'));
  await d.click('#sessions li.session .session-open');
  await d.until('the drawer to close and the chat to load', `return !document.getElementById('app')
    .classList.contains('sessions-open') && document.querySelectorAll('#messages .msg').length >= 4;`);
  await sleep(300);
  check(true, 'choosing a chat on a phone closes the list and shows its messages');
  await d.screenshot(path.join(o.out, 'phone.png'));
  await d.cdp('Emulation.clearDeviceMetricsOverride', {});

  // rename, then delete with confirmation
  await d.click('#sessions li.session .rename');
  await d.js(`document.querySelector('#sessions .session-rename').value = '';`);
  await d.type('#sessions .session-rename', 'Lily and the cat' + ENTER);
  await d.until(
    'the new title',
    `const t = document.querySelector('#sessions li.session .session-title');
     return t && t.textContent === 'Lily and the cat';`,
  );
  stored = await apiGet(o, `/v1/sessions/${listed.id}`);
  check(stored.title === 'Lily and the cat', 'rename is stored');
  await d.click('#sessions li.session .delete');
  const prompt = await d.cmd('GET', '/alert/text');
  check(/Delete "Lily and the cat"/.test(prompt), `delete asks first: "${prompt}"`);
  await d.cmd('POST', '/alert/dismiss', {});
  check((await apiGet(o, '/v1/sessions')).total === 1, 'declining keeps the chat');
  await d.click('#sessions li.session .delete');
  await d.cmd('POST', '/alert/accept', {});
  await d.until('the empty list', `return !document.querySelector('#sessions li.session');`);
  check((await apiGet(o, '/v1/sessions')).total === 0, 'accepting deletes the chat');

  // sign out forgets the key
  await d.click('#sign-out');
  await d.until('the sign-in form', `return !document.getElementById('signin').hidden;`);
  check(await d.js(`return localStorage.getItem('duet.apiKey') === null;`), 'sign out forgets the key');

  // nothing the Content-Security-Policy refused, no script errors
  const logs = await d.log();
  const bad = logs.filter(
    (l) =>
      l.level === 'SEVERE' &&
      // the wrong key and the too long message, on purpose
      !/\/v1\/.* (401 \(Unauthorized\)|400 \(Bad Request\))/.test(l.message) &&
      !/ERR_ABORTED|AbortError|stopped/.test(l.message), // the Stop, on purpose
  );
  check(bad.length === 0, `no errors in the browser console${bad.length ? ': ' + JSON.stringify(bad) : ''}`);
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'duet-web-check-'));
  let driver = null;
  let d = null;
  let failed = false;
  try {
    driver = await startChromedriver(o.chromedriver);
    d = new Driver(driver.base);
    await d.start(o.chromium, userDir);
    await run(o, d);
    console.log('web-check: all checks passed');
  } catch (e) {
    failed = true;
    console.error(`web-check: ${e.message}`);
    if (d && d.session) {
      const status = await d.js(`const s = document.getElementById('status');
        return s ? s.textContent : '';`).catch(() => '');
      if (status) {
        console.error(`web-check: the page says: ${status}`);
      }
      await d.cmd('POST', '/alert/dismiss', {}).catch(() => {});
      await d.screenshot(path.join(o.out, 'failure.png')).catch(() => {});
    }
  } finally {
    if (d) {
      await d.quit();
    }
    if (driver) {
      driver.proc.kill('SIGTERM');
    }
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`web-check: ${e.message}`);
  process.exit(1);
});

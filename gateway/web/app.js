// duet's web chat page: sign in with an API key, keep each chat as a gateway session
// (docs/http-api.md), stream answers token by token. Plain DOM, no framework; every text
// from the gateway goes in through textContent / Text nodes, never as HTML.
'use strict';

const KEY_STORE = 'duet.apiKey';
const PHONE = window.matchMedia('(max-width: 720px)');

const $ = (id) => document.getElementById(id);

const state = {
  key: null,
  sessions: [], // as listed by GET /v1/sessions
  current: null, // the open session's id; null for a new chat not sent yet
  answering: null, // { ctrl: AbortController, stopped: bool } while an answer streams
  loadSeq: 0, // the latest session load asked for (older answers are ignored)
};

// ---- the gateway ----

class ApiError extends Error {
  constructor(status, message, retryAfter, code) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
    this.code = code;
  }
}

async function errorFrom(res) {
  let message = '';
  let code = null;
  try {
    const body = await res.json();
    message = (body.error && body.error.message) || '';
    code = (body.error && body.error.code) || null;
  } catch {
    // not JSON: the status says enough
  }
  return new ApiError(res.status, message || res.statusText, res.headers.get('Retry-After'), code);
}

function headers(extra) {
  return Object.assign({ Authorization: 'Bearer ' + state.key }, extra || {});
}

async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'Cannot reach the gateway (' + e.message + ').');
  }
  if (!res.ok) {
    throw await errorFrom(res);
  }
  return res.json();
}

// What to tell the person about a failed request.
function describe(err) {
  switch (err.status) {
    case 0:
      return err.message;
    case 401:
      return 'Your API key was refused: sign in again.';
    case 429:
    case 503: {
      const s = parseInt(err.retryAfter, 10);
      const when = Number.isFinite(s) && s > 0 ? `retry in ${s} s` : 'retry in a moment';
      return `Busy, ${when}.` + (err.message ? ` (${err.message})` : '');
    }
    case 404:
      return err.code === 'session_not_found' ? 'This chat no longer exists.' : err.message;
    case 409:
      return 'This chat is still answering; wait for it to finish, then send again.';
    case 413:
      return 'The message is too long for the gateway.';
    default:
      return err.message || `The gateway answered ${err.status}.`;
  }
}

// Shows a failed request's error; a refused key signs out. Returns nothing.
function fail(err) {
  if (err.status === 401) {
    signOut(describe(err));
    return;
  }
  showStatus(describe(err));
}

function showStatus(text) {
  const el = $('status');
  el.textContent = text;
  el.hidden = false;
}

function clearStatus() {
  $('status').hidden = true;
  $('status').textContent = '';
}

// ---- signing in and out ----

function showSignIn(message) {
  $('app').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  $('key').value = '';
  $('key').focus();
}

async function showApp() {
  $('signin').hidden = true;
  $('app').hidden = false;
  newChat();
  loadModel();
  try {
    await loadSessions();
  } catch (err) {
    fail(err);
  }
}

async function signIn(event) {
  event.preventDefault();
  const key = $('key').value.trim();
  if (!key) {
    return;
  }
  $('signin-button').disabled = true;
  $('signin-error').textContent = '';
  state.key = key;
  try {
    await api('GET', '/v1/sessions?limit=1'); // proves the key
    localStorage.setItem(KEY_STORE, key);
    await showApp();
  } catch (err) {
    state.key = null;
    $('signin-error').textContent =
      err.status === 401 ? 'That key was refused. Check it and try again.' : describe(err);
  } finally {
    $('signin-button').disabled = false;
  }
}

function signOut(message) {
  stopAnswer();
  localStorage.removeItem(KEY_STORE);
  state.key = null;
  state.sessions = [];
  state.current = null;
  $('sessions').replaceChildren();
  $('messages').replaceChildren();
  $('model').textContent = '';
  clearStatus();
  setDrawer(false);
  showSignIn(typeof message === 'string' ? message : '');
}

async function loadModel() {
  try {
    const models = await api('GET', '/v1/models');
    $('model').textContent = models.data && models.data[0] ? models.data[0].id : '';
  } catch {
    $('model').textContent = ''; // only a label: errors show where they matter
  }
}

// ---- the sessions list ----

function formatTime(ms) {
  const d = new Date(ms);
  const today = new Date();
  if (d.toDateString() === today.toDateString()) {
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

async function loadSessions() {
  const list = await api('GET', '/v1/sessions?limit=200');
  state.sessions = list.data || [];
  renderSessions();
  const more = $('sessions-more');
  more.hidden = !(list.total > state.sessions.length);
  more.textContent = `The newest ${state.sessions.length} of ${list.total} chats.`;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) {
    e.className = className;
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  return e;
}

function renderSessions() {
  const ul = $('sessions');
  ul.replaceChildren();
  if (state.sessions.length === 0) {
    ul.append(el('li', 'empty', 'No chats yet.'));
  }
  for (const s of state.sessions) {
    const li = el('li', 'session');
    li.dataset.id = s.id;
    const open = el('button', 'session-open');
    open.type = 'button';
    open.append(el('span', 'session-title', s.title || 'Untitled'));
    const n = s.messages === 1 ? '1 message' : `${s.messages} messages`;
    open.append(el('span', 'session-meta', `${formatTime(s.updated_ms)} · ${n}`));
    open.addEventListener('click', () => openSession(s.id));
    if (s.id === state.current) {
      li.classList.add('current');
      open.setAttribute('aria-current', 'true');
    }
    const rename = el('button', 'session-action rename', '\u270E');
    rename.type = 'button';
    rename.title = 'Rename';
    rename.setAttribute('aria-label', 'Rename this chat');
    rename.addEventListener('click', () => startRename(li, s));
    const del = el('button', 'session-action delete', '\u2715');
    del.type = 'button';
    del.title = 'Delete';
    del.setAttribute('aria-label', 'Delete this chat');
    del.addEventListener('click', () => deleteSession(s));
    li.append(open, rename, del);
    ul.append(li);
  }
  const cur = state.sessions.find((s) => s.id === state.current);
  $('chat-title').textContent = cur ? cur.title || 'Untitled' : 'New chat';
}

function startRename(li, s) {
  const input = el('input', 'session-rename');
  input.value = s.title || '';
  input.maxLength = 200;
  input.setAttribute('aria-label', 'New title');
  let done = false;
  const finish = async (save) => {
    if (done) {
      return;
    }
    done = true;
    const title = input.value.trim();
    if (save && title && title !== s.title) {
      try {
        await api('PATCH', '/v1/sessions/' + encodeURIComponent(s.id), { title });
      } catch (err) {
        fail(err);
      }
    }
    try {
      await loadSessions();
    } catch (err) {
      fail(err);
    }
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      finish(true);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      finish(false);
    }
  });
  input.addEventListener('blur', () => finish(true));
  li.replaceChildren(input);
  input.focus();
  input.select();
}

async function deleteSession(s) {
  if (!window.confirm(`Delete "${s.title || 'Untitled'}" and all its messages?`)) {
    return;
  }
  try {
    await api('DELETE', '/v1/sessions/' + encodeURIComponent(s.id));
    if (state.current === s.id) {
      newChat();
    }
    await loadSessions();
  } catch (err) {
    fail(err);
  }
}

// ---- the drawer (phones) ----

function setDrawer(open) {
  $('app').classList.toggle('sessions-open', open);
  $('toggle-sessions').setAttribute('aria-expanded', String(open));
}

// ---- the conversation ----

function placeholder() {
  $('messages').replaceChildren(el('p', 'placeholder', 'Ask anything to start a chat.'));
}

function newChat() {
  stopAnswer();
  state.current = null;
  state.loadSeq++;
  clearStatus();
  placeholder();
  renderSessions();
  setDrawer(false);
  $('input').focus();
}

async function openSession(id) {
  stopAnswer();
  setDrawer(false);
  const seq = ++state.loadSeq;
  let s;
  try {
    s = await api('GET', '/v1/sessions/' + encodeURIComponent(id));
  } catch (err) {
    if (seq === state.loadSeq) {
      fail(err);
      if (err.status === 404) {
        loadSessions().catch(fail);
      }
    }
    return;
  }
  if (seq !== state.loadSeq) {
    return; // another chat was chosen meanwhile
  }
  state.current = id;
  clearStatus();
  const box = $('messages');
  box.replaceChildren();
  if (s.system_prompt) {
    box.append(el('p', 'context-note', 'System prompt: ' + s.system_prompt));
  }
  if (s.summary_upto > 0) {
    box.append(el('p', 'context-note', 'The oldest turns reach the model as a summary.'));
  }
  for (const m of s.messages || []) {
    if (m.role === 'system') {
      continue;
    }
    const msg = addMessage(m.role, m.content);
    if (m.partial) {
      markPartial(msg, m.role === 'assistant' ? 'Incomplete answer' : 'Incomplete');
    } else if (m.role === 'assistant') {
      msg.root.dataset.state = 'complete';
    }
  }
  if (!box.firstChild) {
    placeholder();
  }
  renderSessions();
  box.scrollTop = box.scrollHeight;
}

// A message on screen: its element, the Text node answers grow in, and its notes.
function addMessage(role, content) {
  const box = $('messages');
  const ph = box.querySelector('.placeholder');
  if (ph) {
    ph.remove();
  }
  const root = el('article', 'msg ' + role);
  root.setAttribute('aria-label', role === 'user' ? 'You' : 'Answer');
  const textEl = el('div', 'msg-text');
  const text = document.createTextNode(content || '');
  textEl.append(text);
  const notes = el('div', 'msg-notes');
  root.append(textEl, notes);
  box.append(root);
  return { root, text, notes };
}

function addNote(msg, text, warn) {
  msg.notes.append(el('span', warn ? 'note warn' : 'note', text));
}

function markPartial(msg, why) {
  msg.root.classList.add('partial');
  msg.root.dataset.state = 'partial';
  addNote(msg, why, true);
}

function nearBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function setAnswering(on) {
  $('send').hidden = on;
  $('stop').hidden = !on;
}

function stopAnswer() {
  if (state.answering) {
    state.answering.stopped = true;
    state.answering.ctrl.abort();
  }
}

// Reads server-sent events from a fetch response as they arrive, calling onData with each
// event's data; stops early when onData returns false.
async function readEvents(res, onData) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buf += decoder.decode(value, { stream: true });
    let m;
    while ((m = /\r?\n\r?\n/.exec(buf))) {
      const block = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data && onData(data) === false) {
        reader.cancel().catch(() => {});
        return;
      }
    }
  }
}

function trimmedNote(dropped, summarized) {
  if (summarized) {
    return dropped > 0
      ? `${dropped} older message${dropped === 1 ? '' : 's'} sent as a summary`
      : 'Older turns sent as a summary';
  }
  return `${dropped} older message${dropped === 1 ? '' : 's'} left out to fit the context`;
}

async function send() {
  const input = $('input');
  const text = input.value;
  if (!text.trim() || state.answering) {
    return;
  }
  clearStatus();
  input.value = '';
  const box = $('messages');
  const asked = addMessage('user', text);
  const answer = addMessage('assistant', '');
  answer.root.classList.add('streaming');
  answer.root.dataset.state = 'streaming';
  box.scrollTop = box.scrollHeight;

  const answering = { ctrl: new AbortController(), stopped: false };
  state.answering = answering;
  setAnswering(true);
  const extra = { 'Content-Type': 'application/json' };
  if (state.current) {
    extra['X-Duet-Session'] = state.current; // the gateway holds the history
  }
  const body = { messages: [{ role: 'user', content: text }], stream: true };

  let finish = null;
  let done = false;
  let failure = null;
  let trimNote = null; // the header tells the count, the first chunk also the summary
  const showTrimmed = (dropped, summarized) => {
    if (dropped > 0 || summarized) {
      if (!trimNote) {
        trimNote = el('span', 'note trimmed');
        answer.notes.prepend(trimNote);
      }
      trimNote.textContent = trimmedNote(dropped, summarized);
    }
  };
  const adopt = (id) => {
    if (id && !state.current && state.answering === answering) {
      state.current = id;
    }
  };

  try {
    let res;
    try {
      res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: headers(extra),
        body: JSON.stringify(body),
        signal: answering.ctrl.signal,
      });
    } catch (e) {
      if (e.name === 'AbortError') {
        throw e;
      }
      throw new ApiError(0, 'Cannot reach the gateway (' + e.message + ').');
    }
    if (!res.ok) {
      throw await errorFrom(res);
    }
    adopt(res.headers.get('X-Duet-Session'));
    showTrimmed(parseInt(res.headers.get('X-Duet-Trimmed') || '0', 10) || 0, false);
    await readEvents(res, (data) => {
      if (data === '[DONE]') {
        done = true;
        return false;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        return true; // not ours to understand
      }
      if (chunk.error) {
        failure = chunk.error.message || 'the answer failed';
        return true;
      }
      if (chunk.duet) {
        adopt(chunk.duet.session_id);
        if (chunk.duet.trimmed) {
          showTrimmed(chunk.duet.trimmed.dropped_messages || 0, !!chunk.duet.trimmed.summarized);
        }
      }
      const choice = chunk.choices && chunk.choices[0];
      if (choice) {
        const piece = choice.delta && choice.delta.content;
        if (piece) {
          const follow = nearBottom(box);
          answer.text.appendData(piece);
          if (follow) {
            box.scrollTop = box.scrollHeight;
          }
        }
        if (choice.finish_reason) {
          finish = choice.finish_reason;
        }
      }
      return true;
    });
  } catch (err) {
    if (err.name === 'AbortError' || answering.stopped) {
      failure = 'stopped';
    } else if (err instanceof ApiError) {
      // refused before it began: nothing was stored, so the message goes back to the box
      asked.root.remove();
      answer.root.remove();
      if (!input.value) {
        input.value = text;
      }
      if (!box.querySelector('.msg')) {
        placeholder();
      }
      if (err.status === 404 && err.code === 'session_not_found') {
        state.current = null;
      }
      fail(err);
      failure = 'refused';
    } else {
      failure = err.message || String(err); // the connection broke mid-answer
    }
  } finally {
    if (state.answering === answering) {
      state.answering = null;
      setAnswering(false);
    }
  }

  answer.root.classList.remove('streaming');
  if (failure === 'refused') {
    // already handled
  } else if (failure === 'stopped') {
    markPartial(answer, 'Stopped');
  } else if (failure) {
    markPartial(answer, 'Failed: ' + failure);
  } else if (!done || !finish) {
    markPartial(answer, 'Cut off');
  } else {
    answer.root.dataset.state = 'complete';
    if (finish === 'length') {
      addNote(answer, 'Reached the length limit');
    }
  }
  if (state.key) {
    loadSessions().catch(fail);
  }
}

// ---- wiring ----

function init() {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut(''));
  $('new-chat').addEventListener('click', newChat);
  $('toggle-sessions').addEventListener('click', () =>
    setDrawer(!$('app').classList.contains('sessions-open')),
  );
  $('backdrop').addEventListener('click', () => setDrawer(false));
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('stop').addEventListener('click', stopAnswer);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('app').classList.contains('sessions-open')) {
      setDrawer(false);
    }
  });
  PHONE.addEventListener('change', () => setDrawer(false));
  state.key = localStorage.getItem(KEY_STORE);
  if (state.key) {
    showApp();
  } else {
    showSignIn('');
  }
}

init();

// The API client: every request carries the signed-in user's bearer token, so the API server
// authenticates and authorizes the page's calls exactly as it would kubectl's.
// `Collection` keeps a list of objects current with a watch (list, then watch from the list's
// resourceVersion; resume after the stream ends; relist on 410 Gone; back off on errors).

const TOKEN_KEY = 'rudder.dashboard.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// Called on any 401: the token expired or was revoked; the app shows the login form.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

export class ApiError extends Error {
  constructor(status, message, reason) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.reason = reason || '';
  }
}

// Adds query parameters to a path that may already have some.
export function withQuery(path, params) {
  const [base, q] = path.split('?');
  const search = new URLSearchParams(q || '');
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') search.set(k, String(v));
  }
  const s = search.toString();
  return s ? `${base}?${s}` : base;
}

// The collection path of a resource: cluster-wide when `ns` is empty.
export function resourcePath(group, resource, ns) {
  const prefix = group ? `/apis/${group}` : '/api/v1';
  return ns ? `${prefix}/namespaces/${encodeURIComponent(ns)}/${resource}` : `${prefix}/${resource}`;
}

export async function request(method, path, { body, contentType, signal, accept } = {}) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: accept || 'application/json' };
  if (body !== undefined) headers['Content-Type'] = contentType || 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: 'no-store',
    credentials: 'omit',
  });
  if (res.status === 401) onUnauthorized();
  if (!res.ok) {
    let status = {};
    try {
      status = await res.json();
    } catch {
      // Not a Status object (a proxy's error page): the HTTP status says enough.
    }
    throw new ApiError(res.status, status.message, status.reason);
  }
  return res;
}

export async function getJson(path, opts) {
  return (await request('GET', path, opts)).json();
}

export async function patchMerge(path, body) {
  return (await request('PATCH', path, { body, contentType: 'application/merge-patch+json' })).json();
}

export async function remove(path) {
  return (await request('DELETE', path)).json();
}

// Yields each line of a streaming response body as it arrives.
export async function* lines(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) yield line;
    }
  }
  if (buf.trim()) yield buf;
}

// A CRI log timestamp (`2026-12-08T00:20:27.44Z`, fraction optional and of any length) as a
// key that sorts by time.
export function logTimeKey(ts) {
  const [secs, frac = ''] = ts.replace(/Z$/, '').split('.');
  return `${secs}.${frac.padEnd(9, '0')}`;
}

// Splits one `timestamps=true` log line into its timestamp and text.
export function splitLogLine(line) {
  const i = line.indexOf(' ');
  return i < 0 ? ['', line] : [line.slice(0, i), line.slice(i + 1)];
}

// Streams a pod's log (`pods/{name}/log`) to `onText` until the server ends it or `signal`
// aborts. A connection lost mid-stream (browsers fail in-flight requests when the machine's
// network changes) is resumed from the last line's second (`sinceTime`), skipping the lines
// already shown; `onStatus` hears about the reconnection. API errors (a container that is not
// running) are thrown, not retried.
export async function streamLog(path, params, signal, { onText, onStatus }) {
  let last = '';
  let backoff = 500;
  for (;;) {
    const query = last
      ? { ...params, tailLines: '', sinceTime: `${last.slice(0, 19)}Z`, timestamps: 'true' }
      : { ...params, timestamps: 'true' };
    try {
      const res = await request('GET', withQuery(path, query), { signal, accept: '*/*' });
      if (last) onStatus('streaming…');
      backoff = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      const show = (line) => {
        const [ts, text] = splitLogLine(line);
        const k = ts ? logTimeKey(ts) : '';
        if (k && last && k <= last) return '';
        if (k) last = k;
        return `${text}\n`;
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          if (buf) onText(show(buf));
          return;
        }
        buf += value;
        const cut = buf.lastIndexOf('\n');
        if (cut < 0) continue;
        const text = buf.slice(0, cut).split('\n').map(show).join('');
        buf = buf.slice(cut + 1);
        if (text) onText(text);
      }
    } catch (e) {
      if (signal.aborted || e instanceof ApiError) throw e;
      onStatus(`reconnecting (${e.message})…`);
      await sleep(backoff, signal);
      if (signal.aborted) throw e;
      backoff = Math.min(backoff * 2, 15000);
    }
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

const key = (o) => `${o.metadata.namespace || ''}/${o.metadata.name}`;

// A list of objects kept current by a watch. Subscribers are called (batched) on every change.
export class Collection {
  constructor(path) {
    this.path = path;
    this.items = new Map();
    this.loaded = false;
    this.error = null;
    this.rv = '';
    this.subscribers = new Set();
    this.abort = new AbortController();
    this.pending = null;
    this.run();
  }

  list() {
    return [...this.items.values()];
  }

  subscribe(f) {
    this.subscribers.add(f);
    return () => this.subscribers.delete(f);
  }

  stop() {
    this.abort.abort();
  }

  notify() {
    // Batched: a relist or a burst of events re-renders once.
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      for (const f of this.subscribers) f(this);
    }, 30);
  }

  async run() {
    let backoff = 500;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        if (!this.rv) await this.relist(signal);
        await this.watch(signal);
        backoff = 500;
      } catch (e) {
        if (signal.aborted) return;
        // A watch that had connected failed mid-stream (the network changed): retry soon.
        if (this.connected) backoff = 500;
        this.connected = false;
        if (e.status === 410) {
          // The resourceVersion was compacted away: start over from a fresh list.
          this.rv = '';
          continue;
        }
        this.error = e;
        this.notify();
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 15000);
      }
    }
  }

  async relist(signal) {
    const list = await getJson(this.path, { signal });
    this.items = new Map((list.items || []).map((o) => [key(o), o]));
    this.rv = list.metadata.resourceVersion;
    this.loaded = true;
    this.error = null;
    this.notify();
  }

  // Returns when the server ends the stream (its watch timeout); the loop resumes from `rv`.
  async watch(signal) {
    const path = withQuery(this.path, {
      watch: 1,
      allowWatchBookmarks: true,
      resourceVersion: this.rv,
    });
    const res = await request('GET', path, { signal });
    this.connected = true;
    if (this.error) {
      this.error = null;
      this.notify();
    }
    for await (const line of lines(res)) {
      const ev = JSON.parse(line);
      if (ev.type === 'ERROR') {
        const s = ev.object || {};
        throw new ApiError(s.code || 500, s.message, s.reason);
      }
      const obj = ev.object;
      if (obj?.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
      if (ev.type === 'BOOKMARK') continue;
      if (ev.type === 'DELETED') this.items.delete(key(obj));
      else this.items.set(key(obj), obj);
      this.notify();
    }
  }
}

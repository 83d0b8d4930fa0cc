// Shared set-up for the API end-to-end tests: a fresh database, the real server binary
// (`switchboard serve` on a free port), an HTTP client over node's fetch, and helpers to sign up,
// create workspaces and count the event log.  Only node's own modules: fetch, http2, net, tls.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { randomUUID } from 'node:crypto';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the test through ctest)`);
  return v;
};

export const SRC = () => need('SWITCHBOARD_SOURCE_DIR');
export const BIN = () => need('SWITCHBOARD_BIN');

export function createDb(name) {
  return execFileSync(path.join(SRC(), 'tests/support/testdb.sh'), ['create', name], {
    encoding: 'utf8',
  }).trim();
}

export function dropDb(name) {
  try {
    execFileSync(path.join(SRC(), 'tests/support/testdb.sh'), ['drop', name], { stdio: 'ignore' });
  } catch {
    /* best effort */
  }
}

// One value from SQL (text), through psql.
export function sql(db, query) {
  return execFileSync('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', db, '-c', query], { encoding: 'utf8' }).trim();
}

export const eventCount = (db) => Number(sql(db, 'SELECT count(*) FROM events'));

// Starts `switchboard serve` on a free port.  Resolves to {url, port, log(), stop()}; stop() sends
// SIGTERM and resolves to the exit code.
export async function startServer({ db, env = {}, threads = 2, tls = null }) {
  const child = spawn(BIN(), ['serve'], {
    env: {
      ...process.env,
      SWITCHBOARD_DATABASE_URL: db,
      SWITCHBOARD_LISTEN: '127.0.0.1:0',
      SWITCHBOARD_THREADS: String(threads),
      SWITCHBOARD_LOG: 'info',
      ...(tls ? { SWITCHBOARD_TLS_CERT: tls.cert, SWITCHBOARD_TLS_KEY: tls.key } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const onData = (d) => {
    log += d.toString();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = once(child, 'exit');
  const port = await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const m = log.match(/serve: listening on https?:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearInterval(timer);
        resolve(Number(m[1]));
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`server exited before listening:\n${log}`));
      }
    }, 20);
  });
  return {
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
      const [code, signal] = await exited;
      clearTimeout(timer);
      // A server that did not exit cleanly (a sanitizer report, a crash): show why.
      if (code !== 0) process.stderr.write(`--- server log (exit ${code ?? signal}) ---\n${log.split('\n').filter((l) => !l.includes(' info ')).slice(-200).join('\n')}\n`);
      return code ?? signal;
    },
  };
}

// A JSON API client.  req() never throws on an HTTP status; it resolves to
// {status, headers, text, json}.
export class Client {
  constructor(url, token = null) {
    this.url = url;
    this.token = token;
  }

  as(token) {
    return new Client(this.url, token);
  }

  async req(method, p, { body, headers = {}, raw } = {}) {
    const h = { ...headers };
    if (this.token && !('authorization' in h)) h.authorization = `Bearer ${this.token}`;
    let payload;
    if (raw !== undefined) payload = raw;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      if (!('content-type' in h)) h['content-type'] = 'application/json';
    }
    const res = await fetch(this.url + p, { method, headers: h, body: payload });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  get(p, o) {
    return this.req('GET', p, o);
  }
  post(p, body, o = {}) {
    return this.req('POST', p, { ...o, body });
  }
  patch(p, body, o = {}) {
    return this.req('PATCH', p, { ...o, body });
  }
  put(p, body, o = {}) {
    return this.req('PUT', p, { ...o, body });
  }
  del(p, o) {
    return this.req('DELETE', p, o);
  }
}

export const uniqueEmail = (tag = 'user') => `${tag}-${randomUUID().slice(0, 8)}@example.com`;

// Signs up a fresh user; resolves to {token, user, client}.
export async function signup(url, { email = uniqueEmail(), name = 'Test User', password = 'correct horse 1' } = {}) {
  const r = await new Client(url).post('/v1/auth/signup', { email, password, name });
  if (r.status !== 201) throw new Error(`signup failed: ${r.status} ${r.text}`);
  return { token: r.json.token, user: r.json.user, email, password, client: new Client(url, r.json.token) };
}

// A workspace owned by a fresh user; resolves to {ws, owner}.
export async function workspace(url, name = 'Acme') {
  const owner = await signup(url);
  const r = await owner.client.post('/v1/workspaces', { name });
  if (r.status !== 201) throw new Error(`workspace failed: ${r.status} ${r.text}`);
  return { ws: r.json, owner };
}

// Polls fn until it returns a truthy value or the deadline passes (for read models, which follow
// the log a moment behind).
export async function eventually(fn, { timeoutMs = 10000, intervalMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// Sends raw bytes over TCP and resolves to the whole response text (the server closes or the
// timeout passes).
export function rawRequest(port, bytes, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(buf.toString('latin1'));
    }, timeoutMs);
    sock.on('connect', () => sock.end(bytes));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      if (buf.length) resolve(buf.toString('latin1'));
      else reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(buf.toString('latin1'));
    });
  });
}

export const statusOf = (raw) => {
  const m = raw.match(/^HTTP\/1\.[01] (\d{3})/);
  return m ? Number(m[1]) : 0;
};

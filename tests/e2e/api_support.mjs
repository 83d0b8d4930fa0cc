// Shared set-up for every end-to-end test (sse_support.mjs and messaging_support.mjs build on it):
// a fresh database, a server binary on a free port (`switchboard serve`, or the SSE tests'
// switchboard_test), an HTTP client over node's fetch, helpers to sign up, create workspaces, count
// the event log and poll.  Only node's own modules: fetch, net.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the test through ctest)`);
  return v;
};

export const SRC = () => need('SWITCHBOARD_SOURCE_DIR');
export const BIN = () => need('SWITCHBOARD_BIN');
export const BUILD = () => need('SWITCHBOARD_BUILD_DIR');

export const newId = () => randomUUID();

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

// Starts a server binary (bin with args; by default `switchboard serve`) on a free port against db.
// Resolves to {port, url, log(), stop(), kill()}: stop() sends SIGTERM and resolves to the exit
// code (a server still running 20 s later, twice its grace period, is killed and stop() says so);
// kill() sends SIGKILL, for crash tests.
export async function startServer({ db, env = {}, threads = 2, tls = null, bin = BIN(), args = ['serve'] }) {
  const child = spawn(bin, args, {
    env: {
      ...process.env,
      SWITCHBOARD_DATABASE_URL: db,
      SWITCHBOARD_LISTEN: '127.0.0.1:0',
      SWITCHBOARD_THREADS: String(threads),
      SWITCHBOARD_LOG: 'info',
      // Tests sign up many accounts from one address; the limit has its own test (api_auth).
      SWITCHBOARD_SIGNUPS_PER_MINUTE: '1000000',
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
    pid: child.pid,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      let hung = false;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, 20000);
      const [code, signal] = await exited;
      clearTimeout(timer);
      // A server that did not exit cleanly (a sanitizer report, a crash): show why.
      if (code !== 0) process.stderr.write(`--- server log (exit ${code ?? signal}) ---\n${log.split('\n').filter((l) => !l.includes(' info ')).slice(-200).join('\n')}\n`);
      return hung ? `${signal} (did not exit after SIGTERM)` : code ?? signal;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    // Sends a signal (e.g. SIGSTOP / SIGCONT to freeze a server and let it go on).
    signal(sig) {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
  };
}

// The usual life of a test file's server: before all tests a fresh database named dbName, a server
// on it (opts as for startServer, or opts.start(db) for another kind) and then opts.setup(fx) if
// given; after them, opts.teardown(fx) if given, then the server is stopped and must exit 0 (under
// ASan: no leak either), and the database is dropped.  Returns fx, whose db and srv are set once
// the before hook has run.  (Node 20 runs a file's top-level before hooks without waiting for one
// another: set-up that needs the server goes in setup.)
export function serverFixture(dbName, { setup, teardown, start, ...opts } = {}) {
  const fx = { db: null, srv: null };
  before(async () => {
    fx.db = createDb(dbName);
    fx.srv = await (start ? start(fx.db) : startServer({ db: fx.db, ...opts }));
    if (setup) await setup(fx);
  });
  after(async () => {
    if (teardown) await teardown(fx);
    const code = fx.srv ? await fx.srv.stop() : 0;
    dropDb(dbName);
    assert.equal(code, 0, 'server exits cleanly');
  });
  return fx;
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

// Polls fn until it returns a truthy value (which it resolves to) or the deadline passes: for read
// models, which follow the log a moment behind, and anything else that settles.
export async function eventually(fn, { timeoutMs = 10000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what} not met before the deadline`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// eventually() with a positional timeout and description.
export const waitFor = (pred, ms = 20000, what = 'condition') =>
  eventually(pred, { timeoutMs: ms, intervalMs: 20, what });

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

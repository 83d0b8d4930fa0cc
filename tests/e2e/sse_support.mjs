// Shared set-up for the SSE end-to-end tests: a fresh database, the server (switchboard_test: the
// real `serve` with a static test-only authorizer, tests/support/tools/test_server.c), events
// appended through the real appender (sbtest_append), and small SSE helpers.
import { spawn, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import { EventSource } from 'eventsource';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the test through ctest)`);
  return v;
};

export const SRC = () => need('SWITCHBOARD_SOURCE_DIR');
export const BUILD = () => need('SWITCHBOARD_BUILD_DIR');

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

export const newId = () => randomUUID();

// Starts the server on a free port.  tokens: {token: [workspace uuid | '*', ...]}.  Resolves to
// {url, port, log(), stop()}; stop() sends SIGTERM and resolves to the exit code.
export async function startServer({ db, tokens, env = {}, threads = 2 }) {
  const grants = [];
  for (const [tok, wss] of Object.entries(tokens)) for (const w of wss) grants.push(`${tok}:${w}`);
  const child = spawn(path.join(BUILD(), 'switchboard_test'), [], {
    env: {
      ...process.env,
      SWITCHBOARD_DATABASE_URL: db,
      SWITCHBOARD_LISTEN: '127.0.0.1:0',
      SWITCHBOARD_THREADS: String(threads),
      SWITCHBOARD_LOG: 'info',
      SBTEST_AUTH_TOKENS: grants.join(','),
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
      const m = log.match(/serve: listening on http:\/\/127\.0\.0\.1:(\d+)/);
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
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    // SIGTERM; resolves to the exit code (or signal name).  A server that has not exited 20 s
    // later (its grace period is 10 s) is killed, and the failure says so.
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
      const [code, signal] = await exited;
      clearTimeout(timer);
      return signal ? `${signal} (did not exit after SIGTERM)` : code;
    },
  };
}

// Appends events (sbtest_append --print); resolves to [{position, stream, type}] in commit order.
export function append(db, ws, opts = {}) {
  const args = [db, '--workspace', ws, '--print'];
  for (const [k, v] of Object.entries(opts)) args.push(`--${k}`, String(v));
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(BUILD(), 'sbtest_append'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`sbtest_append exited ${code}: ${err}`));
      resolve(
        out
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => {
            const [position, stream, type] = l.split(' ');
            return { position: Number(position), stream, type };
          }),
      );
    });
  });
}

export const streamPath = (ws) => `/v1/workspaces/${ws}/events/stream`;

// An EventSource (the npm `eventsource` package) sending the bearer token in a header.  Collects
// every event of the given types into `events` as {id, type, data}.
export function openEventSource(url, { token, types = ['ContactUpdated'], headers = {} } = {}) {
  const es = new EventSource(url, {
    fetch: (input, init) =>
      fetch(input, {
        ...init,
        headers: { ...init.headers, ...headers, ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      }),
  });
  const events = [];
  const waiters = [];
  const check = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].pred()) {
        waiters[i].resolve();
        waiters.splice(i, 1);
      }
    }
  };
  for (const t of types) {
    es.addEventListener(t, (e) => {
      events.push({ id: e.lastEventId, type: e.type, data: JSON.parse(e.data) });
      check();
    });
  }
  return {
    es,
    events,
    // Resolves once pred() holds; rejects after ms.
    until(pred, ms = 20000, what = 'condition') {
      if (pred()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            reject(new Error(`timed out waiting for ${what}: have ${events.length} events`));
          }
        }, ms).unref();
      });
    },
    close: () => es.close(),
  };
}

// A raw HTTP/1.1 SSE request: resolves with {res, chunks()} once the response headers arrived.
export function rawGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      resolve({ req, res, text: () => text });
    });
    req.on('error', reject);
  });
}

// Waits until pred() holds, polling.
export async function waitFor(pred, ms = 20000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Access-log lines of finished SSE requests (h2o logs a request when it disposes of it).
export const finishedStreams = (log, ws) =>
  log.split('\n').filter((l) => l.includes(`http: GET ${streamPath(ws)} 200 `)).length;

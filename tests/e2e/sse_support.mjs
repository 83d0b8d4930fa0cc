// Set-up for the SSE end-to-end tests, on api_support.mjs: the server (switchboard_test: the real
// `serve` with a static test-only authorizer, tests/support/tools/test_server.c), events appended
// through the real appender (sbtest_append), and small SSE helpers.
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { BUILD, SRC, createDb, dropDb, newId, startServer as startBinary, waitFor } from './api_support.mjs';

export { BUILD, SRC, createDb, dropDb, newId, waitFor };

// Starts switchboard_test on a free port.  tokens: {token: [workspace uuid | '*', ...]}.  Resolves
// as api_support's startServer does.
export async function startServer({ db, tokens, env = {}, threads = 2 }) {
  const grants = [];
  for (const [tok, wss] of Object.entries(tokens)) for (const w of wss) grants.push(`${tok}:${w}`);
  return startBinary({
    db,
    threads,
    bin: path.join(BUILD(), 'switchboard_test'),
    args: [],
    env: { SBTEST_AUTH_TOKENS: grants.join(','), ...env },
  });
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

// Access-log lines of finished SSE requests (h2o logs a request when it disposes of it).
export const finishedStreams = (log, ws) =>
  log.split('\n').filter((l) => l.includes(`http: GET ${streamPath(ws)} 200 `)).length;

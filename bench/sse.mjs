// bench/sse.mjs: SSE fan-out.  For each client count, starts the server (BUILD/switchboard_test:
// serve with a static bench token), connects that many SSE clients spread over WORKSPACES
// workspaces, measures the server's resident memory per idle client, then appends RATE events/s
// for SECONDS (sbtest_append, spread over the same workspaces) and reports append -> delivery
// latency: from the appender's submission (the payload's sent_us) to the client reading the
// message, beside the appender's own latency to the commit (commit_*) and this process's event-loop
// delays (client_loop_delay_*), the two parts of it that are not the server's; from_commit_* is
// each event's latency from its commit (the appender's callback) to the client reading it.
//
//   node bench/sse.mjs BUILD_DIR CONNINFO [--clients 1000,10000] [--rate 5000] [--seconds 10]
//                      [--workspaces 1000] [--proto h1|h2] [--threads N]
//
// Prints one line per client count.  Everything runs on this machine: the server, PostgreSQL, the
// appender and these clients share its cores.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const [build, db, ...rest] = process.argv.slice(2);
if (!build || !db) {
  console.error('usage: node bench/sse.mjs BUILD_DIR CONNINFO [--clients N,...] [--rate R] [--seconds S] ' +
    '[--workspaces W] [--proto h1|h2] [--threads N]');
  process.exit(2);
}
const opt = { clients: '1000,10000', rate: '5000', seconds: '10', workspaces: '1000', proto: 'h1', threads: String(os.cpus().length) };
for (let i = 0; i < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const RATE = Number(opt.rate);
const SECONDS = Number(opt.seconds);
const NWS = Number(opt.workspaces);
const PROTO = opt.proto;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

function rssKb(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}

async function startServer() {
  const child = spawn(path.join(build, 'switchboard_test'), [], {
    env: {
      ...process.env,
      SWITCHBOARD_DATABASE_URL: db,
      SWITCHBOARD_LISTEN: '127.0.0.1:0',
      SWITCHBOARD_THREADS: opt.threads,
      SWITCHBOARD_LOG: 'info',
      SBTEST_AUTH_TOKENS: 'bench:*',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const grab = (d) => {
    if (log.length < 1 << 16) log += d;
  };
  child.stdout.on('data', grab);
  child.stderr.on('data', grab);
  for (;;) {
    const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) return { child, port: Number(m[1]) };
    if (child.exitCode !== null) throw new Error(`server exited:\n${log}`);
    await sleep(20);
  }
}

// One SSE client's parser: counts messages and records latencies once measuring is on.
function makeSink(state) {
  let buf = '';
  return (chunk) => {
    buf += chunk;
    const end = buf.lastIndexOf('\n\n');
    if (end < 0) return;
    const done = buf.slice(0, end);
    buf = buf.slice(end + 2);
    const t = nowUs();
    let i = 0;
    for (;;) {
      i = done.indexOf('"seq":', i);
      if (i < 0) break;
      const seq = parseInt(done.slice(i + 6, i + 26), 10);
      i = done.indexOf('"sent_us":', i);
      if (i < 0) break;
      i += 10;
      const sent = parseInt(done.slice(i, i + 20), 10);
      state.received++;
      if (state.measuring && sent >= state.measureFrom) {
        state.lat.push(t - sent);
        state.got.push(seq, t);
      }
    }
  };
}

function openH1(port, ws, state) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/v1/workspaces/${ws}/events/stream`, agent: false, headers: { authorization: 'Bearer bench' } },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        res.setEncoding('utf8');
        const sink = makeSink(state);
        let started = false;
        res.on('data', (d) => {
          if (!started) {
            started = true;
            resolve(() => req.destroy());
          }
          sink(d);
        });
      },
    );
    req.on('error', reject);
  });
}

function openH2(session, ws, state) {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': `/v1/workspaces/${ws}/events/stream`, authorization: 'Bearer bench' });
    s.setEncoding('utf8');
    const sink = makeSink(state);
    let started = false;
    s.on('data', (d) => {
      if (!started) {
        started = true;
        resolve(() => s.close(http2.constants.NGHTTP2_CANCEL));
      }
      sink(d);
    });
    s.on('error', reject);
  });
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(nclients) {
  const workspaces = Array.from({ length: NWS }, () => randomUUID());
  const srv = await startServer();
  await sleep(500);
  const rss0 = rssKb(srv.child.pid);
  const state = { received: 0, lat: [], got: [], measuring: false, measureFrom: 0 };
  const closers = [];
  const sessions = [];
  const t0 = Date.now();
  const batch = 500;
  for (let i = 0; i < nclients; i += batch) {
    const opens = [];
    for (let j = i; j < Math.min(nclients, i + batch); j++) {
      const ws = workspaces[j % NWS];
      if (PROTO === 'h2') {
        if (j % 100 === 0) sessions.push(http2.connect(`http://127.0.0.1:${srv.port}`));
        opens.push(openH2(sessions[sessions.length - 1], ws, state));
      } else {
        opens.push(openH1(srv.port, ws, state));
      }
    }
    closers.push(...(await Promise.all(opens)));
  }
  const connectMs = Date.now() - t0;
  await sleep(2000);
  const rss1 = rssKb(srv.child.pid);
  const perClientKb = (rss1 - rss0) / nclients;

  // Append RATE events/s for SECONDS; measure after a one-second warm-up.
  const count = RATE * SECONDS;
  const commitLog = path.join(os.tmpdir(), `sb_sse_commits_${process.pid}.txt`);
  state.measureFrom = nowUs() + 1_000_000;
  state.measuring = true;
  // This process reads every stream on one thread: a message is timed when its chunk is handled,
  // so a stall of this event loop (garbage collection, or no core free) adds to every latency in
  // it.  Its own delays are reported beside the latencies, to tell the client's tail from the
  // server's.
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  setTimeout(() => loopDelay.enable(), 1000);
  const before = state.received;
  const app = spawn(
    path.join(build, 'sbtest_append'),
    [db, '--workspace', workspaces.join(','), '--count', String(count), '--rate', String(RATE), '--in-flight', '256',
      '--latency', '--commit-log', commitLog],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // The appender's own latency, submission to commit, of the same events: the part of the delivery
  // latency spent in the database before the server can see an event.
  let appErr = '';
  app.stderr.setEncoding('utf8');
  app.stderr.on('data', (d) => { appErr += d; });
  const appStart = Date.now();
  const code = await new Promise((r) => app.on('close', r));
  const commit = appErr.match(/append_latency_ms p50=([\d.]+) p99=([\d.]+) max=([\d.]+)/);
  process.stderr.write(appErr.replace(/^append_latency_ms .*\n?/m, ''));
  const appSecs = (Date.now() - appStart) / 1000;
  const expected = count * (nclients / NWS);
  const deadline = Date.now() + 30000;
  while (state.received - before < expected && Date.now() < deadline) await sleep(50);
  loopDelay.disable();
  // The server's part: from each event's commit (the appender's callback) to the client reading it.
  const committed = new Map();
  for (const line of fs.readFileSync(commitLog, 'utf8').split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0) committed.set(Number(line.slice(0, sp)), Number(line.slice(sp + 1)));
  }
  fs.rmSync(commitLog, { force: true });
  const fromCommit = [];
  for (let k = 0; k < state.got.length; k += 2) {
    const c = committed.get(state.got[k]);
    if (c !== undefined) fromCommit.push(state.got[k + 1] - c);
  }
  fromCommit.sort((a, b) => a - b);
  const lat = state.lat.sort((a, b) => a - b);
  const ms = (us) => (us / 1000).toFixed(2);
  const delayMs = (ns) => (ns / 1e6).toFixed(2);
  console.log(
    `sse proto=${PROTO} clients=${nclients} workspaces=${NWS} threads=${opt.threads} ` +
      `connect_s=${(connectMs / 1000).toFixed(1)} rss_per_idle_client_kb=${perClientKb.toFixed(1)} ` +
      `append_rate=${Math.round(count / appSecs)}/s appender_exit=${code} ` +
      `delivered=${state.received - before}/${expected} ` +
      `p50_ms=${ms(pct(lat, 50))} p99_ms=${ms(pct(lat, 99))} max_ms=${ms(lat[lat.length - 1] ?? NaN)} ` +
      `client_loop_delay_p99_ms=${delayMs(loopDelay.percentile(99))} client_loop_delay_max_ms=${delayMs(loopDelay.max)} ` +
      `commit_p50_ms=${commit ? commit[1] : 'NaN'} commit_p99_ms=${commit ? commit[2] : 'NaN'} commit_max_ms=${commit ? commit[3] : 'NaN'} ` +
      `from_commit_p50_ms=${ms(pct(fromCommit, 50))} from_commit_p99_ms=${ms(pct(fromCommit, 99))} from_commit_max_ms=${ms(fromCommit[fromCommit.length - 1] ?? NaN)}`,
  );
  for (const c of closers) c();
  for (const s of sessions) s.close();
  srv.child.kill('SIGTERM');
  await new Promise((r) => srv.child.on('exit', r));
}

for (const n of opt.clients.split(',').map(Number)) await run(n);

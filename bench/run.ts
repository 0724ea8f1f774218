/**
 * `npm run bench [-- --quick]`: cometsocket against raw `ws` and socket.io on loopback, in one run.
 *
 * Where the servers run: in one forked child process (servers.ts), the clients in this one. On a
 * 2-core machine that gives client and server a core each, as on a real network, instead of one
 * event loop doing both halves of every echo, where each side's cost would be added to the other's
 * (and a slow server would look like a slow client). All three servers share the child, but only
 * one case runs at a time, so the idle ones cost nothing. The child inherits this process's Node
 * flags (fork's default), so `node --cpu-prof --import tsx bench/run.ts` profiles both halves.
 *
 * Noise: the machines are shared, so every case runs in several rounds, after a discarded warm-up
 * round of the same size (first rounds run up to 2× slower: JIT, CPU frequency). Within a round
 * the clients of a case run back to back, in an order rotated each round. The table shows the
 * median over rounds, the min and max, and the spread (half of max − min, relative to the median);
 * each ratio is the median of the per-round ratios of two clients measured side by side, with its
 * min–max. The throughput cases also report CPU time per message (client + server process), which
 * moves much less with the neighbours' load than messages per second do.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connectTime } from './cases/connect';
import { latency } from './cases/latency';
import { throughput } from './cases/throughput';
import { clients, type Client } from './clients';
import type { ChildMessage, OpenCounts, Servers } from './servers';
import { median, within } from './util';

const quick = process.argv.includes('--quick');

interface Size {
  /** Messages per WebSocket throughput run. */
  wsMessages: number;
  /** Messages per long-polling throughput run. */
  lpMessages: number;
  /** Binary messages per WebSocket throughput run. */
  binMessages: number;
  /** Round trips per latency run. */
  roundTrips: number;
  /** Connections per connect-time run. */
  dials: number;
}

const ROUNDS = quick ? 5 : 11;
const SIZE: Size = quick
  ? { wsMessages: 10000, lpMessages: 5000, binMessages: 2000, roundTrips: 1000, dials: 10 }
  : { wsMessages: 50000, lpMessages: 20000, binMessages: 10000, roundTrips: 5000, dials: 40 };
/** Messages in flight in the throughput cases. */
const WINDOW = 100;
/** A 100-byte string message. */
const PAYLOAD = 'x'.repeat(100);
/** A 4 KiB binary message (every byte value): native binary WebSocket messages, no base64. */
const BINARY = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
/** Longest any one measurement (or the server start) may take. */
const LIMIT_MS = 60000;
/** Longest the whole run may take before it is abandoned. */
const RUN_LIMIT_MS = quick ? 120000 : 600000;

interface Metric {
  name: string;
  /** Decimals shown. */
  digits: number;
}

interface Case {
  key: string;
  title: string;
  clients: Client[];
  metrics: Metric[];
  measure(c: Client, servers: Servers, s: Size): Promise<number[]>;
}

/** The throughput cases' metrics. */
const CPU_METRICS: Metric[] = [
  { name: 'msg/s', digits: 0 },
  { name: 'CPU µs/msg (client + server)', digits: 1 },
];

const { rawWs, cometWs, cometLp, cometDefault, ioWs, ioPolling, ioDefault } = clients;

const CASES: Case[] = [
  {
    key: 'ws',
    title: `WebSocket echo throughput (${fmt(SIZE.wsMessages, 0)} × ${PAYLOAD.length} B, ${WINDOW} in flight)`,
    clients: [rawWs, cometWs, ioWs],
    metrics: CPU_METRICS,
    measure: (c, sv, s) => throughput(c, sv, s.wsMessages, WINDOW, PAYLOAD, LIMIT_MS),
  },
  {
    key: 'bin',
    title: `WebSocket binary echo throughput (${fmt(SIZE.binMessages, 0)} × ${BINARY.length} B, ${WINDOW} in flight)`,
    clients: [rawWs, cometWs, ioWs],
    metrics: CPU_METRICS,
    measure: (c, sv, s) => throughput(c, sv, s.binMessages, WINDOW, BINARY, LIMIT_MS),
  },
  {
    key: 'rtt',
    title: `WebSocket echo latency (${fmt(SIZE.roundTrips, 0)} round trips, 1 in flight)`,
    clients: [rawWs, cometWs, ioWs],
    metrics: [
      { name: 'p50 µs', digits: 0 },
      { name: 'p99 µs', digits: 0 },
    ],
    measure: (c, sv, s) => latency(c, sv, s.roundTrips, PAYLOAD, LIMIT_MS),
  },
  {
    key: 'lp',
    title: `Long-polling echo throughput (${fmt(SIZE.lpMessages, 0)} × ${PAYLOAD.length} B, ${WINDOW} in flight)`,
    clients: [cometLp, ioPolling],
    metrics: CPU_METRICS,
    measure: (c, sv, s) => throughput(c, sv, s.lpMessages, WINDOW, PAYLOAD, LIMIT_MS),
  },
  {
    key: 'connect',
    title: `Connect to first message (median of ${SIZE.dials} dials)`,
    clients: [cometDefault, cometLp, ioDefault, rawWs],
    metrics: [{ name: 'ms', digits: 2 }],
    measure: (c, sv, s) => connectTime(c, sv, s.dials, LIMIT_MS).then((v) => [v]),
  },
];

interface Ratio {
  label: string;
  key: string;
  metric: number;
  num: Client;
  den: Client;
  /** What a better result looks like. */
  better: 'higher' | 'lower';
}

const RATIOS: Ratio[] = [
  { label: 'cometsocket/ws throughput', key: 'ws', metric: 0, num: cometWs, den: rawWs, better: 'higher' },
  { label: 'socket.io/ws throughput', key: 'ws', metric: 0, num: ioWs, den: rawWs, better: 'higher' },
  { label: 'cometsocket/socket.io throughput', key: 'ws', metric: 0, num: cometWs, den: ioWs, better: 'higher' },
  { label: 'cometsocket/ws CPU per message', key: 'ws', metric: 1, num: cometWs, den: rawWs, better: 'lower' },
  { label: 'socket.io/ws CPU per message', key: 'ws', metric: 1, num: ioWs, den: rawWs, better: 'lower' },
  { label: 'cometsocket/socket.io CPU per message', key: 'ws', metric: 1, num: cometWs, den: ioWs, better: 'lower' },
  { label: 'cometsocket/ws binary throughput', key: 'bin', metric: 0, num: cometWs, den: rawWs, better: 'higher' },
  { label: 'socket.io/ws binary throughput', key: 'bin', metric: 0, num: ioWs, den: rawWs, better: 'higher' },
  { label: 'cometsocket/socket.io binary throughput', key: 'bin', metric: 0, num: cometWs, den: ioWs, better: 'higher' },
  { label: 'cometsocket/ws binary CPU per message', key: 'bin', metric: 1, num: cometWs, den: rawWs, better: 'lower' },
  { label: 'cometsocket/ws latency p50', key: 'rtt', metric: 0, num: cometWs, den: rawWs, better: 'lower' },
  { label: 'socket.io/ws latency p50', key: 'rtt', metric: 0, num: ioWs, den: rawWs, better: 'lower' },
  { label: 'cometsocket/socket.io latency p50', key: 'rtt', metric: 0, num: cometWs, den: ioWs, better: 'lower' },
  { label: 'cometsocket/ws latency p99', key: 'rtt', metric: 1, num: cometWs, den: rawWs, better: 'lower' },
  { label: 'cometsocket/socket.io latency p99', key: 'rtt', metric: 1, num: cometWs, den: ioWs, better: 'lower' },
  { label: 'cometsocket/socket.io long-polling throughput', key: 'lp', metric: 0, num: cometLp, den: ioPolling, better: 'higher' },
  { label: 'cometsocket/socket.io long-polling CPU per message', key: 'lp', metric: 1, num: cometLp, den: ioPolling, better: 'lower' },
  { label: 'cometsocket default/ws connect time', key: 'connect', metric: 0, num: cometDefault, den: rawWs, better: 'lower' },
  { label: 'cometsocket long-polling/ws connect time', key: 'connect', metric: 0, num: cometLp, den: rawWs, better: 'lower' },
  { label: 'socket.io default/ws connect time', key: 'connect', metric: 0, num: ioDefault, den: rawWs, better: 'lower' },
  { label: 'cometsocket default/socket.io default connect time', key: 'connect', metric: 0, num: cometDefault, den: ioDefault, better: 'lower' },
];

/** results[case key][client name][metric] = one value per round. */
type Results = Record<string, Record<string, number[][]>>;

// ---- the server process ----------------------------------------------------------------------

function startServers(): Promise<Servers & { count(): Promise<OpenCounts>; stop(): Promise<void> }> {
  const child = fork(fileURLToPath(new URL('./servers.ts', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  /** The child's next message that `pick` accepts. */
  const next = <T>(what: string, pick: (m: ChildMessage) => T | undefined): Promise<T> =>
    within(
      LIMIT_MS,
      'server process (' + what + ')',
      new Promise<T>((resolve, reject) => {
        const onMessage = (m: ChildMessage): void => {
          const v = pick(m);
          if (v === undefined) return;
          child.off('exit', onExit);
          child.off('message', onMessage);
          resolve(v);
        };
        const onExit = (code: number | null): void => reject(new Error('server process exited with ' + code));
        child.on('message', onMessage);
        child.once('exit', onExit);
      }),
    );
  return next('start', (m) => ('ports' in m ? m.ports : undefined)).then(
    (ports) => ({
      ports,
      cpuTime() {
        child.send('cpu');
        return next('cpu', (m) => ('cpu' in m ? m.cpu : undefined));
      },
      count() {
        child.send('count');
        return next('count', (m) => ('open' in m ? m.open : undefined));
      },
      stop() {
        if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.send('stop');
        return within(5000, 'server process exit', exited).catch(() => void child.kill('SIGKILL'));
      },
    }),
    (e: Error) => {
      child.kill('SIGKILL');
      throw e;
    },
  );
}

// ---- measuring -------------------------------------------------------------------------------

async function round(servers: Servers, s: Size, r: number, results: Results | null): Promise<void> {
  for (const c of CASES) {
    // Rotate the order so that no client always runs first (cold) or right after another.
    const order = c.clients.map((_, i) => c.clients[(i + r) % c.clients.length]);
    for (const client of order) {
      const values = await c.measure(client, servers, s);
      if (!results) continue;
      const perMetric = ((results[c.key] ||= {})[client.name] ||= c.metrics.map(() => []));
      values.forEach((v, i) => perMetric[i].push(v));
    }
  }
}

// ---- printing --------------------------------------------------------------------------------

function fmt(v: number, digits: number): string {
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(rows: string[][], right: boolean[]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => (right[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

function report(results: Results): string {
  const out: string[] = [];
  for (const c of CASES) {
    out.push(c.title);
    const rows = [['  client + server', 'metric', 'median', 'min', 'max', 'spread']];
    for (const client of c.clients) {
      c.metrics.forEach((m, i) => {
        const v = results[c.key][client.name][i];
        const mid = median(v);
        const lo = Math.min(...v);
        const hi = Math.max(...v);
        rows.push(['  ' + client.name, m.name, fmt(mid, m.digits), fmt(lo, m.digits), fmt(hi, m.digits), '±' + fmt((50 * (hi - lo)) / mid, 0) + '%']);
      });
    }
    out.push(table(rows, [false, false, true, true, true, true]), '');
  }
  out.push(`Ratios: median of ${ROUNDS} per-round ratios [min–max]; pairing each round's two numbers cancels`);
  out.push('much of the machine noise, so a ratio can differ from the ratio of the medians above.');
  const rows = RATIOS.map((q) => {
    const num = results[q.key][q.num.name][q.metric];
    const den = results[q.key][q.den.name][q.metric];
    const per = num.map((v, i) => v / den[i]);
    return ['  ' + q.label, '= ' + fmt(median(per), 2) + '×', '[' + fmt(Math.min(...per), 2) + '–' + fmt(Math.max(...per), 2) + ']', '(' + q.better + ' is better)'];
  });
  out.push(table(rows, [false, true, false, false]));
  return out.join('\n');
}

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    console.error('bench: abandoned after ' + RUN_LIMIT_MS / 1000 + ' s');
    process.exit(1);
  }, RUN_LIMIT_MS);
  const servers = await startServers();
  const started = performance.now();
  try {
    console.error(`bench: ${quick ? 'quick' : 'full'} run, ${ROUNDS} rounds after a warm-up round; servers in child process`);
    await round(servers, SIZE, 0, null);
    const results: Results = {};
    for (let r = 0; r < ROUNDS; r++) {
      console.error(`bench: round ${r + 1}/${ROUNDS}`);
      await round(servers, SIZE, r, results);
    }
    console.log(report(results));
    // Let the servers notice the last closes before counting what is left.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const open = await servers.count();
    console.log(`\nServer connections still open after every client closed (should be 0): ws ${open.ws}, cometsocket ${open.comet}, socket.io ${open.io}`);
    console.log(`Node ${process.version}, ${Math.round((performance.now() - started) / 1000)} s`);
  } finally {
    await servers.stop();
    clearTimeout(watchdog);
  }
}

main().catch((e: Error) => {
  console.error('bench failed: ' + (e.stack || e.message));
  // Clients of an abandoned measurement may still hold sockets open.
  process.exit(1);
});

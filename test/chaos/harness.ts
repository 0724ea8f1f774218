/**
 * The chaos harness: a reference server, the fault proxy in front of it and one client, exchanging
 * numbered messages both ways at a steady rate while the proxy's scheduler injects faults; then an
 * exact account of every message (delivered once, in order, within its session; or handed back
 * when its session was lost), heartbeat detection times of half-open connections on both ends,
 * and a printed report.
 *
 * Accounting. Each side numbers its messages 1, 2, 3, ... across sessions (the payload is the
 * number as a string). For every message we know the session it was sent in (client: the session
 * current at send(), as named by the next 'open'; server: the Connection it was sent on) and where
 * it was delivered. Within a session, deliveries must be exactly the session's messages from its
 * first one, consecutively: anything else is a duplicate (delivered before) or a reorder (not the
 * successor of the previous delivery in that session). A message never delivered is "returned"
 * when its session was lost and the sender was handed it back (client: `session-lost`'s `unacked`;
 * server: the session's unacknowledged messages when it closed), else it is lost.
 */
import { expect } from 'vitest';
import WebSocket from 'ws';
import { connect, type Socket, type Transport } from '../../src/index';
import type { WebSocketConstructor } from '../../src/env';
import { createServer, type Connection, type RtServer } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import type { AddressInfo } from 'node:net';
import { FAULT_KINDS, FaultProxy, FaultScheduler, planFaults, plannedDuration, Rng, type FaultKind, type FaultPlanOptions, type Pair, type PlannedFault } from './fault-proxy';

// ---- parameters ------------------------------------------------------------------------------------

export const DEFAULT_SEED = 20240611;

export interface ChaosParams {
  seed: number;
  long: boolean;
  /** Messages each way. */
  messages: number;
  /** Faults per transport configuration. */
  faults: number;
  pingInterval: number;
  pingTimeout: number;
  sessionTimeout: number;
  pollTimeout: number;
  plan: Omit<FaultPlanOptions, 'count' | 'weights'>;
  /** Allowed lateness of heartbeat detection beyond interval + timeout, ms (a loaded machine). */
  detectSlack: number;
  /** Longest wait for the last messages after the faults, ms. */
  settle: number;
  /** The client's send buffer, messages: small enough that long outages fill it (send() false, 'drain'). */
  clientBuffer: number;
}

function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(name + ' must be a number, got ' + v);
  return n;
}

/**
 * Parameters from the environment: CHAOS_SEED, CHAOS_LONG=1 (1,000,000 messages and 1,000 faults,
 * literal 2–15 s partitions), CHAOS_MESSAGES and CHAOS_FAULTS (override the counts).
 */
export function chaosParams(env: NodeJS.ProcessEnv = process.env): ChaosParams {
  const long = env.CHAOS_LONG === '1';
  const seed = envInt(env, 'CHAOS_SEED') ?? DEFAULT_SEED;
  // Heartbeat: short, so that the faults (and the run) scale to it.
  const pingInterval = long ? 300 : 250;
  const pingTimeout = long ? 300 : 250;
  const L = pingInterval + pingTimeout;
  // The partitions are 2–15 s. The default run scales them to the short heartbeat
  // (×0.08: 160 ms–1.2 s, i.e. 0.3–2.4 × interval + timeout), so that some heal before either end
  // notices, most are noticed, and the longest outlive the session timeout (session-lost).
  const scale = long ? 1 : 0.08;
  return {
    seed,
    long,
    messages: envInt(env, 'CHAOS_MESSAGES') ?? (long ? 1_000_000 : 20_000),
    faults: envInt(env, 'CHAOS_FAULTS') ?? (long ? 1000 : 50),
    pingInterval,
    pingTimeout,
    sessionTimeout: long ? 8000 : 700,
    pollTimeout: long ? 500 : 400,
    plan: {
      gap: long ? [500, 3000] : [100, 450],
      partition: [Math.round(2000 * scale), Math.round(15000 * scale)],
      slow: long ? [1000, 5000] : [300, 1000],
      slowDelay: [50, 200],
      wsBlock: long ? [2000, 15000] : [600, 2000],
      halfOpenMax: 5 * L,
      halfOpenEstimate: L + 200,
    },
    detectSlack: envInt(env, 'CHAOS_DETECT_SLACK') ?? Math.max(300, L / 2),
    settle: long ? 180_000 : 40_000,
    clientBuffer: long ? 4096 : 512,
  };
}

// ---- configurations ------------------------------------------------------------------------------

export interface ChaosConfig {
  name: string;
  transports: Transport[];
  weights: Partial<Record<FaultKind, number>>;
}

/** The plan of a configuration: the same for a given seed, config and parameters. */
export function chaosPlan(cfg: ChaosConfig, p: ChaosParams, index: number): { plan: PlannedFault[]; rng: Rng; duration: number } {
  const rng = new Rng((p.seed + 7919 * (index + 1)) >>> 0);
  const plan = planFaults(rng, { ...p.plan, count: p.faults, weights: cfg.weights });
  return { plan, rng, duration: plannedDuration(plan) };
}

// ---- a `ws` WebSocket that does not crash the process ------------------------------------------------

/**
 * 'error' events the `ws` client emitted with no listener. EventEmitter throws those as uncaught
 * exceptions, which would kill the run: `ws` emits 'error' when a CONNECTING socket is closed, and
 * the websocket client transport used to set `onerror = null` before closing (fixed in ffdedf2,
 * "the ws client's onerror stays a no-op"). They are counted, and the suite fails on any, instead
 * of crashing.
 */
export const unhandledWsErrors: string[] = [];

class GuardedWebSocket extends WebSocket {
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error' && this.listenerCount('error') === 0) {
      unhandledWsErrors.push(String((args[0] as Error | undefined)?.message));
      return false;
    }
    return super.emit(event, ...args);
  }
}

export const GuardedWS = GuardedWebSocket as unknown as WebSocketConstructor;

// ---- cleanup ---------------------------------------------------------------------------------------

const cleanups: Array<() => unknown> = [];

/** Register something for `cleanupChaos` to close. */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

/** Close everything a run left open (clients, servers, proxies, timers); bounded. */
export async function cleanupChaos(): Promise<void> {
  while (cleanups.length) {
    const fn = cleanups.pop()!;
    try {
      await Promise.race([Promise.resolve(fn()), sleep(3000)]);
    } catch {
      /* best effort */
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolve when `check()` is true (polled every `every` ms), or false after `ms`. */
async function until(check: () => boolean, ms: number, every = 10): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(every);
  }
  return true;
}

// ---- accounting ------------------------------------------------------------------------------------

export interface DirectionStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** Never delivered, handed back when their session was lost. */
  returned: number;
  /** Delivered, and also in a lost session's unacknowledged messages (the ack never arrived). */
  deliveredAndReturned: number;
  /** Examples of what went wrong, for the failure message. */
  problems: string[];
}

/**
 * One direction. `senderSession[n]` names the session message n was sent in; `deliveries` lists,
 * per receiving session, the messages in delivery order; `returned[n]` is 1 when n was handed back.
 */
export function account(sent: number, senderSession: (n: number) => string | undefined, deliveries: Map<string, number[]>, returned: Uint8Array): DirectionStats {
  const seen = new Uint8Array(sent + 1);
  const first = new Map<string, number>();
  for (let n = 1; n <= sent; n++) {
    const s = senderSession(n) ?? '?';
    if (!first.has(s)) first.set(s, n);
  }
  const st: DirectionStats = { sent, delivered: 0, lost: 0, duplicated: 0, reordered: 0, returned: 0, deliveredAndReturned: 0, problems: [] };
  const problem = (m: string): void => {
    if (st.problems.length < 20) st.problems.push(m);
  };
  for (const [sid, list] of deliveries) {
    let expected = first.get(sid) ?? -1;
    for (const n of list) {
      if (!(n >= 1 && n <= sent)) {
        st.reordered++;
        problem('session ' + sid + ': delivered ' + n + ', never sent');
        continue;
      }
      if (seen[n]) {
        st.duplicated++;
        problem('session ' + sid + ': ' + n + ' delivered again');
        continue;
      }
      seen[n] = 1;
      st.delivered++;
      if (senderSession(n) !== sid) problem('session ' + sid + ': delivered ' + n + ', sent in session ' + senderSession(n));
      if (n !== expected) {
        st.reordered++;
        problem('session ' + sid + ': delivered ' + n + ' where ' + expected + ' was due');
      }
      expected = n + 1;
    }
  }
  for (let n = 1; n <= sent; n++) {
    if (returned[n] && seen[n]) st.deliveredAndReturned++;
    else if (returned[n]) st.returned++;
    else if (!seen[n]) {
      st.lost++;
      problem('lost ' + n + ' (sent in session ' + senderSession(n) + ')');
    }
  }
  return st;
}

// ---- one run ---------------------------------------------------------------------------------------

export interface HeartbeatSample {
  /** Fault start to the client closing the silent transport, ms. */
  client: number;
  /** The close code that made it reconnect (4408: its heartbeat), or 0 when an upgrade moved the session first. */
  clientCode: number;
  /** Fault start to the server dropping it, ms. */
  server: number;
  /** How the server dropped it: its own heartbeat, or the client's resume replaced it. */
  serverBy: 'heartbeat' | 'resume';
}

export interface ChaosReport {
  config: string;
  seed: number;
  ms: number;
  plannedMs: number;
  c2s: DirectionStats;
  s2c: DirectionStats;
  faults: Record<FaultKind, number>;
  faultLog: string[];
  resumes: number;
  reconnects: Record<string, number>;
  sessionLosses: number;
  sessionsOpened: number;
  /** Server sessions the client never adopted (e.g. a race loser). */
  orphanSessions: number;
  transports: string[];
  fallbacks: number;
  upgrades: number;
  finalTransport: string | null;
  heartbeat: HeartbeatSample[];
  /** Half-open faults whose detection could not be measured (no session on the wire) or never came. */
  heartbeatSkipped: number;
  heartbeatMissed: string[];
  /** Heartbeat timeouts on each end, and those no silencing fault explains (times since the proxy started). */
  timeouts: { client: number; server: number; unexplainedClient: string[]; unexplainedServer: string[] };
  closes: string[];
  unhandledWsErrors: number;
  /** Times the client's send() returned false (buffer full), and 'drain' events. */
  buffer: { fulls: number; drains: number; missedDrains: number; lateDrains: number };
  /** At the end: server sessions other than the client's still open; the client's session open on the server; the code the server saw when the client closed. */
  end: { leftovers: string[]; liveOk: boolean; closeCode: number | null; settling: { reconnects: number; open: boolean } };
  proxyConnections: number;
}

export interface ChaosHooks {
  /** Called on every server session before the harness listens to it (sabotage checks). */
  tamper?(conn: Connection): void;
  /** Called on the client before the harness listens to it (sabotage checks). */
  tamperClient?(sock: Socket): void;
  log?(line: string): void;
}

interface ServerSession {
  conn: Connection;
  deliveries: number[];
  closedCode: number | null;
}

export async function runChaos(cfg: ChaosConfig, p: ChaosParams, index: number, hooks: ChaosHooks = {}): Promise<ChaosReport> {
  const started = Date.now();
  const wsErrorsBefore = unhandledWsErrors.length;
  const log = hooks.log ?? (() => {});
  const { plan, rng, duration } = chaosPlan(cfg, p, index);
  const N = p.messages;

  // ---- server
  const serverOptions: ServerOptions = {
    path: '/rt',
    allowedOrigins: '*',
    pingInterval: p.pingInterval,
    pingTimeout: p.pingTimeout,
    sessionTimeout: p.sessionTimeout,
    pollTimeout: p.pollTimeout,
  };
  const rt: RtServer = createServer(serverOptions);
  const http = rt.listen(0, '127.0.0.1');
  cleanups.push(() => new Promise<void>((r) => rt.close(() => r())));
  await new Promise<void>((r) => (http.listening ? r() : http.once('listening', () => r())));
  const proxy: FaultProxy = await FaultProxy.start((http.address() as AddressInfo).port, {
    seed: p.seed + index,
    trace: process.env.CHAOS_DEBUG === '1' ? (m) => log('  ' + ((Date.now() - proxy.startedAt) / 1000).toFixed(3) + 's proxy: ' + m) : undefined,
  });
  cleanups.push(() => proxy.close());

  const sessions = new Map<string, ServerSession>();
  // Messages sent so far by the client and by the server (each numbered 1, 2, 3, ...).
  let sentC = 0;
  let sentS = 0;
  // s2c: the server session each message was sent on; c2s: the client session (index) of each.
  const s2cSession: string[] = new Array(N + 1);
  const c2sK = new Int32Array(N + 1);
  const sidOfK: string[] = [];
  const c2sReturned = new Uint8Array(N + 1);
  const s2cReturned = new Uint8Array(N + 1);
  const clientDeliveries = new Map<string, number[]>();
  const heartbeatDrops = new Map<Connection, { link: unknown; at: number }>();
  /** When the server's heartbeat dropped a transport, and when the client's did (Date.now()). */
  const serverTimeouts: number[] = [];
  const clientTimeouts: number[] = [];
  /** Those that happened while the client still held a black-holed connection (see lingeringHalfOpen). */
  const lingeringC = new Set<number>();
  const lingeringS = new Set<number>();
  const closes: string[] = [];
  /** Closed server sessions whose unacknowledged messages could not be read (see 'close' below). */
  const unreadable: string[] = [];
  let accountedC2S = 0;
  let accountedS2C = 0;
  const c2sSeen = new Uint8Array(N + 1);
  const s2cSeen = new Uint8Array(N + 1);

  let finalCloseId = '';
  rt.on('connection', (conn) => {
    if (hooks.tamper) hooks.tamper(conn);
    const s: ServerSession = { conn, deliveries: [], closedCode: null };
    sessions.set(conn.id, s);
    // Learn when the server's own heartbeat drops a transport (test-only wrapper of the sweep).
    const tick = conn.tick.bind(conn);
    conn.tick = (now: number) => {
      const before = conn.link;
      tick(now);
      if (before && conn.link === null && conn.state === 'open') {
        heartbeatDrops.set(conn, { link: before, at: Date.now() });
        serverTimeouts.push(Date.now());
        if (proxy.lingeringHalfOpen()) lingeringS.add(serverTimeouts[serverTimeouts.length - 1]);
      }
    };
    conn.on('message', (d) => {
      const n = Number(d);
      s.deliveries.push(n);
      if (n >= 1 && n <= N && !c2sSeen[n]) {
        c2sSeen[n] = 1;
        if (!c2sReturned[n]) accountedC2S++;
      }
    });
    conn.on('close', (code, reason) => {
      s.closedCode = code;
      closes.push('server session ' + conn.id.slice(0, 6) + ' closed ' + code + ' ' + reason);
      log('  ' + ((Date.now() - proxy.startedAt) / 1000).toFixed(3) + 's server session ' + conn.id + ' closed ' + code + ' ' + reason);
      // The client's own close at the end loses nothing: only sessions that ended otherwise hand back.
      if (conn.id === finalCloseId) return;
      // What the server hands back when a session ends: its unacknowledged messages. The server
      // API has no such event, so read them from the session layer (test-only).
      const session = (conn as unknown as { session?: { unacked(): Array<string | Uint8Array> } }).session;
      if (!session || typeof session.unacked !== 'function') {
        // Fallback: a closed session delivers nothing more, so what it has not delivered is handed
        // back (the order check still requires what it delivered to be a prefix).
        unreadable.push(conn.id);
        for (let n = 1; n <= sentS; n++) {
          if (s2cSession[n] === conn.id && !s2cReturned[n]) {
            s2cReturned[n] = 1;
            if (!s2cSeen[n]) accountedS2C++;
          }
        }
      } else {
        for (const d of session.unacked()) {
          const n = typeof d === 'string' ? Number(d) : NaN;
          if (n >= 1 && n <= N && !s2cReturned[n]) {
            s2cReturned[n] = 1;
            if (!s2cSeen[n]) accountedS2C++;
          }
        }
      }
    });
  });

  // ---- client
  const sock: Socket = connect(proxy.url + '/rt', {
    transports: cfg.transports,
    WebSocket: GuardedWS,
    backoffBase: 100,
    backoffCap: 1000,
    connectTimeout: 1000,
    requestTimeout: 1500,
    maxBufferedMessages: p.clientBuffer,
    // CHAOS_DEBUG=1: the client's decisions, timed like the fault log.
    debug: process.env.CHAOS_DEBUG === '1' ? (m: string) => log('  ' + ((Date.now() - proxy.startedAt) / 1000).toFixed(3) + 's client: ' + m) : false,
  });
  cleanups.push(() => sock.close());
  if (hooks.tamperClient) hooks.tamperClient(sock);
  let k = 0;
  let resumes = 0;
  let losses = 0;
  let opened = 0;
  let fallbacks = 0;
  let upgrades = 0;
  const reconnects: Record<string, number> = {};
  const transports: string[] = [];
  let blocked = false;
  let fulls = 0;
  let drains = 0;
  // A 'drain' that never came (it did not, before ac881a6, when a resume's open frame released the
  // buffer): once the buffer is down to a quarter of what it held when send() said full, for a
  // second, the sender stops waiting (so the run goes on) and counts a missed drain (a failure).
  let missedDrains = 0;
  /** 'drain' events that came after the sender had stopped waiting (a missed drain, late). */
  let lateDrains = 0;
  let bytesAtFull = 0;
  let drainDueSince = 0;
  sock.on('open', () => {
    opened++;
    sidOfK[k] = sock.id;
  });
  sock.on('resume', () => resumes++);
  sock.on('reconnecting', (i) => {
    reconnects[i.code] = (reconnects[i.code] || 0) + 1;
    if (/^no frame for/.test(i.reason)) {
      clientTimeouts.push(Date.now());
      if (proxy.lingeringHalfOpen()) lingeringC.add(clientTimeouts[clientTimeouts.length - 1]);
    }
  });
  sock.on('transport', (name) => {
    const prev = transports[transports.length - 1];
    if (prev === 'websocket' && name !== 'websocket') fallbacks++;
    if (prev && prev !== 'websocket' && name === 'websocket') upgrades++;
    transports.push(name);
  });
  sock.on('session-lost', (info) => {
    losses++;
    log('session-lost ' + info.code + ' ' + info.reason + ': ' + info.unacked.length + ' unacked handed back');
    for (const d of info.unacked) {
      const n = Number(d);
      if (n >= 1 && n <= N && !c2sReturned[n]) {
        c2sReturned[n] = 1;
        if (!c2sSeen[n]) accountedC2S++;
      }
    }
    k++;
  });
  sock.on('message', (d) => {
    const n = Number(d);
    let list = clientDeliveries.get(sock.id);
    if (!list) clientDeliveries.set(sock.id, (list = []));
    list.push(n);
    if (n >= 1 && n <= N && !s2cSeen[n]) {
      s2cSeen[n] = 1;
      if (!s2cReturned[n]) accountedS2C++;
    }
  });
  sock.on('drain', () => {
    drains++;
    if (!blocked) lateDrains++;
    blocked = false;
  });
  sock.on('close', (i) => closes.push('client closed ' + i.code + ' ' + i.reason));

  // ---- steady senders: n messages each way over the planned duration
  const pace = Math.max(1000, duration);
  const t0 = Date.now();
  const target = (): number => Math.min(N, Math.ceil((N * (Date.now() - t0)) / pace));
  const pump = setInterval(() => {
    const want = target();
    if (blocked && sock.bufferedAmount * 4 <= bytesAtFull) {
      if (!drainDueSince) drainDueSince = Date.now();
      else if (Date.now() - drainDueSince > 1000) {
        missedDrains++;
        log('  ' + ((Date.now() - proxy.startedAt) / 1000).toFixed(3) + "s 'drain' missed: buffer at " + sock.bufferedAmount + ' bytes (' + bytesAtFull + ' when full) for 1 s');
        blocked = false;
      }
    }
    while (sentC < want && !blocked && sock.state !== 'closed') {
      if (!sock.send(String(sentC + 1))) {
        blocked = true;
        fulls++;
        bytesAtFull = sock.bufferedAmount;
        drainDueSince = 0;
        break;
      }
      c2sK[++sentC] = k;
    }
    const s = sessions.get(sock.id);
    const conn = s && s.conn;
    // The application's own backpressure: the server closes a session whose buffer overflows.
    while (conn && conn.state === 'open' && sentS < want && conn.bufferedAmount < 64 * 1024) {
      if (!conn.send(String(sentS + 1))) break;
      s2cSession[++sentS] = conn.id;
    }
  }, 10);
  cleanups.push(() => clearInterval(pump));

  // ---- faults
  const heartbeat: HeartbeatSample[] = [];
  const heartbeatMissed: string[] = [];
  let heartbeatSkipped = 0;
  const scheduler = new FaultScheduler(proxy, plan, p.plan, rng);
  cleanups.push(() => scheduler.stop());
  await scheduler.run({
    // Measure detection on a session that is on the wire: wait (bounded) for one.
    beforeHalfOpen: async () => {
      await until(() => {
        const s = sessions.get(sock.id);
        return sock.state === 'open' && !!s && !!s.conn.link;
      }, 3000, 5);
    },
    halfOpen: async (pairs: Pair[], at: number) => {
      const s = sessions.get(sock.id);
      const conn = s && s.conn;
      const link0 = conn && conn.link;
      if (sock.state !== 'open' || !conn || !link0 || !pairs.length) {
        heartbeatSkipped++;
        log('half-open not measured: client ' + sock.state + ', server session ' + (conn ? (link0 ? 'on ' + conn.transport : 'without transport') : 'unknown') + ', ' + pairs.length + ' connection(s)');
        return;
      }
      // The client leaves the silent transport by its heartbeat ('reconnecting', 4408), or by an
      // upgrade that happened to move the session first ('transport', code 0).
      let clientAt = 0;
      let clientCode = 0;
      const onRec = (i: { code: number }): void => {
        if (!clientAt) (clientAt = Date.now()), (clientCode = i.code);
      };
      const onMove = (): void => onRec({ code: 0 });
      sock.on('reconnecting', onRec);
      sock.on('transport', onMove);
      let serverAt = 0;
      const ok = await until(() => {
        if (!serverAt && conn.link !== link0) serverAt = Date.now();
        return !!clientAt && !!serverAt;
      }, p.plan.halfOpenMax - 50, 5);
      sock.off('reconnecting', onRec);
      sock.off('transport', onMove);
      if (!ok) {
        heartbeatMissed.push('half-open at +' + (at - proxy.startedAt) + ' ms: client ' + (clientAt ? clientAt - at + ' ms' : 'never') + ', server ' + (serverAt ? serverAt - at + ' ms' : 'never'));
        return;
      }
      const drop = heartbeatDrops.get(conn);
      heartbeat.push({ client: clientAt - at, clientCode, server: serverAt - at, serverBy: drop && drop.link === link0 ? 'heartbeat' : 'resume' });
    },
    // CHAOS_DEBUG=1: faults interleaved with the traces (the report prints the fault log anyway).
    faultDone: (f) => {
      if (process.env.CHAOS_DEBUG === '1') log('  +' + (f.at / 1000).toFixed(3) + 's ' + f.kind + (f.duration ? ' ' + f.duration + ' ms' : '') + ': ' + f.detail);
    },
  });
  proxy.healAll();

  // ---- settle: every message sent, then every message delivered or handed back
  // Every message sent (bounded: give up when neither side made progress for 10 s).
  let progress = '';
  let progressAt = Date.now();
  await until(() => {
    const now = sentC + '/' + sentS;
    if (now !== progress) (progress = now), (progressAt = Date.now());
    return (sentC >= N && sentS >= N) || Date.now() - progressAt > 10_000;
  }, p.settle, 20);
  // Done when every message is accounted for; or, to fail fast, when nothing is in flight any
  // more (both ends' unacknowledged buffers empty for a while) yet something is missing.
  let idleSince = 0;
  await until(() => {
    if (accountedC2S >= sentC && accountedS2C >= sentS) return true;
    const s = sessions.get(sock.id);
    const idle = sock.state === 'open' && sock.bufferedAmount === 0 && !!s && s.conn.bufferedAmount === 0;
    if (!idle) idleSince = 0;
    else if (!idleSince) idleSince = Date.now();
    return idle && Date.now() - idleSince > 2000;
  }, p.settle, 20);
  // Late duplicates, if any, show up now.
  await sleep(300);
  if (cfg.weights['ws-block']) await until(() => sock.transport === 'websocket', 5000, 20);
  const finalTransport = sock.transport;
  clearInterval(pump);

  // The network heals for good: black-holed connections the client's HTTP pool may still hold are
  // reset, as their peers would once the path is back.
  const lingeringAtEnd = proxy.resetHalfOpen();
  if (lingeringAtEnd) log('  ' + ((Date.now() - proxy.startedAt) / 1000).toFixed(3) + 's end: reset ' + lingeringAtEnd + ' black-holed connection(s) still open');
  await sleep(100);
  await until(() => {
    const s = sessions.get(sock.id);
    return sock.state === 'open' && !!s && !!s.conn.link;
  }, 5000, 10);
  // Settling: one last blip on a healthy network (every connection reset) must cost one resume,
  // not a reconnect loop: within the next 4 × (interval + timeout) (2 s at least) the client
  // reconnects at most twice and ends up open.
  const reconnectCount = (): number => Object.keys(reconnects).reduce((a, c) => a + reconnects[c], 0);
  const beforeBlip = reconnectCount();
  proxy.reset('all');
  await sleep(Math.max(2000, 4 * (p.pingInterval + p.pingTimeout)));
  const settling = { reconnects: reconnectCount() - beforeBlip, open: sock.state === 'open' };
  await until(() => sock.state === 'open', 5000, 10);

  // Nothing left behind: once abandoned sessions have had time to expire, the server holds the
  // client's session only. Then a clean close reaches the server with the client's code.
  const openOnServer = (): Connection[] => rt.connections();
  await until(() => openOnServer().length <= 1, p.sessionTimeout + 2 * (p.pingInterval + p.pingTimeout) + 1000, 20);
  const leftovers = openOnServer()
    .filter((c) => c.id !== sock.id)
    .map((c) => c.id.slice(0, 6) + ' (' + (c.transport || 'no transport') + ')');
  const live = sessions.get(sock.id);
  const liveOk = !!live && live.conn.state === 'open';
  let closeCode: number | null = null;
  if (live) live.conn.once('close', (code) => (closeCode = code));
  finalCloseId = sock.id;
  sock.close(1000, 'chaos done');
  await until(() => closeCode !== null, 3000, 10);

  const c2s = account(sentC, (n) => sidOfK[c2sK[n]], new Map(Array.from(sessions.values(), (s) => [s.conn.id, s.deliveries] as [string, number[]])), c2sReturned);
  const s2c = account(sentS, (n) => s2cSession[n], clientDeliveries, s2cReturned);
  const adopted = new Set(sidOfK);
  // A heartbeat timeout is explained by a fault that could silence a connection (half-open,
  // partition, slow link) running at the time or within interval + timeout before it, or by a
  // black-holed connection the client still held (its HTTP pool may reuse it for a new request).
  const L = p.pingInterval + p.pingTimeout;
  const windows = proxy.log.filter((f) => f.kind === 'half-open' || f.kind === 'partition' || f.kind === 'slow').map((f) => [proxy.startedAt + f.at, proxy.startedAt + f.at + f.duration + L + p.detectSlack]);
  const unexplained = (ts: number[], lingering: Set<number>): string[] => ts.filter((t) => !lingering.has(t) && !windows.some(([a, b]) => t >= a && t <= b)).map((t) => '+' + ((t - proxy.startedAt) / 1000).toFixed(3) + 's');
  const report: ChaosReport = {
    config: cfg.name,
    seed: p.seed,
    ms: Date.now() - started,
    plannedMs: duration,
    c2s,
    s2c,
    faults: scheduler.counts,
    faultLog: proxy.log.map((f) => '+' + (f.at / 1000).toFixed(3) + 's ' + f.kind + (f.duration ? ' (' + f.duration + ' ms)' : '') + ': ' + f.detail),
    resumes,
    reconnects,
    sessionLosses: losses,
    sessionsOpened: opened,
    orphanSessions: Array.from(sessions.keys()).filter((id) => !adopted.has(id)).length,
    transports,
    fallbacks,
    upgrades,
    finalTransport,
    heartbeat,
    heartbeatSkipped,
    heartbeatMissed,
    timeouts: { client: clientTimeouts.length, server: serverTimeouts.length, unexplainedClient: unexplained(clientTimeouts, lingeringC), unexplainedServer: unexplained(serverTimeouts, lingeringS) },
    closes: closes.slice(),
    unhandledWsErrors: unhandledWsErrors.length - wsErrorsBefore,
    buffer: { fulls, drains, missedDrains, lateDrains },
    end: { leftovers, liveOk, closeCode, settling },
    proxyConnections: proxy.accepted,
  };
  await cleanupChaos();
  return report;
}

/** What a report breaks of the guarantees (empty: nothing). */
export function violations(r: ChaosReport, cfg: ChaosConfig, p: ChaosParams): string[] {
  const v: string[] = [];
  const L = p.pingInterval + p.pingTimeout;
  // No loss, duplicate or reorder, either way; delivered exactly once + returned = sent.
  for (const [name, d] of [['client → server', r.c2s], ['server → client', r.s2c]] as const) {
    if (d.lost || d.duplicated || d.reordered) v.push(name + ': lost ' + d.lost + ', duplicated ' + d.duplicated + ', reordered ' + d.reordered);
    if (d.delivered + d.returned !== d.sent) v.push(name + ': delivered ' + d.delivered + ' + returned ' + d.returned + ' != sent ' + d.sent);
    for (const m of d.problems) v.push(name + ': ' + m);
  }
  // Every fault ran, every message was sent, the client never gave up.
  const faults = FAULT_KINDS.reduce((a, k) => a + r.faults[k], 0);
  if (faults !== p.faults) v.push(faults + ' faults injected, ' + p.faults + ' planned');
  if (r.c2s.sent !== p.messages || r.s2c.sent !== p.messages) v.push('sent ' + r.c2s.sent + ' / ' + r.s2c.sent + ' of ' + p.messages + ' messages');
  for (const c of r.closes) if (c.startsWith('client') && !/ 1000 chaos done$/.test(c)) v.push(c);
  // One reset on a healthy network costs one resume, not a reconnect loop.
  if (r.end.settling.reconnects > 2 || !r.end.settling.open) v.push('after one reset of every connection on a healthy network: ' + r.end.settling.reconnects + ' reconnects in ' + Math.max(2000, 4 * L) + ' ms, ' + (r.end.settling.open ? 'open' : 'not open') + ' at the end');
  // Nothing left behind, and a clean close still works after all that.
  if (!r.end.liveOk) v.push("the client's session is not open on the server at the end");
  if (r.end.leftovers.length) v.push('server sessions left open: ' + r.end.leftovers.join(', '));
  // Every time send() said full, 'drain' followed.
  const b = r.buffer;
  if (b.missedDrains) v.push(b.missedDrains + " 'drain' event(s) never came although the send buffer had emptied");
  if (b.drains - b.lateDrains + b.missedDrains !== b.fulls) v.push('send() returned false ' + b.fulls + " times but 'drain' came " + b.drains + ' times (' + b.missedDrains + ' missed, ' + b.lateDrains + ' late)');
  if (r.end.closeCode !== 1000) v.push('client close(1000) reached the server as ' + r.end.closeCode);
  // The `ws` client never emitted an 'error' nobody listened to (that would crash a Node app).
  if (r.unhandledWsErrors) v.push(r.unhandledWsErrors + " unhandled 'error' events from the ws client");
  // Half-open connections are noticed within interval + timeout on both ends (plus slack).
  for (const m of r.heartbeatMissed) v.push('half-open never noticed: ' + m);
  if (r.faults['half-open'] && !r.heartbeat.length) v.push('no half-open detection measured');
  for (const h of r.heartbeat) {
    if (h.client > L + p.detectSlack) v.push('client noticed a half-open connection after ' + h.client + ' ms (> ' + L + ' + ' + p.detectSlack + ')');
    if (h.server > L + p.detectSlack) v.push('server dropped a half-open connection after ' + h.server + ' ms (> ' + L + ' + ' + p.detectSlack + ', by ' + h.serverBy + ')');
  }
  // Forced transport changes: the client fell back to long polling and came back.
  if (cfg.weights['ws-block'] && (!r.fallbacks || !r.upgrades)) v.push('transport changes: ' + r.fallbacks + ' fallbacks, ' + r.upgrades + ' upgrades back');
  return v;
}

/** The guarantees, as one assertion listing every violation. */
export function checkReport(r: ChaosReport, cfg: ChaosConfig, p: ChaosParams): void {
  expect(violations(r, cfg, p), r.config + ' (seed ' + r.seed + ')').toEqual([]);
}

// ---- printing ----------------------------------------------------------------------------------------

function table(rows: Array<Array<string | number>>): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] || 0, String(c).length)));
  return rows.map((r) => r.map((c, i) => (i ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  ')).join('\n');
}

export function formatReport(r: ChaosReport, p: ChaosParams): string {
  const L = p.pingInterval + p.pingTimeout;
  const hbc = r.heartbeat.map((h) => h.client);
  const hbs = r.heartbeat.map((h) => h.server);
  const stat = (xs: number[]): string => (xs.length ? 'max ' + Math.max(...xs) + ' ms, mean ' + Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) + ' ms' : 'n/a');
  const dir = (name: string, d: DirectionStats): Array<string | number> => [name, d.sent, d.delivered, d.lost, d.duplicated, d.reordered, d.returned, d.deliveredAndReturned];
  return [
    '',
    '=== chaos: ' + r.config + ' (seed ' + r.seed + ', ' + (r.ms / 1000).toFixed(1) + ' s, faults planned for ' + (r.plannedMs / 1000).toFixed(1) + ' s) ===',
    table([['direction', 'sent', 'delivered', 'lost', 'duplicated', 'reordered', 'returned', 'delivered+returned'], dir('client → server', r.c2s), dir('server → client', r.s2c)]),
    'faults: ' + FAULT_KINDS.filter((k) => r.faults[k]).map((k) => k + ' ' + r.faults[k]).join(', ') + ' (total ' + FAULT_KINDS.reduce((a, k) => a + r.faults[k], 0) + ')',
    'client send buffer (' + p.clientBuffer + ' messages): full ' + r.buffer.fulls + '×, drain ' + r.buffer.drains + '×, drain missed ' + r.buffer.missedDrains + '×' + (r.buffer.lateDrains ? ' (' + r.buffer.lateDrains + ' came later)' : ''),
    'sessions: opened ' + r.sessionsOpened + ', resumes ' + r.resumes + ', session losses ' + r.sessionLosses + ', orphan server sessions ' + r.orphanSessions,
    'reconnects by code: ' + (Object.keys(r.reconnects).map((c) => c + '×' + r.reconnects[c]).join(' ') || 'none'),
    'transports: ' + r.transports.length + ' changes, fallbacks ws→lp ' + r.fallbacks + ', upgrades lp→ws ' + r.upgrades + ', final ' + r.finalTransport,
    'half-open detection (interval + timeout = ' + L + ' ms, slack ' + p.detectSlack + ' ms): ' + r.heartbeat.length + ' measured, ' + r.heartbeatSkipped + ' skipped (no session on the wire), ' + r.heartbeatMissed.length + ' missed',
    '  client: ' + stat(hbc) + ' (codes ' + Array.from(new Set(r.heartbeat.map((h) => h.clientCode))).join(',') + ')',
    '  server: ' + stat(hbs) + ' (own heartbeat ' + r.heartbeat.filter((h) => h.serverBy === 'heartbeat').length + ', replaced by the resume ' + r.heartbeat.filter((h) => h.serverBy === 'resume').length + ')',
    'heartbeat timeouts: client ' + r.timeouts.client + ' (unexplained by a fault: ' + (r.timeouts.unexplainedClient.join(' ') || 'none') + '), server ' + r.timeouts.server + ' (unexplained: ' + (r.timeouts.unexplainedServer.join(' ') || 'none') + ')',
    'end: one reset on a healthy network cost ' + r.end.settling.reconnects + ' reconnect(s)' + (r.end.settling.open ? '' : ' and the client was not open after it') + '; client session open on the server ' + r.end.liveOk + ', other server sessions open ' + (r.end.leftovers.join(', ') || 'none') + ', close(1000) seen by the server as ' + r.end.closeCode,
    'proxy connections: ' + r.proxyConnections + '; unhandled ws client errors: ' + r.unhandledWsErrors,
    ...(r.closes.filter((c) => c.startsWith('client') && !/ 1000 chaos done$/.test(c)).length ? ['client closes: ' + r.closes.filter((c) => c.startsWith('client')).join('; ')] : []),
    ...(r.c2s.problems.length ? ['client → server problems: ' + r.c2s.problems.join('; ')] : []),
    ...(r.s2c.problems.length ? ['server → client problems: ' + r.s2c.problems.join('; ')] : []),
    ...(r.heartbeatMissed.length ? ['missed: ' + r.heartbeatMissed.join('; ')] : []),
  ].join('\n');
}

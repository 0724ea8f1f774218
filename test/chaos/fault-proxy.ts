/**
 * A TCP proxy on 127.0.0.1 (port 0) between a cometsocket client and the reference server that
 * injects network faults, and a seeded scheduler that plans and runs them reproducibly.
 *
 * Faults (every one is logged with its time):
 *  - reset       abrupt resets: both sides of a connection destroyed with an RST
 *                (socket.resetAndDestroy()), every connection or one at random;
 *  - half-open   every existing connection stops forwarding in both directions, silently: no FIN,
 *                no RST, the sockets stay open (new connections work); only heartbeats notice;
 *  - partition   every connection goes silent for a while (bytes, FINs and RSTs are held, as TCP
 *                retransmission would, and delivered when the partition heals); new connections
 *                are either accepted and held (no data either way until the heal) or refused (RST);
 *  - slow        every chunk is delayed (e.g. 50–200 ms, order kept) for a while;
 *  - ws-block    WebSocket upgrade connections are reset (existing ones at once, new ones as soon as
 *                their request line shows) for a while; plain HTTP passes: a firewall that breaks
 *                WebSockets, so a client falls back to long polling and upgrades back afterwards.
 *
 * Every socket the proxy creates is tracked and destroyed by `close()`.
 */
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';

// ---- a seeded PRNG ---------------------------------------------------------------------------------

/** mulberry32: a tiny 32-bit PRNG, good enough to make a fault schedule reproducible from a seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }
  /** [0, 1) */
  float(): number {
    return this.next();
  }
  /** A number in [min, max). */
  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor((max - min + 1) * this.next());
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  /** A key chosen with probability proportional to its weight. */
  weighted<K extends string>(weights: Partial<Record<K, number>>): K {
    const keys = Object.keys(weights) as K[];
    let total = 0;
    for (const k of keys) total += weights[k] || 0;
    let x = this.next() * total;
    for (const k of keys) {
      x -= weights[k] || 0;
      if (x < 0) return k;
    }
    return keys[keys.length - 1];
  }
}

// ---- the proxy -------------------------------------------------------------------------------------

export type FaultKind = 'reset' | 'half-open' | 'partition' | 'slow' | 'ws-block';
export const FAULT_KINDS: readonly FaultKind[] = ['reset', 'half-open', 'partition', 'slow', 'ws-block'];

export interface FaultRecord {
  kind: FaultKind;
  /** ms since the proxy started. */
  at: number;
  /** ms the fault lasted (0 for instant faults). */
  duration: number;
  detail: string;
}

type Item = { kind: 'data'; data: Buffer; readyAt: number } | { kind: 'end' | 'reset'; readyAt: number };

/** One direction of a proxied connection: a queue that may be delayed, paused or black-holed. */
class Pipe {
  private q: Item[] = [];
  private lastReady = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  paused = false;
  /** Black-holed: everything is dropped, forever. */
  dropped = false;
  /** An 'end' or 'reset' went through: nothing follows. */
  finished = false;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly dst: () => Socket | null,
  ) {}

  push(kind: 'data' | 'end' | 'reset', data?: Buffer): void {
    if (this.dropped || this.finished) return;
    const now = Date.now();
    const delay = this.proxy.chunkDelay();
    const readyAt = (this.lastReady = Math.max(this.lastReady, now + delay));
    this.q.push(kind === 'data' ? { kind, data: data!, readyAt } : { kind, readyAt });
    this.pump();
  }

  pump(): void {
    if (this.timer) return;
    const dst = this.dst();
    // The upstream socket may still be connecting: its 'connect' pumps again.
    if (!dst || dst.connecting) return;
    while (this.q.length && !this.paused && !this.dropped) {
      const head = this.q[0];
      const wait = head.readyAt - Date.now();
      if (wait > 0) {
        const t = (this.timer = setTimeout(() => {
          this.proxy.timers.delete(t);
          this.timer = undefined;
          this.pump();
        }, wait));
        this.proxy.timers.add(t);
        return;
      }
      this.q.shift();
      if (dst.destroyed) continue;
      if (head.kind === 'data') {
        if (!dst.writableEnded) dst.write(head.data);
      } else if (head.kind === 'end') {
        this.finished = true;
        dst.end();
      } else {
        this.finished = true;
        resetSocket(dst);
      }
    }
  }

  clear(): void {
    this.q.length = 0;
    if (this.timer) {
      clearTimeout(this.timer);
      this.proxy.timers.delete(this.timer);
    }
    this.timer = undefined;
  }
}

function resetSocket(s: Socket): void {
  if (s.destroyed) return;
  // RST where the platform can; a plain destroy otherwise.
  if (typeof (s as Socket & { resetAndDestroy?: () => void }).resetAndDestroy === 'function') {
    try {
      s.resetAndDestroy();
      return;
    } catch {
      /* fall through */
    }
  }
  s.destroy();
}

let nextPairId = 1;

/** One client connection and its upstream connection to the server. */
export class Pair {
  readonly id = nextPairId++;
  upstream: Socket | null = null;
  /** 'websocket' when the first request line is an upgrade to `/websocket`. */
  kind: 'unknown' | 'websocket' | 'http' = 'unknown';
  /** Accepted during a partition: the upstream connection waits for the heal. */
  held = false;
  blackholed = false;
  dead = false;
  readonly c2s: Pipe;
  readonly s2c: Pipe;
  clientGone = false;
  upstreamGone = false;

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: Socket,
  ) {
    this.c2s = new Pipe(proxy, () => this.upstream);
    this.s2c = new Pipe(proxy, () => this.client);
  }

  /** Abrupt reset of both sides. */
  reset(): void {
    if (this.dead) return;
    this.dead = true;
    this.c2s.clear();
    this.s2c.clear();
    resetSocket(this.client);
    if (this.upstream) resetSocket(this.upstream);
    this.proxy.forget(this);
  }

  /** Stop forwarding in both directions, silently; keep both sockets open. */
  blackhole(): void {
    if (this.dead || this.blackholed) return;
    this.blackholed = true;
    this.c2s.dropped = this.s2c.dropped = true;
    this.c2s.clear();
    this.s2c.clear();
  }

  /** Both ends are gone: nothing left to forward. */
  maybeForget(): void {
    if ((this.clientGone || this.client.destroyed) && (this.upstreamGone || !this.upstream || this.upstream.destroyed)) {
      this.dead = true;
      this.c2s.clear();
      this.s2c.clear();
      this.proxy.forget(this);
    }
  }
}

export interface ProxyOptions {
  /** Seed of the per-chunk delays (the fault schedule has its own). */
  seed?: number;
  /** Traces connections and request lines (debugging). */
  trace?: (line: string) => void;
}

/** A one-line summary of the frames in a chunk (tracing): data sequence range, acks, other frame types. */
function frameSummary(chunk: Buffer): string {
  const text = chunk.toString('latin1');
  const seqs = Array.from(text.matchAll(/"t":"d","s":(\d+)/g), (m) => Number(m[1]));
  const acks = Array.from(text.matchAll(/"t":"a","a":(\d+)/g), (m) => m[1]);
  const other = Array.from(text.matchAll(/"t":"([opPc])"/g), (m) => m[1]);
  const status = /^HTTP\/1\.1 (\d+)/.exec(text);
  return [status ? 'HTTP ' + status[1] : '', seqs.length ? 'd' + seqs[0] + (seqs.length > 1 ? '..' + seqs[seqs.length - 1] : '') : '', acks.length ? 'a' + acks.join(',') : '', other.join('')].filter(Boolean).join(' ');
}

export class FaultProxy {
  port = 0;
  readonly startedAt = Date.now();
  readonly log: FaultRecord[] = [];
  readonly pairs = new Set<Pair>();
  /** Every socket the proxy created (accepted or connected) and that is not closed yet. */
  readonly sockets = new Set<Socket>();
  readonly timers = new Set<ReturnType<typeof setTimeout>>();
  /** Connections accepted in all. */
  accepted = 0;
  /** Connections refused (partition in 'refuse' mode, or ws-block). */
  refused = 0;
  private server: Server;
  private partition: { mode: 'hold' | 'refuse' } | null = null;
  private slow: { min: number; max: number } | null = null;
  private wsBlocked = false;
  private readonly rng: Rng;
  private closed = false;
  private readonly trace: ((line: string) => void) | undefined;

  private constructor(
    readonly targetPort: number,
    o: ProxyOptions,
  ) {
    this.rng = new Rng((o.seed ?? 1) ^ 0x5bd1e995);
    this.trace = o.trace;
    this.server = createServer({ allowHalfOpen: true }, (c) => this.accept(c));
  }

  static async start(targetPort: number, o: ProxyOptions = {}): Promise<FaultProxy> {
    const p = new FaultProxy(targetPort, o);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(0, '127.0.0.1', () => resolve());
    });
    p.port = (p.server.address() as AddressInfo).port;
    return p;
  }

  get url(): string {
    return 'http://127.0.0.1:' + this.port;
  }

  /** ms since start. */
  now(): number {
    return Date.now() - this.startedAt;
  }

  record(kind: FaultKind, detail: string, duration = 0, at = this.now()): FaultRecord {
    const r: FaultRecord = { kind, at, duration, detail };
    this.log.push(r);
    return r;
  }

  /** Delay for a chunk pushed now (0 unless a slow link is on). */
  chunkDelay(): number {
    return this.slow ? this.rng.range(this.slow.min, this.slow.max) : 0;
  }

  forget(p: Pair): void {
    this.pairs.delete(p);
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {
      /* 'close' follows; the other side is told through the pipe */
    });
  }

  private accept(c: Socket): void {
    this.track(c);
    if (this.closed) return void c.destroy();
    this.accepted++;
    if (this.partition && this.partition.mode === 'refuse') {
      this.refused++;
      return resetSocket(c);
    }
    const pair = new Pair(this, c);
    this.pairs.add(pair);
    let ended = false;
    let head = '';
    if (this.trace) this.trace('#' + pair.id + ' accepted' + (this.partition ? ' (held: partition)' : ''));
    c.on('data', (chunk: Buffer) => {
      if (this.trace) {
        const m = /^(GET|POST) (\S+)/.exec(chunk.toString('latin1', 0, 300));
        const f = frameSummary(chunk);
        if (m || f) this.trace('#' + pair.id + (pair.blackholed ? ' (black-holed)' : pair.dead ? ' (dead)' : '') + ' → ' + (m ? m[1] + ' ' + m[2].replace(/tok=[^&]+&?/, '').slice(0, 60) + ' ' : '') + f);
      }
      if (pair.dead) return;
      if (pair.kind === 'unknown') {
        head += chunk.toString('latin1', 0, Math.min(chunk.length, 1024));
        const eol = head.indexOf('\r\n');
        if (eol >= 0 || head.length >= 1024) {
          const line = eol >= 0 ? head.slice(0, eol) : head;
          pair.kind = /^GET \S*\/websocket(\?|\s)/.test(line) || /\r\nupgrade:\s*websocket/i.test(head) ? 'websocket' : 'http';
          if (pair.kind === 'websocket' && this.wsBlocked && !pair.blackholed) {
            this.refused++;
            return pair.reset();
          }
        }
      }
      pair.c2s.push('data', chunk);
    });
    c.on('end', () => {
      ended = true;
      if (pair.blackholed) return void c.destroy();
      pair.c2s.push('end');
    });
    c.on('close', (hadError) => {
      if (this.trace) this.trace('#' + pair.id + ' client side closed' + (hadError ? ' (error)' : '') + (pair.blackholed ? ' (black-holed)' : ''));
      pair.clientGone = true;
      if (!pair.dead && !pair.blackholed && (hadError || !ended)) pair.c2s.push('reset');
      pair.maybeForget();
    });
    if (this.partition) {
      pair.held = true;
      pair.c2s.paused = pair.s2c.paused = true;
    } else this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    pair.held = false;
    const s = netConnect({ port: this.targetPort, host: '127.0.0.1', allowHalfOpen: true });
    this.track(s);
    pair.upstream = s;
    let ended = false;
    s.on('connect', () => pair.c2s.pump());
    s.on('data', (chunk: Buffer) => {
      if (this.trace) {
        const f = frameSummary(chunk);
        if (f) this.trace('#' + pair.id + (pair.blackholed ? ' (black-holed)' : pair.dead ? ' (dead)' : '') + ' ← ' + f);
      }
      if (!pair.dead) pair.s2c.push('data', chunk);
    });
    s.on('end', () => {
      ended = true;
      if (pair.blackholed) return void s.destroy();
      pair.s2c.push('end');
    });
    s.on('close', (hadError) => {
      if (this.trace) this.trace('#' + pair.id + ' server side closed' + (hadError ? ' (error)' : '') + (pair.blackholed ? ' (black-holed)' : ''));
      pair.upstreamGone = true;
      if (!pair.dead && !pair.blackholed && (hadError || !ended)) pair.s2c.push('reset');
      pair.maybeForget();
    });
  }

  /**
   * Black-holed connections the client still holds open. An HTTP client's keep-alive pool may
   * hand a later request to one of them, long after the half-open fault "ended".
   */
  lingeringHalfOpen(): number {
    let n = 0;
    for (const p of this.pairs) if (p.blackholed && !p.clientGone && !p.client.destroyed) n++;
    return n;
  }

  private live(): Pair[] {
    return Array.from(this.pairs).filter((p) => !p.dead && !p.blackholed);
  }

  // ---- faults ------------------------------------------------------------------------------------

  /** Reset every live connection, or one at random; returns how many. */
  reset(which: 'all' | 'one', rng?: Rng): number {
    const live = this.live();
    const victims = which === 'all' || !live.length ? live : [rng ? rng.pick(live) : live[0]];
    for (const p of victims) p.reset();
    return victims.length;
  }

  /** Black-hole every live connection (new ones are unaffected); returns them. */
  halfOpen(): Pair[] {
    const live = this.live();
    for (const p of live) p.blackhole();
    return live;
  }

  startPartition(mode: 'hold' | 'refuse'): number {
    this.partition = { mode };
    const live = this.live();
    for (const p of live) p.c2s.paused = p.s2c.paused = true;
    return live.length;
  }

  heal(): void {
    if (!this.partition) return;
    this.partition = null;
    for (const p of this.live()) {
      if (p.held) {
        // The client gave up while its connection attempt was held: it never reaches the server.
        if (p.client.destroyed || p.clientGone) {
          p.reset();
          continue;
        }
        this.connectUpstream(p);
      }
      p.c2s.paused = p.s2c.paused = false;
      p.c2s.pump();
      p.s2c.pump();
    }
  }

  startSlow(min: number, max: number): void {
    this.slow = { min, max };
  }

  stopSlow(): void {
    this.slow = null;
  }

  /** Reset WebSocket connections now and refuse new ones until `allowWebSocket()`; returns how many were reset. */
  blockWebSocket(): number {
    this.wsBlocked = true;
    const ws = this.live().filter((p) => p.kind === 'websocket');
    for (const p of ws) p.reset();
    return ws.length;
  }

  allowWebSocket(): void {
    this.wsBlocked = false;
  }

  /**
   * The path of the black-holed connections comes back: each end learns with an RST that the
   * other has forgotten the connection. Returns how many were reset.
   */
  resetHalfOpen(): number {
    let n = 0;
    for (const p of Array.from(this.pairs)) if (p.blackholed && !p.dead) (n++, p.reset());
    return n;
  }

  /** End every fault in progress (blackholed connections stay as they are). */
  healAll(): void {
    this.heal();
    this.stopSlow();
    this.allowWebSocket();
  }

  /** Stop listening and destroy every socket and timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const p of this.pairs) {
      p.c2s.clear();
      p.s2c.clear();
    }
    for (const s of this.sockets) s.destroy();
    this.pairs.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// ---- the fault schedule ----------------------------------------------------------------------------

export interface FaultPlanOptions {
  count: number;
  /** Relative weights of the kinds to inject (kinds absent or 0 are never planned). */
  weights: Partial<Record<FaultKind, number>>;
  /** Quiet time before each fault, ms. */
  gap: [number, number];
  /** Partition length, ms. */
  partition: [number, number];
  /** Slow link length, ms. */
  slow: [number, number];
  /** Per-chunk delay while slow, ms. */
  slowDelay: [number, number];
  /** WebSocket block length, ms. */
  wsBlock: [number, number];
  /** Longest wait for both ends to notice a half-open connection, ms. */
  halfOpenMax: number;
  /** Estimated time a half-open fault takes (for planning only), ms. */
  halfOpenEstimate: number;
}

export interface PlannedFault {
  kind: FaultKind;
  /** Quiet time before it, ms. */
  gap: number;
  /** Planned length, ms (0 for resets; an estimate for half-open). */
  duration: number;
  mode?: 'all' | 'one' | 'hold' | 'refuse';
}

/** A reproducible fault schedule. */
export function planFaults(rng: Rng, o: FaultPlanOptions): PlannedFault[] {
  const out: PlannedFault[] = [];
  for (let i = 0; i < o.count; i++) {
    const kind = rng.weighted(o.weights);
    const gap = Math.round(rng.range(o.gap[0], o.gap[1]));
    switch (kind) {
      case 'reset':
        out.push({ kind, gap, duration: 0, mode: rng.float() < 0.7 ? 'all' : 'one' });
        break;
      case 'half-open':
        out.push({ kind, gap, duration: o.halfOpenEstimate });
        break;
      case 'partition':
        out.push({ kind, gap, duration: Math.round(rng.range(o.partition[0], o.partition[1])), mode: rng.float() < 0.5 ? 'hold' : 'refuse' });
        break;
      case 'slow':
        out.push({ kind, gap, duration: Math.round(rng.range(o.slow[0], o.slow[1])) });
        break;
      case 'ws-block':
        out.push({ kind, gap, duration: Math.round(rng.range(o.wsBlock[0], o.wsBlock[1])) });
        break;
    }
  }
  return out;
}

/** Planned wall time of a schedule, ms. */
export function plannedDuration(plan: readonly PlannedFault[]): number {
  let t = 0;
  for (const f of plan) t += f.gap + f.duration;
  return t;
}

export interface SchedulerHooks {
  /** Called before a half-open fault; it starts when this resolves (e.g. once a session is on the wire). */
  beforeHalfOpen?(): Promise<void>;
  /**
   * Called right after a half-open fault black-holed `pairs` connections; resolve when both ends
   * noticed (the scheduler waits at most `halfOpenMax`).
   */
  halfOpen?(pairs: Pair[], startedAt: number): Promise<void>;
  /** Called after each fault ends. */
  faultDone?(f: FaultRecord): void;
}

/** Runs a plan against a proxy, one fault at a time, each after its gap. */
export class FaultScheduler {
  private stopped = false;
  private wake: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  readonly counts: Record<FaultKind, number> = { reset: 0, 'half-open': 0, partition: 0, slow: 0, 'ws-block': 0 };

  constructor(
    private readonly proxy: FaultProxy,
    private readonly plan: readonly PlannedFault[],
    private readonly o: Pick<FaultPlanOptions, 'slowDelay' | 'halfOpenMax'>,
    private readonly rng: Rng,
  ) {}

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.wake) this.wake();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      if (this.stopped) return r();
      this.wake = r;
      this.timer = setTimeout(() => {
        this.wake = null;
        r();
      }, ms);
    });
  }

  /** Run every fault of the plan (or until `stop()`); leaves no fault in progress. */
  async run(hooks: SchedulerHooks = {}): Promise<void> {
    const p = this.proxy;
    try {
      for (const f of this.plan) {
        await this.sleep(f.gap);
        if (this.stopped) return;
        const at = p.now();
        let rec: FaultRecord;
        switch (f.kind) {
          case 'reset': {
            const n = p.reset(f.mode === 'one' ? 'one' : 'all', this.rng);
            rec = p.record('reset', (f.mode === 'one' ? 'one of ' : 'all, ') + n + ' connection(s)', 0, at);
            break;
          }
          case 'half-open': {
            if (hooks.beforeHalfOpen) await hooks.beforeHalfOpen();
            if (this.stopped) return;
            const pairs = p.halfOpen();
            const t0 = Date.now();
            if (hooks.halfOpen) await Promise.race([hooks.halfOpen(pairs, t0), this.sleep(this.o.halfOpenMax)]);
            rec = p.record('half-open', pairs.length + ' connection(s) silenced', Date.now() - t0, p.now() - (Date.now() - t0));
            break;
          }
          case 'partition': {
            const n = p.startPartition(f.mode === 'refuse' ? 'refuse' : 'hold');
            await this.sleep(f.duration);
            p.heal();
            rec = p.record('partition', n + ' connection(s) held, new ones ' + (f.mode === 'refuse' ? 'refused' : 'held'), p.now() - at, at);
            break;
          }
          case 'slow': {
            p.startSlow(this.o.slowDelay[0], this.o.slowDelay[1]);
            await this.sleep(f.duration);
            p.stopSlow();
            rec = p.record('slow', this.o.slowDelay[0] + '–' + this.o.slowDelay[1] + ' ms per chunk', p.now() - at, at);
            break;
          }
          case 'ws-block': {
            const n = p.blockWebSocket();
            await this.sleep(f.duration);
            p.allowWebSocket();
            rec = p.record('ws-block', n + ' WebSocket connection(s) reset, upgrades refused', p.now() - at, at);
            break;
          }
        }
        this.counts[f.kind]++;
        if (hooks.faultDone) hooks.faultDone(rec);
      }
    } finally {
      p.healAll();
    }
  }
}

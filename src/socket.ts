/**
 * The public socket: states, events and the orchestration of transports around one session.
 * Ordering and exactly-once live in the session layer; this file decides when to open, race,
 * upgrade, resume and give up, with every timer and global reached through the environment.
 */
import { EventEmitter } from 'eventemitter3';
import { backoffDelay } from './backoff';
import { CloseCode, isRetryable } from './close-codes';
import { defaultEnv, httpUrl, type Env } from './env';
import { decodeBatch, encodeFrame, PROTOCOL_VERSION, type Frame, type Limits } from './frame';
import { canUpgrade, Race, supportedTransports } from './negotiate';
import { resolveOptions, type ResolvedOptions, type SocketEvents, type SocketOptions, type SocketState } from './options';
import { decodePayload, encodePayload, type Payload } from './payload';
import { Receipt, Session } from './session';
import type { ClientTransport, Transport, TransportClose, TransportSettings } from '../transports/types';

/** Acknowledge at once when this many received messages are unacknowledged. */
const ACK_EVERY = 32;
const PONG = encodeFrame({ t: 'P' });

/** One transport attempt: racing for the session, probing an upgrade, or carrying the session. */
interface Link {
  t: ClientTransport | null;
  index: number;
  name: string;
  upgrade: boolean;
  /** The session this link asked to resume, or '' for a new session. */
  sid: string;
  dead: boolean;
}

type TimerName = 'race' | 'connect' | 'retry' | 'beat' | 'ack' | 'upgrade' | 'probe';

export class Socket extends EventEmitter<SocketEvents> {
  /** 'connecting' until the first session opens, 'reconnecting' while resuming, 'closed' for good. */
  state: SocketState = 'connecting';
  /** Name of the transport carrying the session now, or null. */
  transport: string | null = null;

  private readonly o: ResolvedOptions;
  private readonly env: Env;
  private readonly list: Transport[];
  private readonly settings: TransportSettings;
  private session: Session;
  private sid = '';
  private tok = '';
  private hb = 0;
  private hto = 0;
  private lim: Limits;
  private current: Link | null = null;
  private links: Link[] = [];
  private race: Race | null = null;
  private attempt = 0;
  private upgrades = 0;
  private lastHeard = 0;
  private retryAt = 0;
  private pongOwed = false;
  private full = false;
  private timers: Partial<Record<TimerName, unknown>> = {};
  private readonly unwake: () => void;

  constructor(url: string, options: SocketOptions = {}) {
    super();
    const o = (this.o = resolveOptions(options));
    const env = (this.env = { ...defaultEnv(), ...options.env });
    if (options.WebSocket) env.WebSocket = options.WebSocket;
    this.list = supportedTransports(o.transports, env);
    this.lim = { payload: o.maxPayload, batch: 2 * o.maxPayload, buffer: o.maxBufferedMessages };
    this.session = this.newSession();
    const self = this;
    this.settings = {
      url: httpUrl(url),
      requestTimeout: o.requestTimeout,
      get holdTimeout() {
        return self.hb + self.hto + o.requestTimeout;
      },
    };
    this.unwake = env.onWake(() => this.wake());
    this.negotiate();
  }

  /** The server's id for the current session ('' before the first open). */
  get id(): string {
    return this.sid;
  }

  /** Bytes sent but not yet acknowledged by the server. */
  get bufferedAmount(): number {
    return this.session.bufferedBytes;
  }

  /**
   * Send a string or binary message. Queued while reconnecting and delivered exactly once, in
   * order, while the session lives. Returns false, keeping nothing, when the send buffer is full
   * (wait for `drain`). Throws on a closed socket or a message over the server's size limit.
   */
  send(data: Payload): boolean {
    if (this.state === 'closed') throw new Error('cometsocket: send() on a closed socket');
    const p = encodePayload(data);
    const n = this.session.push(p[0], p[1], this.lim.payload);
    if (n === -2) throw new RangeError('cometsocket: message larger than the limit of ' + this.lim.payload + ' bytes');
    if (n < 0) return !(this.full = true);
    this.flush();
    return true;
  }

  /** Close the session for good. `code` is 1000 or 3000–4999. */
  close(code: number = CloseCode.Normal, reason = ''): void {
    if (code !== 1000 && (code < 3000 || code > 4999)) throw new RangeError('cometsocket: close code must be 1000 or 3000-4999');
    const link = this.current;
    if (link && link.t && link.t.canSend) {
      const b = this.session.take(this.lim.batch);
      link.t.send((b ? b + '\n' : '') + encodeFrame({ t: 'c', c: code, r: reason }));
    }
    this.finish(code, reason, true);
  }

  private newSession(): Session {
    return new Session({ maxMessages: this.o.maxBufferedMessages, maxBytes: this.o.maxBufferedBytes });
  }

  private log(m: string): void {
    if (this.o.log) this.o.log(m);
  }

  private later(name: TimerName, fn: () => void, ms: number): void {
    this.clear(name);
    this.timers[name] = this.env.setTimeout(() => {
      delete this.timers[name];
      fn();
    }, ms);
  }

  private clear(name: TimerName): void {
    if (this.timers[name] !== undefined) this.env.clearTimeout(this.timers[name]);
    delete this.timers[name];
  }

  private query(open: boolean): string {
    const s = this.sid ? 'sid=' + encodeURIComponent(this.sid) + '&tok=' + encodeURIComponent(this.tok) + '&ack=' + this.session.receivedSeq : '';
    return open ? 'v=' + PROTOCOL_VERSION + (s ? '&' + s : '') : s;
  }

  // ---- negotiation -------------------------------------------------------------------------

  private negotiate(): void {
    if (!this.list.length) return this.finish(CloseCode.NoTransport, 'no supported transport', false);
    this.race = new Race(this.list.length);
    this.later('connect', () => this.raceLost({ code: CloseCode.HeartbeatTimeout, reason: 'connect timeout' }), this.o.connectTimeout);
    this.startNext();
  }

  private startNext(): void {
    const race = this.race!;
    const i = race.start();
    if (i < 0) return;
    this.openLink(i, false);
    if (this.race === race && race.headStartOver()) this.later('race', () => this.startNext(), this.o.headStart);
  }

  private openLink(index: number, upgrade: boolean): void {
    const tr = this.list[index];
    const link: Link = { t: null, index, name: tr.name, upgrade, sid: this.sid, dead: false };
    this.links.push(link);
    this.log((upgrade ? 'upgrade: try ' : 'try ') + tr.name + (this.sid ? ' (resume)' : ' (new session)'));
    try {
      link.t = tr.open(
        this.settings,
        {
          query: (open) => this.query(open),
          data: (b) => this.onData(link, b),
          writable: () => link === this.current && this.flush(),
          closed: (info) => this.onLinkClosed(link, info),
        },
        this.env,
      );
    } catch (e) {
      this.onLinkClosed(link, { code: 1006, reason: tr.name + ' threw: ' + (e as Error).message });
    }
    if (link.dead && link.t) link.t.close();
  }

  private closeLink(link: Link): void {
    link.dead = true;
    if (link.t) link.t.close();
    const i = this.links.indexOf(link);
    if (i >= 0) this.links.splice(i, 1);
  }

  private closeAll(): void {
    while (this.links.length) this.closeLink(this.links[0]);
    if (this.current) this.closeLink(this.current);
    this.current = null;
    this.race = null;
    for (const k in this.timers) this.clear(k as TimerName);
  }

  private onLinkClosed(link: Link, info: TransportClose): void {
    if (link.dead) return;
    this.closeLink(link);
    this.log(link.name + ' closed: ' + info.code + ' ' + info.reason);
    if (info.code === CloseCode.UnknownSession && link.sid && link.sid === this.sid) return this.sessionLost(info);
    if (link === this.current) {
      this.current = null;
      return this.lost(info);
    }
    if (link.upgrade) return this.scheduleUpgrade();
    const race = this.race;
    if (!race) return;
    const now = race.failed();
    if (race.lost) this.raceLost(info);
    else if (now) this.startNext();
  }

  private raceLost(info: TransportClose): void {
    this.log('no transport opened: ' + info.reason);
    this.lost(info);
  }

  // ---- receiving -----------------------------------------------------------------------------

  private onData(link: Link, text: string): void {
    if (link.dead) return;
    let frames: Frame[];
    try {
      frames = decodeBatch(text);
    } catch (e) {
      return this.onLinkClosed(link, { code: 1002, reason: (e as Error).message });
    }
    this.lastHeard = this.env.now();
    for (let i = 0; i < frames.length && !link.dead; i++) {
      const f = frames[i];
      if (link !== this.current) {
        if (f.t === 'o') this.onOpen(link, f);
        else if (f.t === 'c') this.onLinkClosed(link, { code: f.c, reason: f.r, retryAfter: f.ra });
        else this.onLinkClosed(link, { code: 1002, reason: 'frame before open' });
        continue;
      }
      if (f.t === 'd') {
        const r = this.session.receive(f);
        if (r === Receipt.Deliver) this.emit('message', decodePayload(f.d, f.b === 1));
        else if (r === Receipt.Gap) this.onLinkClosed(link, { code: 1002, reason: 'sequence gap' });
      } else if (f.t === 'a') {
        if (this.session.acked(f.a) < 0) this.onLinkClosed(link, { code: 1002, reason: 'ack beyond what was sent' });
        else if (this.full && this.session.bufferedCount * 2 <= this.o.maxBufferedMessages && this.session.bufferedBytes * 2 <= this.o.maxBufferedBytes) {
          this.full = false;
          this.emit('drain');
        }
      } else if (f.t === 'p') this.pongOwed = true;
      else if (f.t === 'c') this.onServerClose(link, f.c, f.r, f.ra);
    }
    if (link !== this.current) return;
    if (this.session.ackOwed >= ACK_EVERY || this.pongOwed) this.flush();
    else if (this.session.ackOwed && this.timers.ack === undefined) this.later('ack', () => this.flush(), this.o.ackDelay);
  }

  private onOpen(link: Link, f: Extract<Frame, { t: 'o' }>): void {
    if (f.v !== PROTOCOL_VERSION) return this.onLinkClosed(link, { code: CloseCode.UnsupportedVersion, reason: 'server speaks protocol ' + f.v });
    if (!link.sid && this.sid) {
      // A new session opened by a race loser: tell the server to drop it.
      if (link.t && link.t.canSend) link.t.send(encodeFrame({ t: 'c', c: CloseCode.Normal, r: 'lost the race' }));
      return this.closeLink(link);
    }
    if (link.sid ? f.sid !== this.sid || !this.session.resume(f.ack) : !this.session.resume(0)) {
      return this.onLinkClosed(link, { code: 1002, reason: 'open frame does not match the session' });
    }
    const resumed = !!link.sid;
    const prev = this.current;
    const was = this.state;
    this.sid = f.sid;
    this.tok = f.tok;
    this.hb = f.hb;
    this.hto = f.hto;
    this.lim = f.lim;
    this.links.splice(this.links.indexOf(link), 1);
    this.closeAll();
    if (prev) this.log('moved from ' + prev.name + ' to ' + link.name);
    this.log(link.name + ' carries session ' + f.sid + (resumed ? ' (resumed, server has ' + f.ack + ')' : ''));
    this.current = link;
    this.attempt = 0;
    if (link.index === 0) this.upgrades = 0;
    this.state = 'open';
    this.beat();
    this.scheduleUpgrade();
    if (this.transport !== link.name) this.emit('transport', (this.transport = link.name));
    if (!resumed) this.emit('open');
    else if (was === 'reconnecting') this.emit('resume');
    this.flush();
  }

  private onServerClose(link: Link, code: number, reason: string, retryAfter?: number): void {
    if (code === CloseCode.UnknownSession) return this.onLinkClosed(link, { code, reason });
    this.closeLink(link);
    this.current = null;
    if (code === CloseCode.Normal || !isRetryable(code)) this.finish(code, reason, true);
    else this.lost({ code, reason, retryAfter });
  }

  // ---- sending -------------------------------------------------------------------------------

  private flush(): void {
    const link = this.current;
    this.clear('ack');
    while (link === this.current && link && link.t && link.t.canSend && (this.session.hasOutput || this.pongOwed)) {
      let b = this.session.take(this.lim.batch);
      if (this.pongOwed) {
        b = b ? b + '\n' + PONG : PONG;
        this.pongOwed = false;
      }
      link.t.send(b);
    }
  }

  // ---- liveness, reconnection, upgrade --------------------------------------------------------

  /** Wall-clock heartbeat deadline: silence longer than interval + timeout kills the transport. */
  private beat(): void {
    const link = this.current;
    if (!link) return;
    const limit = this.hb + this.hto;
    const idle = this.env.now() - this.lastHeard;
    if (idle >= limit) this.onLinkClosed(link, { code: CloseCode.HeartbeatTimeout, reason: 'no frame for ' + idle + ' ms' });
    else this.later('beat', () => this.beat(), limit - idle);
  }

  /** The page may have slept: re-check deadlines against the wall clock now. */
  private wake(): void {
    if (this.current) this.beat();
    else if (this.timers.retry !== undefined && this.env.now() >= this.retryAt) {
      this.clear('retry');
      this.negotiate();
    }
  }

  private lost(info: TransportClose): void {
    this.closeAll();
    if (!isRetryable(info.code)) return this.finish(info.code, info.reason, false);
    const attempt = ++this.attempt;
    if (attempt > this.o.maxAttempts || !this.o.shouldRetry({ code: info.code, reason: info.reason, attempt })) {
      return this.finish(CloseCode.RetriesExhausted, 'gave up after ' + (attempt - 1) + ' attempts: ' + info.reason, false);
    }
    const delay = Math.max(backoffDelay(attempt, { base: this.o.backoffBase, cap: this.o.backoffCap }, this.env.random()), info.retryAfter || 0);
    this.state = 'reconnecting';
    this.log('reconnect #' + attempt + ' in ' + delay + ' ms after ' + info.code + ' ' + info.reason);
    this.retryAt = this.env.now() + delay;
    this.later('retry', () => this.negotiate(), delay);
    this.emit('reconnecting', { attempt, delay, code: info.code, reason: info.reason });
  }

  private sessionLost(info: TransportClose): void {
    const unacked = this.session.unacked().map((f) => decodePayload(f.d, f.b === 1));
    this.log('session ' + this.sid + ' lost: ' + info.reason + '; ' + unacked.length + ' unacknowledged');
    this.closeAll();
    this.sid = this.tok = '';
    this.session = this.newSession();
    this.state = 'reconnecting';
    this.emit('session-lost', { unacked, code: info.code, reason: info.reason });
    if (this.full) {
      this.full = false;
      this.emit('drain');
    }
    if ((this.state as SocketState) !== 'closed') this.negotiate();
  }

  private scheduleUpgrade(): void {
    const link = this.current;
    if (!this.o.upgrade || !link || !canUpgrade(link.index)) return;
    const delay = backoffDelay(++this.upgrades, { base: 1000, cap: 60000 }, this.env.random());
    this.later('upgrade', () => {
      if (this.current !== link) return;
      this.openLink(0, true);
      const probe = this.links[this.links.length - 1];
      this.later('probe', () => probe && this.onLinkClosed(probe, { code: 1006, reason: 'upgrade timed out' }), this.o.connectTimeout);
    }, delay);
  }

  private finish(code: number, reason: string, wasClean: boolean): void {
    if (this.state === 'closed') return;
    this.closeAll();
    this.unwake();
    this.state = 'closed';
    this.transport = null;
    this.log('closed: ' + code + ' ' + reason);
    this.emit('close', { code, reason, wasClean });
  }
}

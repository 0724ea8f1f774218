/**
 * The public socket: states, events and the orchestration of transports around one session.
 * Ordering and exactly-once live in the session layer; this file decides when to open, race,
 * upgrade, resume and give up, with every timer and global reached through the environment.
 */
import { EventEmitter } from 'eventemitter3';
import { backoffDelay } from './backoff';
import { CloseCode, isRetryable, isTransient } from './close-codes';
import { DEBUG } from './build';
import { defaultEnv, httpUrl, type Env } from './env';
import { decodeBatch, decodeBinary, encodeFrame, PROTOCOL_VERSION, type Frame, type Limits } from './frame';
import { nextUpgrade, raceOrder, recall, remember, Race, supportedTransports } from './negotiate';
import { expect, resolveOptions, type ResolvedOptions, type SocketEvents, type SocketOptions, type SocketState } from './options';
import { decodePayload, encodePayload, toArrayBuffer, type Payload } from './payload';
import { Receipt, Session } from './session';
import { Timers } from './timers';
import type { ClientTransport, Transport, TransportClose, TransportSettings } from '../transports/types';

/** Acknowledge at once when this many received messages are unacknowledged. */
const ACK_EVERY = 32;
const PONG = encodeFrame({ t: 'P' });

/** A debug message. Every call is behind `if (DEBUG)`, so production builds drop it with its strings. */
function log(o: ResolvedOptions, m: string): void {
  if (o.log) o.log(m);
}

/** One transport attempt: racing for the session, probing an upgrade, or carrying the session. */
interface Link {
  t: ClientTransport | null;
  index: number;
  name: string;
  upgrade: boolean;
  /** An upgrade probe: a handshake with `probe=1` that tests the path and touches no session. */
  probe?: boolean;
  /** The session this link asked to resume, or '' for a new session. */
  sid: string;
  dead: boolean;
  /** A race loser's own session (sid, tok), so its close frame goes to that session. */
  own?: [string, string];
  /** Lost the race: kept until its own open frame arrives (see _onOpen), or connectTimeout. */
  loser?: unknown;
  /** The race this link runs in: a loser of an earlier race that fails later does not count in the next. */
  race?: Race;
}

type TimerName = 'race' | 'connect' | 'retry' | 'beat' | 'ack' | 'upgrade' | 'probe';

export class Socket extends EventEmitter<SocketEvents> {
  /** 'connecting' until the first session opens, 'reconnecting' while resuming, 'closed' for good. */
  state: SocketState = 'connecting';
  /** Name of the transport carrying the session now, or null. */
  transport: string | null = null;
  /** The server's id for the current session ('' before the first open). Read-only. */
  id = '';

  private readonly _o: ResolvedOptions;
  private readonly _env: Env;
  private readonly _list: Transport[];
  private readonly _settings: TransportSettings;
  private _session: Session;
  private _tok = '';
  private _hb = 0;
  private _hto = 0;
  private _lim: Limits;
  private _current: Link | null = null;
  private _links: Link[] = [];
  private _race: Race | null = null;
  private _attempt = 0;
  private _upgrades = 0;
  /** Candidate index of the last upgrade probe in this cycle (-1: none yet). */
  private _tried = -1;
  /** Race order: candidate indexes, what worked last time first. */
  private _order: number[] = [];
  /**
   * Candidates not probed again by this socket: those the server does not offer (4501), and those
   * whose upgrade probe took the session and then failed (e.g. a stream behind a proxy that
   * buffers it), as each such try costs a reconnect.
   */
  private _avoid: Record<number, boolean> = {};
  private _lastHeard = 0;
  /** When the current transport opened (0: none since the last loss): backoff restarts only after a stable one. */
  private _openedAt = 0;
  private _pongOwed = false;
  /** A flush is scheduled for the end of this task: sends of one task go out as one batch. */
  private _queued = false;
  private _full = false;
  /** Named timers with their wall-clock due times: a page that slept runs the overdue ones on wake. */
  private readonly _timers: Timers<TimerName>;
  private readonly _unwake: () => void;

  /**
   * @param fallback transports used when `options.transports` is absent (what `connect()` passes).
   */
  constructor(url: string, options: SocketOptions = {}, fallback?: readonly Transport[]) {
    super();
    expect(typeof url === 'string', 'url must be a string');
    const env = (this._env = defaultEnv(options.env));
    const o = (this._o = resolveOptions(options, env, fallback));
    if (options.WebSocket) env.WebSocket = options.WebSocket;
    this._list = supportedTransports(o.transports, env);
    this._lim = { payload: o.maxPayload, batch: 2 * o.maxPayload, buffer: o.maxBufferedMessages };
    this._session = this._newSession();
    const self = this;
    this._settings = {
      url: httpUrl(url),
      requestTimeout: o.requestTimeout,
      probeTimeout: o.probeTimeout,
      pollInterval: o.pollInterval,
      get holdTimeout() {
        return Math.min(self._hb + self._hto + o.requestTimeout, 0x7fffffff);
      },
    };
    this._timers = new Timers(env);
    this._unwake = env.onWake(() => this._timers.wake());
    this._negotiate();
  }

  /** Bytes sent but not yet acknowledged by the server. */
  get bufferedAmount(): number {
    return this._session.bufferedBytes;
  }

  /**
   * Send a string or binary message. Queued while reconnecting and delivered exactly once, in
   * order, while the session lives. Returns false, keeping nothing, when the send buffer is full
   * (wait for `drain`). Throws on a closed socket or a message over the server's size limit.
   */
  send(data: Payload): boolean {
    if (this.state === 'closed') throw new Error('cometsocket: send() on a closed socket');
    const n = this._session.push(encodePayload(data), this._lim.payload);
    if (n === -2) throw new RangeError('cometsocket: message larger than ' + Math.min(this._lim.payload, this._o.maxBufferedBytes) + ' bytes');
    if (n < 0) return !(this._full = true);
    if (!this._queued) {
      this._queued = true;
      this._env.defer(() => {
        this._queued = false;
        this._flush();
      });
    }
    return true;
  }

  /** Close the session for good. `code` is 1000 or 3000–4999. */
  close(code: number = CloseCode.Normal, reason = ''): void {
    if (code !== 1000 && (code < 3000 || code > 4999)) throw new RangeError('cometsocket: close code must be 1000 or 3000-4999');
    if (this.state === 'closed') return;
    const link = this._current;
    const bye = encodeFrame({ t: 'c', c: code, r: reason });
    if (link && link.t) {
      const b = this._session.take(this._lim.batch);
      link.t.sendLast((b ? b + '\n' : '') + bye);
    } else if (this.id) {
      // Between transports: tell the server anyway, through the first transport that can say
      // goodbye without being open (an HTTP POST), or it keeps the session until it expires.
      for (let i = 0; i < this._list.length; i++) {
        const t = this._list[i];
        if (t.farewell) {
          t.farewell(this._settings, this._query(true), bye, this._env);
          break;
        }
      }
    }
    this._finish(code, reason, true);
  }

  private _newSession(): Session {
    return new Session({ maxMessages: this._o.maxBufferedMessages, maxBytes: this._o.maxBufferedBytes });
  }

  private _query(open: boolean, link?: Link): string {
    if (link && link.probe) return 'v=' + PROTOCOL_VERSION + '&probe=1';
    const own = link && link.own;
    const sid = own ? own[0] : this.id;
    const tok = own ? own[1] : this._tok;
    const s = sid ? 'sid=' + encodeURIComponent(sid) + '&tok=' + encodeURIComponent(tok) + '&ack=' + this._session.receivedSeq : '';
    // A new session's handshake may race another (more than one candidate): w=1 asks the server
    // to announce the session only when this socket keeps it (PROTOCOL.md, "Handshake").
    return open ? 'v=' + PROTOCOL_VERSION + (s ? '&' + s : this._list.length > 1 ? '&w=1' : '') : s;
  }

  // ---- negotiation -------------------------------------------------------------------------

  private _negotiate(): void {
    // Deferred: the caller of connect() has not attached its listeners yet.
    if (!this._list.length) return this._env.defer(() => this._finish(CloseCode.NoTransport, 'no supported transport', false));
    const first = this._o.rememberFor > 0 ? recall(this._env.storage, this._key(), this._list, this._env.now()) : -1;
    if (DEBUG && first > 0) log(this._o, 'starting with ' + this._list[first].name + ': it worked here last time');
    this._order = raceOrder(this._list.length, first);
    this._race = new Race(this._list.length);
    this._timers.later('connect', () => this._lost({ code: CloseCode.HeartbeatTimeout, reason: 'connect timeout' }), this._o.connectTimeout);
    this._startNext();
    // Nothing remembered for this endpoint (a first visit): the first fallback starts together with
    // the first candidate, so a network that blocks WebSocket costs no head start and no failed
    // upgrade round trips; the loser's session is closed when it opens. Only for a new session:
    // two resume handshakes would both attach to the session on the server.
    if (first < 0 && !this.id && this._o.parallelFallback && this._race && this._race.headStartOver()) {
      if (DEBUG) log(this._o, 'nothing remembered for this endpoint: ' + this._list[this._order[1]].name + ' starts alongside');
      this._startNext();
    }
  }

  private _startNext(): void {
    const race = this._race!;
    const i = race.start();
    if (i < 0) return;
    const name = this._list[this._order[i]].name;
    this._openLink(this._order[i], false).race = race;
    if (this._race === race && race.headStartOver()) {
      this._timers.later('race', () => {
        if (DEBUG) log(this._o, name + ': no open frame within its ' + this._o.headStart + ' ms head start; next candidate alongside');
        this._startNext();
      }, this._o.headStart);
    }
  }

  private _openLink(index: number, upgrade: boolean, probe?: boolean): Link {
    const tr = this._list[index];
    const link: Link = { t: null, index, name: tr.name, upgrade, probe, sid: this.id, dead: false };
    this._links.push(link);
    if (DEBUG) log(this._o, probe ? 'upgrade: probe ' + tr.name : (upgrade ? 'upgrade: try ' : 'try ') + tr.name + (this.id ? ' (resume)' : ' (new session)'));
    try {
      link.t = tr.open(
        this._settings,
        {
          query: (open) => this._query(open, link),
          data: (b) => this._onData(link, b),
          writable: () => link === this._current && this._flush(),
          closed: (info) => this._onLinkClosed(link, info),
        },
        this._env,
      );
    } catch (e) {
      this._onLinkClosed(link, { code: 1006, reason: tr.name + ' threw: ' + (e as Error).message });
    }
    if (link.dead && link.t) link.t.close();
    return link;
  }

  /** Keep an attempt until its own open frame arrives (see _onOpen) or connectTimeout. */
  private _keepUntilOpen(l: Link): void {
    if (l.loser === undefined) l.loser = this._env.setTimeout(() => this._closeLink(l), this._o.connectTimeout);
  }

  private _closeLink(link: Link): void {
    link.dead = true;
    if (link.loser !== undefined) this._env.clearTimeout(link.loser);
    if (link.t) link.t.close();
    const i = this._links.indexOf(link);
    if (i >= 0) this._links.splice(i, 1);
  }

  /** Close every link but the race losers still finishing, and every timer. */
  private _closeAll(): void {
    for (let i = this._links.length - 1; i >= 0; i--) if (this._links[i].loser === undefined) this._closeLink(this._links[i]);
    if (this._current) this._closeLink(this._current);
    this._current = null;
    this._race = null;
    this._timers.cancelAll();
  }

  private _onLinkClosed(link: Link, info: TransportClose): void {
    if (link.dead) return;
    this._closeLink(link);
    if (this.state === 'closed') return; // an attempt kept past close() (see _finish)
    if (DEBUG) log(this._o, link.name + ' closed: ' + info.code + ' ' + info.reason);
    // A transport the server leaves out is not tried again by this socket.
    if (info.code === CloseCode.TransportUnavailable) this._avoid[link.index] = true;
    // A failed probe cost nothing: the next candidate, or this one later, with backoff.
    if (link.probe) return this._current ? this._scheduleUpgrade() : undefined;
    if (info.code === CloseCode.UnknownSession && link.sid && link.sid === this.id) return this._sessionLost(info);
    if (link === this._current) {
      this._current = null;
      // An upgrade probe is attaching: the server then ends the old transport (a poll gets 409).
      // Wait for the probe (bounded by its timer) instead of reconnecting.
      for (let i = 0; i < this._links.length; i++) if (this._links[i].upgrade) return;
      return this._lost(info);
    }
    if (link.upgrade) {
      if (this._current) return this._scheduleUpgrade();
      // The server had moved the session to the probe (the old transport then died): probing this
      // transport again would cost a reconnect each time, so this socket leaves it alone.
      this._avoid[link.index] = true;
      if (DEBUG) log(this._o, 'upgrade: ' + link.name + ' took the session but failed (' + info.reason + '); not probed again');
      return this._lost(info);
    }
    const race = this._race;
    if (!race || link.race !== race) return;
    const now = race.failed();
    if (race.lost()) this._lost(info);
    else if (now) this._startNext();
  }

  // ---- receiving -----------------------------------------------------------------------------

  private _onData(link: Link, text: string | ArrayBuffer): void {
    if (link.dead) return;
    let frames: Frame[];
    // A binary message: one data frame whose payload is these bytes.
    let bytes: Uint8Array | undefined;
    try {
      if (typeof text === 'string') frames = decodeBatch(text);
      else {
        const b = decodeBinary(new Uint8Array(text));
        bytes = b[1];
        frames = [{ t: 'd', s: b[0], d: '', b: 1 }];
      }
    } catch (e) {
      return this._onLinkClosed(link, { code: 1002, reason: (e as Error).message });
    }
    if (link.probe) {
      // The path carried the server's ping while the response was still open (not buffered):
      // now attach the session to this transport.
      if (!frames.length) return;
      if (frames[0].t === 'p') this._probed(link);
      else this._onLinkClosed(link, { code: 1002, reason: 'bad probe answer' });
      return;
    }
    // A sign of life is a frame: an empty batch (a poll answered at once) is not one.
    if (frames.length) this._lastHeard = this._env.now();
    for (let i = 0; i < frames.length && !link.dead; i++) {
      const f = frames[i];
      if (link !== this._current) {
        if (f.t === 'o') this._onOpen(link, f);
        else if (f.t === 'c') this._onLinkClosed(link, { code: f.c, reason: f.r, retryAfter: f.ra });
        else this._onLinkClosed(link, { code: 1002, reason: 'frame before open' });
        continue;
      }
      if (f.t === 'd') {
        const r = this._session.receive(f);
        if (r === Receipt.Deliver) this._emit('message', bytes ? toArrayBuffer(bytes) : decodePayload(f.d, f.b === 1));
        else if (r === Receipt.Gap) this._onLinkClosed(link, { code: 1002, reason: 'sequence gap' });
      } else if (f.t === 'a') {
        if (this._session.acked(f.a) < 0) this._onLinkClosed(link, { code: 1002, reason: 'ack beyond what was sent' });
        else this._drained();
      } else if (f.t === 'p') this._pongOwed = true;
      else if (f.t === 'c') this._onServerClose(link, f.c, f.r, f.ra);
    }
    if (link !== this._current) return;
    if (this._session.ackOwed() >= ACK_EVERY || this._pongOwed) this._flush();
    else if (this._session.ackOwed() && !this._queued && !this._timers.pending('ack')) this._timers.later('ack', () => this._flush(), this._o.ackDelay);
  }

  private _onOpen(link: Link, f: Extract<Frame, { t: 'o' }>): void {
    const closed = this.state === 'closed';
    if (closed || (!link.sid && this.id)) {
      // An attempt in flight when the socket closed, or a race loser that opened a new session:
      // tell the server to drop the session it opened.
      link.own = [f.sid, f.tok];
      if (link.t) link.t.sendLast(encodeFrame({ t: 'c', c: CloseCode.Normal, r: closed ? 'socket closed' : 'lost the race' }));
      return this._closeLink(link);
    }
    if (f.v !== PROTOCOL_VERSION) return this._onLinkClosed(link, { code: CloseCode.UnsupportedVersion, reason: 'server speaks protocol ' + f.v });
    if (link.sid ? f.sid !== this.id || !this._session.resume(f.ack, 0) : !this._session.resume(0)) {
      return this._onLinkClosed(link, { code: 1002, reason: 'open frame does not match the session' });
    }
    const resumed = !!link.sid;
    const prev = this._current;
    const was = this.state;
    this.id = f.sid;
    this._tok = f.tok;
    this._hb = f.hb;
    this._hto = f.hto;
    this._lim = f.lim;
    this._links.splice(this._links.indexOf(link), 1);
    if (link.loser !== undefined) this._env.clearTimeout(link.loser);
    link.loser = undefined;
    // Race losers are kept until their own open frame arrives (or connectTimeout): one that opened
    // a new session is then told to close it; one that resumed this session has become the
    // server's transport for it (the last attach wins there), so it takes over here too.
    for (let i = 0; i < this._links.length; i++) {
      const l = this._links[i];
      if (!l.upgrade && !l.probe && l.sid === (resumed ? f.sid : '')) this._keepUntilOpen(l);
    }
    this._closeAll();
    if (DEBUG && prev) log(this._o, 'moved from ' + prev.name + ' to ' + link.name);
    if (DEBUG) log(this._o, link.name + ' carries session ' + f.sid + (resumed ? ' (resumed, server has ' + f.ack + ')' : ''));
    this._current = link;
    this._openedAt = this._env.now();
    this._tried = -1;
    if (link.index === 0) this._upgrades = 0;
    if (this._o.rememberFor > 0) remember(this._env.storage, this._key(), link.name, this._env.now(), this._o.rememberFor);
    this.state = 'open';
    this._scheduleUpgrade();
    // A listener may close the socket: nothing is emitted after that.
    if (this.transport !== link.name) this._emit('transport', (this.transport = link.name));
    if (link === this._current) {
      if (!resumed) this._emit('open');
      else if (was === 'reconnecting') this._emit('resume');
    }
    // Keep a racing handshake's session: a frame at once (a pong) has the server announce it.
    if (!resumed && this._list.length > 1) this._pongOwed = true;
    this._drained();
    this._flush();
    // Last: a heartbeat already due (a server announcing hb + hto = 0) ends the link after 'open'.
    this._beat();
  }

  private _onServerClose(link: Link, code: number, reason: string, retryAfter?: number): void {
    if (code === CloseCode.UnknownSession) return this._onLinkClosed(link, { code, reason });
    this._closeLink(link);
    this._current = null;
    if (isTransient(code)) this._lost({ code, reason, retryAfter });
    else this._finish(code, reason, true);
  }

  /** After an acknowledgement (an ack frame, or a resume's open frame): 'drain' when half the room is free. */
  private _drained(): void {
    if (this._full && this.state !== 'closed' && this._session.bufferedCount() * 2 <= this._o.maxBufferedMessages && this._session.bufferedBytes * 2 <= this._o.maxBufferedBytes) {
      this._full = false;
      this._emit('drain');
    }
  }

  // ---- sending -------------------------------------------------------------------------------

  private _flush(): void {
    const link = this._current;
    this._timers.cancel('ack');
    while (link === this._current && link && link.t && link.t.canSend && (this._session.hasOutput() || this._pongOwed)) {
      let b = this._session.take(this._lim.batch, !!link.t.binary);
      // A pong rides with a text batch; after a binary message it goes in the next round.
      if (this._pongOwed && typeof b === 'string') {
        b = b ? b + '\n' + PONG : PONG;
        this._pongOwed = false;
      }
      link.t.send(b);
    }
  }

  // ---- liveness, reconnection, upgrade --------------------------------------------------------

  /** Wall-clock heartbeat deadline: silence longer than interval + timeout kills the transport. */
  private _beat(): void {
    const link = this._current;
    if (!link) return;
    const limit = this._hb + this._hto;
    const idle = this._env.now() - this._lastHeard;
    if (idle >= limit) this._onLinkClosed(link, { code: CloseCode.HeartbeatTimeout, reason: 'no frame for ' + idle + ' ms' });
    else this._timers.later('beat', () => this._beat(), limit - idle);
  }

  /** The session's transport failed, or no candidate opened (a race: the last one failed, or connectTimeout ran out). */
  private _lost(info: TransportClose): void {
    if (DEBUG && this._race) log(this._o, 'no transport opened: ' + info.reason);
    this._closeAll();
    if (!isRetryable(info.code)) return this._finish(info.code, info.reason, false);
    // Backoff restarts only after a transport that stayed up for twice backoffBase (at most
    // backoffCap): a server that accepts and drops every session at once gets ever longer waits,
    // while a link that breaks every few seconds reconnects within backoffBase each time.
    if (this._openedAt && this._env.now() - this._openedAt >= Math.min(2 * this._o.backoffBase, this._o.backoffCap)) this._attempt = 0;
    this._openedAt = 0;
    const attempt = ++this._attempt;
    if (attempt > this._o.maxAttempts || !this._o.shouldRetry({ code: info.code, reason: info.reason, attempt })) {
      return this._finish(CloseCode.RetriesExhausted, 'gave up after ' + (attempt - 1) + ' attempts: ' + info.reason, false);
    }
    // The server's retry-after is honoured up to an hour.
    const delay = Math.max(backoffDelay(attempt, { base: this._o.backoffBase, cap: this._o.backoffCap }, this._env.random()), Math.min(info.retryAfter || 0, 3600000));
    this.state = 'reconnecting';
    if (DEBUG) log(this._o, 'reconnect #' + attempt + ' in ' + delay + ' ms after ' + info.code + ' ' + info.reason);
    this._timers.later('retry', () => this._negotiate(), delay);
    this._emit('reconnecting', { attempt, delay, code: info.code, reason: info.reason });
  }

  private _sessionLost(info: TransportClose): void {
    const unacked = this._session.unacked().map((d) => (typeof d === 'string' ? d : toArrayBuffer(d)));
    if (DEBUG) log(this._o, 'session ' + this.id + ' lost: ' + info.reason + '; ' + unacked.length + ' unacknowledged');
    this._closeAll();
    this.id = this._tok = '';
    this._session = this._newSession();
    this.state = 'reconnecting';
    this._emit('session-lost', { unacked, code: info.code, reason: info.reason });
    this._drained();
    if ((this.state as SocketState) !== 'closed') this._negotiate();
  }

  /** While on a fallback, probe the better transports one at a time, best first, with backoff. */
  private _scheduleUpgrade(): void {
    const link = this._current;
    if (!this._o.upgrade || !link || link.index === 0) return;
    const avoid = (i: number): boolean => !!this._avoid[i];
    let next = nextUpgrade(link.index, this._tried, avoid);
    if (next < 0) next = nextUpgrade(link.index, -1, avoid);
    if (next < 0) {
      if (DEBUG) log(this._o, 'upgrade: every better transport failed here; staying on ' + link.name);
      return;
    }
    this._tried = next;
    const delay = backoffDelay(++this._upgrades, { base: 1000, cap: 60000 }, this._env.random());
    if (DEBUG) log(this._o, 'upgrade: will try ' + this._list[next].name + ' in ' + delay + ' ms');
    this._timers.later('upgrade', () => {
      if (this._current === link) this._upgradeLink(next, true);
    }, delay);
  }

  /**
   * Open an upgrade link to candidate `index`, bounded by connectTimeout: first a probe (`probe`
   * true), which touches no session; once it passed, the resume handshake that moves the session.
   * A stream a proxy buffers thus fails its probe, and the session never leaves the transport
   * that works (engine.io probes the same way, inside the session).
   */
  private _upgradeLink(index: number, probe: boolean): void {
    const l = this._openLink(index, !probe, probe);
    this._timers.later('probe', () => this._onLinkClosed(l, { code: 1006, reason: 'upgrade timed out' }), this._o.connectTimeout);
  }

  private _probed(link: Link): void {
    this._closeLink(link);
    if (DEBUG) log(this._o, 'upgrade: ' + link.name + ' passed its probe');
    if (this._current) this._upgradeLink(link.index, false);
  }

  private _key(): string {
    return 'cometsocket:' + this._settings.url;
  }

  private _finish(code: number, reason: string, wasClean: boolean): void {
    if (this.state === 'closed') return;
    // Attempts still in flight may yet open a session on the server: _onOpen closes it then.
    for (let k = 0; k < this._links.length; k++) this._keepUntilOpen(this._links[k]);
    this._closeAll();
    this._unwake();
    this.state = 'closed';
    this.transport = null;
    if (DEBUG) log(this._o, 'closed: ' + code + ' ' + reason);
    this._emit('close', { code, reason, wasClean });
  }

  /**
   * Emit to the page's listeners. One that throws does not break the socket (a batch half
   * delivered, an 'open' never emitted): its error is thrown again from a timer, where the page's
   * error handler sees it, as a browser does for WebSocket listeners.
   */
  private _emit(event: keyof SocketEvents, arg?: unknown): void {
    try {
      (this.emit as (e: string, a?: unknown) => boolean)(event, arg);
    } catch (e) {
      this._env.setTimeout(() => {
        throw e;
      }, 0);
    }
  }
}

/**
 * One client session on the server: the shared session layer, the transport carrying it now,
 * heartbeat and expiry. The application sees `send`, `close` and the `message`/`close` events;
 * transports see the `LinkedConnection` half.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { binaryLineLength, decodeBinary, decodeFrame, encodeFrame, FrameError, PROTOCOL_VERSION, type Frame } from '../src/frame';
import { Receipt, Session, utf8Length } from '../src/session';
import { truncate } from '../transports/http-server';
import type { LinkedConnection, Refusal, ServerLink } from '../transports/server-types';
import type { ResolvedServerOptions } from './options';

/** Acknowledge at once when this many received messages are unacknowledged. */
const ACK_EVERY = 32;
const PING = encodeFrame({ t: 'p' });

export interface ConnectionEvents {
  /** A message from the client: a string, or a Buffer when binary was sent. Exactly once, in order. */
  message: [data: string | Buffer];
  /** The transport carrying the session changed (its name). */
  transport: [name: string];
  /** The session ended: the client or the server closed it, or it expired. */
  close: [code: number, reason: string];
}

export type ConnectionState = 'open' | 'closing' | 'closed';

export class Connection extends EventEmitter<ConnectionEvents> implements LinkedConnection {
  /** 'closing' while a close frame waits for the client to collect it. */
  state: ConnectionState = 'open';
  link: ServerLink | null = null;
  /** Headers of the request that opened the session. */
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
  private readonly session: Session;
  /** Control frames (open, ping) written before data. */
  private ctrl: string[] = [];
  private closeFrame = '';
  /** The close code and reason while 'closing', to end the link with once the frame is out. */
  private closing: [number, string] = [1000, ''];
  private lastSeen = Date.now();
  private lastPing = Date.now();
  private readonly born = Date.now();
  private since = 0;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Output is scheduled for the end of this task: sends of one task go out as one batch. */
  private queued = false;

  constructor(
    readonly id: string,
    readonly token: string,
    req: IncomingMessage,
    private readonly o: ResolvedServerOptions,
    private readonly onGone: (c: Connection) => void,
    /**
     * For a session opened by a racing handshake (`w=1`): tells the application about it once its
     * client keeps it (its first frame other than close, or a resume). Until then it is `pending`:
     * no events, not in `connections()`, and a race loser's close drops it unseen.
     */
    private announce: ((c: Connection) => void) | null = null,
  ) {
    super();
    this.headers = req.headers;
    this.remoteAddress = req.socket.remoteAddress;
    this.session = new Session({ maxMessages: o.maxBufferedMessages, maxBytes: o.maxBufferedBytes }, (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'));
  }

  /** True while a racing handshake's session waits for its client to keep it (the application has not seen it). */
  get pending(): boolean {
    return this.announce !== null;
  }

  /** The client keeps this session: announce it (once). */
  keep(): void {
    const a = this.announce;
    this.announce = null;
    if (a && this.state === 'open') a(this);
  }

  /** Name of the transport carrying the session now, or null while the client is away. */
  get transport(): string | null {
    return this.link ? this.link.name : null;
  }

  get written(): number {
    return this.session.writtenSeq;
  }

  /** Bytes sent to the client and not yet acknowledged. */
  get bufferedAmount(): number {
    return this.session.bufferedBytes;
  }

  /**
   * Send a message (string, Buffer, ArrayBuffer or typed array), delivered exactly once and in
   * order while the session lives. Returns false when the session is closed. When the client
   * stops reading and the buffer limit is reached, the session closes with 4507.
   */
  send(data: string | ArrayBuffer | ArrayBufferView): boolean {
    if (this.state !== 'open') return false;
    let d: string | Uint8Array;
    // Bytes are copied: the caller may reuse its buffer while the session keeps them for replays.
    if (typeof data === 'string') d = data;
    else if (data instanceof ArrayBuffer) d = new Uint8Array(data.slice(0));
    else if (ArrayBuffer.isView(data)) d = Uint8Array.prototype.slice.call(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    else throw new TypeError('send() takes a string, a Buffer, an ArrayBuffer or a typed array');
    const n = this.session.push(d, this.o.maxBufferedBytes);
    if (n === -2) throw new RangeError('message larger than maxBufferedBytes');
    if (n === -1) {
      this.fail({ status: 507, code: 4507, reason: 'client is not reading: send buffer full' });
      return false;
    }
    if (!this.queued) {
      this.queued = true;
      queueMicrotask(() => {
        this.queued = false;
        if (this.link) this.link.notify();
      });
    }
    return true;
  }

  /** End the session, telling the client why. */
  close(code = 1000, reason = ''): void {
    this.end(code, reason, true);
  }

  // ---- LinkedConnection ---------------------------------------------------------------------

  get hasOutput(): boolean {
    return this.ctrl.length > 0 || this.session.hasOutput() || this.closeFrame !== '';
  }

  /** Make `link` the transport of this session, the client holding everything up to `ack`. */
  attach(link: ServerLink, ack: number, resumed: boolean): Refusal | null {
    if (!this.session.resume(ack)) return { status: 400, code: 4400, reason: 'ack beyond what the server sent' };
    const prev = this.link;
    this.link = link;
    this.since = 0;
    this.touch();
    const o = this.o;
    this.ctrl = [
      encodeFrame({
        t: 'o',
        v: PROTOCOL_VERSION,
        sid: this.id,
        tok: this.token,
        hb: o.pingInterval,
        hto: o.pingTimeout,
        ack: this.session.receivedSeq,
        ...(resumed ? { r: 1 as const } : {}),
        lim: { payload: o.maxPayload, batch: o.maxBatch, buffer: o.maxBufferedMessages },
      }),
    ];
    if (prev && prev !== link) prev.end();
    if (!prev || prev.name !== link.name) this.emit('transport', link.name);
    link.notify();
    return null;
  }

  take(): string;
  take(binary: false, max: number): string;
  take(binary: boolean): string | Uint8Array;
  take(binary = false, max = Infinity): string | Uint8Array {
    let out = this.ctrl.join('\n');
    this.ctrl = [];
    if (this.ackTimer) clearTimeout(this.ackTimer), (this.ackTimer = undefined);
    // On a binary link control frames go alone, so they never wait behind a binary message.
    if (!binary || !out) {
      const data = this.session.take(Math.min(this.o.maxBatch, max), binary);
      if (typeof data !== 'string') return data;
      if (data) out = out ? out + '\n' + data : data;
    }
    // The close frame follows every data frame still to be written.
    if (this.closeFrame && !this.session.hasOutput()) {
      out = out ? out + '\n' + this.closeFrame : this.closeFrame;
      this.closeFrame = '';
      if (this.state === 'closing') {
        // The close frame is the session's last: end the link with its code once it is written.
        const link = this.link;
        const [code, reason] = this.closing;
        this.gone();
        if (link) queueMicrotask(() => link.end(code, reason));
      }
    }
    return out;
  }

  /** A batch, or a binary message (one data frame carrying bytes), from the client. */
  receive(batch: string | Uint8Array): Refusal | null {
    if (this.state !== 'open') return null;
    this.touch();
    const lines = typeof batch === 'string' ? batch.split('\n') : [batch];
    for (let i = 0; i < lines.length && this.state === 'open'; i++) {
      const line = lines[i];
      if (!line.length) continue;
      let f: Frame;
      let bytes: Buffer | null = null;
      try {
        if (typeof line === 'string') {
          if (utf8Length(line) > this.o.maxPayload) return this.tooLarge();
          f = decodeFrame(line);
        } else {
          const [s, b] = decodeBinary(line);
          if (binaryLineLength(s, b.length) > this.o.maxPayload) return this.tooLarge();
          f = { t: 'd', s, d: '', b: 1 };
          bytes = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
        }
      } catch (e) {
        return this.fail({ status: 400, code: 4400, reason: (e as FrameError).message });
      }
      if (f.t !== 'c') this.keep();
      // The application may have closed it in its 'connection' handler: nothing more is delivered.
      if (this.state !== 'open') break;
      if (f.t === 'd') {
        const r = this.session.receive(f);
        if (r === Receipt.Deliver) this.emit('message', bytes || (f.b ? Buffer.from(f.d, 'base64') : f.d));
        else if (r === Receipt.Gap) return { status: 409, code: 4409, reason: 'sequence gap: resume the session' };
      } else if (f.t === 'a') {
        if (this.session.acked(f.a) < 0) return this.fail({ status: 400, code: 4400, reason: 'ack beyond what the server sent' });
      } else if (f.t === 'c') {
        this.end(f.c, f.r, false);
      } else if (f.t !== 'P') {
        return this.fail({ status: 400, code: 4400, reason: 'unexpected frame from a client: ' + f.t });
      }
    }
    this.scheduleAck();
    return null;
  }

  private tooLarge(): Refusal {
    return this.fail({ status: 413, code: 4413, reason: 'frame larger than ' + this.o.maxPayload + ' bytes' });
  }

  rewind(ack: number): Refusal | null {
    return this.session.rewind(ack) ? null : { status: 400, code: 4400, reason: 'ack beyond what the server sent' };
  }

  touch(): void {
    this.lastSeen = Date.now();
  }

  detach(link: ServerLink): void {
    if (this.link !== link) return;
    this.link = null;
    this.since = Date.now();
    if (this.state === 'closing') this.gone();
  }

  fail(r: Refusal): Refusal {
    this.end(r.code, r.reason, true);
    return { ...r, ended: true };
  }

  // ---- liveness, called by the server's sweep ---------------------------------------------------

  /**
   * Heartbeat and expiry, against the clock. `sweepEvery`: ms until the next call; a ping due
   * before then goes now, so pings are never more than pingInterval apart.
   */
  tick(now: number, sweepEvery = 0): void {
    const o = this.o;
    const link = this.link;
    // A racing session its client has not kept within hb + hto never will be (a client that keeps
    // polling but never sends a frame): it ends unseen, its maxSessions slot freed.
    if (this.announce && now - this.born > o.pingInterval + o.pingTimeout) return this.end(4408, 'never kept', false);
    if (this.state === 'closing') {
      // The close frame could not be written in time (a client that stopped reading): drop it all.
      if (now - this.lastSeen > o.pingInterval + o.pingTimeout) {
        this.gone();
        if (link) link.end(-1);
      }
    } else if (link) {
      if (now - this.lastSeen > o.pingInterval + o.pingTimeout) {
        this.detach(link);
        link.end(-1);
      } else if (now - this.lastPing >= o.pingInterval - sweepEvery) {
        this.lastPing = now;
        // At most one ping waits: a link that does not collect them (no poll, a WebSocket behind
        // backpressure) does not pile them up.
        if (this.ctrl.indexOf(PING) < 0) this.ctrl.push(PING);
        link.notify();
      }
    } else if (now - this.since > o.sessionTimeout) {
      this.end(4408, 'session expired', false);
    }
  }

  /**
   * The server is shutting down (RtServer.close, after close()): a close frame still waiting for
   * its client (between polls, behind backpressure) is not waited for; the session ends now.
   */
  drop(): void {
    if (this.state !== 'closing') return;
    const link = this.link;
    const [code, reason] = this.closing;
    this.gone();
    if (link) link.end(code, reason);
  }

  private scheduleAck(): void {
    if (!this.session.ackOwed() || !this.link || this.queued) return;
    if (this.session.ackOwed() >= ACK_EVERY) this.link.notify();
    else if (!this.ackTimer) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = undefined;
        if (this.link) this.link.notify();
      }, this.o.ackDelay);
    }
  }

  private end(code: number, reason: string, tell: boolean): void {
    if (this.state !== 'open') return;
    if (this.ackTimer) clearTimeout(this.ackTimer), (this.ackTimer = undefined);
    const link = this.link;
    if (tell) {
      // Written by the link now, or kept for the next poll or resume (until the deadline); the
      // link ends with `code` once it is out (take()).
      this.state = 'closing';
      this.closing = [code, reason];
      this.closeFrame = encodeFrame({ t: 'c', c: code, r: truncate(reason) });
      this.lastSeen = Date.now();
      if (link) link.notify();
    } else {
      this.gone();
      if (link) link.end(code, reason);
    }
    // A session the application never saw (a race loser) ends unseen.
    if (this.announce) this.announce = null;
    else this.emit('close', code, reason);
  }

  private gone(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.ackTimer) clearTimeout(this.ackTimer), (this.ackTimer = undefined);
    this.link = null;
    this.onGone(this);
  }
}

/**
 * The session layer, shared by client and server so the two ends cannot disagree about order.
 * Pure: no timers, no I/O. It numbers outgoing messages, keeps them until the peer acknowledges
 * them (bounded by count and bytes), hands out what still has to be written on the current
 * transport, rewinds on resume so lost frames are written again, and drops replays on receipt.
 */
import { binaryLineLength, encodeBinary, encodeFrame, toBase64, type DataFrame } from './frame';

export interface SessionLimits {
  /** Most unacknowledged outgoing messages kept. */
  maxMessages: number;
  /** Most unacknowledged outgoing bytes kept (UTF-8 of the data frames in their text form). */
  maxBytes: number;
}

/** A payload as the session keeps it: a string, or bytes (base64 only on a text transport). */
export type SessionPayload = string | Uint8Array;

/** What `receive` decided about an incoming data frame. */
export const Receipt = {
  /** In order: hand it to the application. */
  Deliver: 0,
  /** Already delivered (a replay): drop it. */
  Duplicate: 1,
  /** A sequence number was skipped: drop it and resynchronise the transport. */
  Gap: 2,
} as const;
export type Receipt = (typeof Receipt)[keyof typeof Receipt];

/** UTF-8 length of a string, without allocating. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      // 2 bytes below U+0800, else 3; each half of a surrogate pair adds 1, so a pair is 4.
      n += c < 0x800 || (c >= 0xd800 && c < 0xe000) ? 1 : 2;
    }
  }
  return n;
}

interface Entry {
  s: number;
  d: SessionPayload;
  /** The frame's text form, encoded once (for bytes: the first time a text transport takes it). */
  line: string;
  /** UTF-8 length of the text form: what limits count, whichever transport carries it. */
  bytes: number;
}

export class Session {
  // Read-only to callers (plain fields and methods: ES5 class getters compile to defineProperty).
  /** Bytes (data frames in their text form) pushed but not yet acknowledged. */
  bufferedBytes = 0;
  /** Highest sequence number written to the current transport. */
  writtenSeq = 0;
  /** Cumulative: highest sequence number received in order; what we acknowledge. */
  receivedSeq = 0;
  /** Unacknowledged outgoing frames, ascending by sequence number. */
  private _out: Entry[] = [];
  /** Sequence number of the last message pushed. */
  private _lastSeq = 0;
  /** Highest acknowledgement told to the peer. */
  private _ackSent = 0;

  /** `base64` encodes bytes for text transports (the server passes Buffer's, faster than btoa). */
  constructor(
    readonly limits: SessionLimits,
    private readonly _b64: (bytes: Uint8Array) => string = toBase64,
  ) {}

  /** Messages pushed but not yet acknowledged. */
  bufferedCount(): number {
    return this._out.length;
  }

  /** Messages received but not yet acknowledged to the peer. */
  ackOwed(): number {
    return this.receivedSeq - this._ackSent;
  }

  /** Whether anything (data or an acknowledgement) is waiting to be written. */
  hasOutput(): boolean {
    return this._lastSeq > this.writtenSeq || this.receivedSeq > this._ackSent;
  }

  /**
   * Number an outgoing payload and keep it until acknowledged (bytes are kept as given: copy them
   * first if the caller may reuse its buffer). Returns the size of the frame's text form in bytes;
   * -1 (keeping nothing) when the buffer has no room for it now; -2 when that form is larger than
   * `maxFrame` or than the whole buffer.
   */
  push(d: SessionPayload, maxFrame = Infinity): number {
    const s = this._lastSeq + 1;
    const line = typeof d === 'string' ? encodeFrame({ t: 'd', s, d }) : '';
    const bytes = line ? utf8Length(line) : binaryLineLength(s, d.length);
    // -2: it could never fit, so "full, wait for drain" would wait forever.
    if (bytes > maxFrame || bytes > this.limits.maxBytes) return -2;
    if (this._out.length >= this.limits.maxMessages || this.bufferedBytes + bytes > this.limits.maxBytes) return -1;
    this._lastSeq++;
    this._out.push({ s, d, line, bytes });
    this.bufferedBytes += bytes;
    return bytes;
  }

  /**
   * The peer has everything up to `n`: release it. Returns how many messages were released,
   * or -1 when `n` acknowledges a message never sent (a protocol error).
   */
  acked(n: number): number {
    if (n > this._lastSeq) return -1;
    let k = 0;
    while (k < this._out.length && this._out[k].s <= n) this.bufferedBytes -= this._out[k++].bytes;
    if (k) this._out.splice(0, k);
    if (this.writtenSeq < n) this.writtenSeq = n;
    return k;
  }

  /**
   * The peer holds everything up to `peerAck` (a poll said so): release that and write the rest
   * again, since what was written after it was lost. Returns false when `peerAck` is impossible.
   */
  rewind(peerAck: number): boolean {
    if (this.acked(peerAck) < 0) return false;
    // A stale ack (a delayed poll) may be below what an earlier ack released: never rewind past it.
    this.writtenSeq = Math.max(peerAck, this._lastSeq - this._out.length);
    return true;
  }

  /**
   * A transport (re)attached and the peer says it holds everything up to `peerAck`:
   * release that and write the rest again. Returns false when `peerAck` is impossible.
   * `told` is the acknowledgement the peer learned from the handshake.
   */
  resume(peerAck: number, told = this.receivedSeq): boolean {
    if (!this.rewind(peerAck)) return false;
    // `told`: our own position as the handshake carried it. The server's open frame is exact; the
    // client's query may be stale by the time the open frame arrives, so the client passes 0 and
    // acknowledges again on the new transport.
    this._ackSent = told;
    return true;
  }

  /**
   * The next batch to write on the current transport: an ack frame when one is owed, then the
   * data frames not yet written, at most `maxBytes` in all (but always at least one frame).
   * Marks them written. Returns '' when there is nothing to write. With `binary` (a transport
   * that carries binary messages), a payload of bytes goes alone as one binary message
   * (`encodeBinary`): the text batch stops before it, and it is returned once nothing precedes it.
   */
  take(maxBytes?: number): string;
  take(maxBytes: number, binary: boolean): string | Uint8Array;
  take(maxBytes = Infinity, binary = false): string | Uint8Array {
    let batch = '';
    let bytes = 0;
    if (this.receivedSeq > this._ackSent) {
      batch = encodeFrame({ t: 'a', a: this.receivedSeq });
      bytes = batch.length;
      this._ackSent = this.receivedSeq;
    }
    for (let i = this._out.length - (this._lastSeq - this.writtenSeq); i < this._out.length; i++) {
      const e = this._out[i];
      if (typeof e.d !== 'string') {
        if (binary) {
          if (batch) break;
          this.writtenSeq = e.s;
          return encodeBinary(e.s, e.d);
        }
        if (!e.line) e.line = encodeFrame({ t: 'd', s: e.s, d: this._b64(e.d), b: 1 });
      }
      const add = (batch ? 1 : 0) + e.bytes;
      if (batch && bytes + add > maxBytes) break;
      batch += (batch ? '\n' : '') + e.line;
      bytes += add;
      this.writtenSeq = e.s;
    }
    return batch;
  }

  /** Decide what to do with an incoming data frame. */
  receive(f: DataFrame): Receipt {
    if (f.s <= this.receivedSeq) return Receipt.Duplicate;
    if (f.s !== this.receivedSeq + 1) return Receipt.Gap;
    this.receivedSeq = f.s;
    return Receipt.Deliver;
  }

  /** The unacknowledged outgoing payloads, oldest first (handed back when a session is lost). */
  unacked(): SessionPayload[] {
    return this._out.map((e) => e.d);
  }
}

/**
 * The codec: the one frame encoding every transport carries (PROTOCOL.md, "Frames").
 * A frame is a JSON object on one line; a batch is frames joined by "\n".
 * JSON.stringify never emits a raw newline, so "\n" is a safe separator.
 */
export const PROTOCOL_VERSION = 1;

/** Limits a server announces in its open frame. */
export interface Limits {
  /** Largest payload (`d`) of one data frame, in bytes of its encoded form. */
  payload: number;
  /** Largest batch a client may send in one request or message, in bytes. */
  batch: number;
  /** Most unacknowledged messages the server keeps for one session. */
  buffer: number;
}

/** Server → client, first frame on every transport: the session is open (or resumed). */
export interface OpenFrame {
  t: 'o';
  /** Protocol version. */
  v: number;
  /** Session id: 128-bit random, base64url. */
  sid: string;
  /** Resume token: 128-bit random, base64url; required to attach a transport to the session. */
  tok: string;
  /** Heartbeat interval, ms: the server pings this often. */
  hb: number;
  /** Heartbeat timeout, ms: a peer silent for hb + hto is dead. */
  hto: number;
  /** Highest sequence number the server has received from the client (0 on a new session). */
  ack: number;
  /** 1 when an existing session was resumed. */
  r?: 1;
  /** The server's limits. */
  lim: Limits;
}

/** Either direction: one application message. */
export interface DataFrame {
  t: 'd';
  /** Sequence number: 1 for the first message of the session in this direction, then +1. */
  s: number;
  /** Payload: the string, or the base64 of the bytes when `b` is 1. */
  d: string;
  /** 1 when `d` is base64-encoded binary. */
  b?: 1;
}

/** Either direction: cumulative acknowledgement of every data frame up to and including `a`. */
export interface AckFrame {
  t: 'a';
  a: number;
}

/** Server → client: heartbeat. The client answers with a pong. */
export interface PingFrame {
  t: 'p';
}

/** Client → server: heartbeat answer. */
export interface PongFrame {
  t: 'P';
}

/** Either direction: the session ends. */
export interface CloseFrame {
  t: 'c';
  /** Close code (PROTOCOL.md, "Close codes"). */
  c: number;
  /** Human-readable reason, at most 123 bytes. */
  r: string;
  /** Server → client, on 4429: retry after this many ms. */
  ra?: number;
}

export type Frame = OpenFrame | DataFrame | AckFrame | PingFrame | PongFrame | CloseFrame;

/** A frame that could not be decoded; carries the close code it causes. */
export class FrameError extends Error {
  readonly code = 4400;
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeFrame(frame: Frame): string {
  return JSON.stringify(frame);
}

export function encodeBatch(frames: readonly Frame[]): string {
  let out = '';
  for (let i = 0; i < frames.length; i++) out += (i ? '\n' : '') + JSON.stringify(frames[i]);
  return out;
}

/** Base64 as a binary data frame carries it (padded, no line breaks). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function isSeq(n: unknown): n is number {
  return typeof n === 'number' && n >= 0 && n <= 9007199254740991 && Math.floor(n) === n;
}

/** Decode and validate one frame. Throws FrameError on anything malformed. */
export function decodeFrame(line: string): Frame {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line);
  } catch {
    throw new FrameError('frame is not JSON');
  }
  const t = o !== null && typeof o === 'object' ? o.t : undefined;
  const l = (t === 'o' && o.lim) as Record<string, unknown>;
  const ok =
    t === 'd'
      ? isSeq(o.s) && o.s > 0 && typeof o.d === 'string' && (o.b === undefined || (o.b === 1 && o.d.length % 4 === 0 && BASE64.test(o.d)))
      : t === 'a'
        ? isSeq(o.a)
        : t === 'c'
          ? isSeq(o.c) && o.c <= 4999 && typeof o.r === 'string' && (o.ra === undefined || isSeq(o.ra))
          : t === 'o'
            ? isSeq(o.v) && typeof o.sid === 'string' && !!o.sid && typeof o.tok === 'string' && isSeq(o.hb) && o.hb > 0 && isSeq(o.hto) && isSeq(o.ack) && !!l && isSeq(l.payload) && isSeq(l.batch) && isSeq(l.buffer)
            : t === 'p' || t === 'P';
  if (!ok) throw new FrameError(typeof t === 'string' && 'dacop'.indexOf(t) >= 0 ? 'malformed frame of type ' + t : 'unknown frame type');
  return o as unknown as Frame;
}

/** Decode a batch. An empty batch (e.g. an empty poll response) decodes to no frames. */
export function decodeBatch(text: string): Frame[] {
  const out: Frame[] = [];
  if (!text) return out;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) if (lines[i]) out.push(decodeFrame(lines[i]));
  return out;
}

/**
 * A data frame whose payload is bytes, as one binary WebSocket message (PROTOCOL.md, "Binary
 * messages"): the frame's JSON without `d` (`{"t":"d","s":N,"b":1}`), one LF byte, the bytes.
 */
export function encodeBinary(s: number, bytes: Uint8Array): Uint8Array {
  const head = '{"t":"d","s":' + s + ',"b":1}\n';
  const out = new Uint8Array(head.length + bytes.length);
  for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
  out.set(bytes, head.length);
  return out;
}

/** Decode a binary message: its sequence number and its payload (a view into `m`). Throws FrameError. */
export function decodeBinary(m: Uint8Array): [number, Uint8Array] {
  let head = '';
  let i = 0;
  for (; i < m.length && i <= 64 && m[i] !== 10; i++) head += String.fromCharCode(m[i]);
  // The header is a data frame without `d`: given an empty one, the data frame rules check it.
  const f = m[i] === 10 && head.indexOf('"d":') < 0 && decodeFrame(head.slice(0, -1) + ',"d":""}');
  if (!f || f.t !== 'd' || !f.b) throw new FrameError('malformed binary frame');
  return [f.s, m.subarray(i + 1)];
}

declare function btoa(s: string): string;

/** Base64 of bytes (chunked, so String.fromCharCode's argument list stays short). */
export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  return btoa(s);
}

/**
 * Length of the text form (`{"t":"d","s":N,"d":"<base64>","b":1}`) of data frame `s` carrying
 * `n` bytes, without encoding it: limits count this form on every transport, so a message that
 * fits on one fits on all.
 */
export function binaryLineLength(s: number, n: number): number {
  return 27 + String(s).length + 4 * Math.ceil(n / 3);
}

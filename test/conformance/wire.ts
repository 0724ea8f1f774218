/**
 * Wire helpers for the conformance suite: bounded HTTP requests and streams (node:http), a
 * WebSocket client on `ws` that records every message, the server frames of PROTOCOL.md parsed and
 * validated, and the body shapes of each HTTP transport. Self-contained on purpose: nothing here
 * knows the reference server, so the suite runs against a server written in any language.
 */
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isDeepStrictEqual } from 'node:util';
import WebSocket from 'ws';
import type { AckFrame, CloseFrame, DataFrame, Limits, OpenFrame, PingFrame } from '../../src/frame';

// ---- failures --------------------------------------------------------------------------------------

/** A check failed. `section` names the PROTOCOL.md section the expectation comes from. */
export class CheckFailed extends Error {
  constructor(
    message: string,
    readonly section?: string,
  ) {
    super(section ? message + ' (PROTOCOL.md "' + section + '")' : message);
    this.name = 'CheckFailed';
  }
}

/** A check cannot run against this target (a transport it does not offer, an option not given). */
export class CheckSkipped extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckSkipped';
  }
}

/** A short, printable rendering of a value for failure messages. */
export function show(v: unknown): string {
  let s: string;
  if (Buffer.isBuffer(v)) s = '<' + v.length + ' bytes: ' + v.subarray(0, 24).toString('hex') + (v.length > 24 ? '…' : '') + '>';
  else if (typeof v === 'string') s = JSON.stringify(v);
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > 300 ? s.slice(0, 300) + '… (' + s.length + ' chars)' : s;
}

export function fail(what: string, expected: string, got: unknown, section?: string): never {
  throw new CheckFailed(what + ': expected ' + expected + ', got ' + show(got), section);
}

export function ensure(cond: boolean, message: string, section?: string): asserts cond {
  if (!cond) throw new CheckFailed(message, section);
}

export function equal<T>(what: string, got: T, expected: T, section?: string): void {
  if (!isDeepStrictEqual(got, expected)) fail(what, show(expected), got, section);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolve when `cond()` holds (checked every 5 ms); fail after `ms` with `what` in the message. */
export async function waitUntil(cond: () => boolean, ms: number, what: string, section?: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new CheckFailed('timed out after ' + ms + ' ms waiting for ' + what, section);
    await sleep(5);
  }
}

// ---- cleanup ---------------------------------------------------------------------------------------

/** What a check opened, closed at its end (newest first, each step bounded, errors ignored). */
export class Scope {
  private readonly steps: Array<() => unknown> = [];

  defer(step: () => unknown): void {
    this.steps.push(step);
  }

  async close(): Promise<void> {
    while (this.steps.length) {
      const step = this.steps.pop()!;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([Promise.resolve().then(step), new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
      } catch {
        /* best effort */
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

// ---- HTTP ------------------------------------------------------------------------------------------

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Milliseconds from sending the request to the end of the response. */
  ms: number;
}

export interface HttpInit {
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs: number;
}

function open(method: string, url: string, headers: Record<string, string> | undefined): ClientRequest {
  const u = new URL(url);
  const make = u.protocol === 'https:' ? httpsRequest : httpRequest;
  // No agent: one connection per request, so nothing is pooled between checks.
  return make(u, { method, agent: false, headers });
}

function label(method: string, url: string): string {
  const u = new URL(url);
  return method + ' ' + u.pathname + u.search;
}

/** One HTTP request on its own connection; rejects when no complete answer came within `timeoutMs`. */
export function httpCall(scope: Scope, method: string, url: string, init: HttpInit): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    const started = Date.now();
    let done = false;
    let answered = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      f();
    };
    const req = open(method, url, init.headers);
    scope.defer(() => req.destroy());
    const timer = setTimeout(() => {
      finish(() => reject(new CheckFailed(label(method, url) + ': no complete answer within ' + init.timeoutMs + ' ms')));
      req.destroy();
    }, init.timeoutMs);
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        finish(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), ms: Date.now() - started })),
      );
      res.on('error', (e) => finish(() => reject(new CheckFailed(label(method, url) + ': response broken: ' + e.message))));
      res.on('close', () => {
        if (!res.complete) finish(() => reject(new CheckFailed(label(method, url) + ': connection closed before the response ended')));
      });
    });
    req.on('error', (e) => {
      // A server that answered early (e.g. 413) may reset the connection while the body is still
      // being written: the response, already under way, decides.
      if (!answered) finish(() => reject(new CheckFailed(label(method, url) + ': ' + e.message)));
    });
    req.end(init.body);
  });
}

/**
 * A request whose body the caller writes (and may never end), on its own connection; resolves with
 * the status of the answer, or 0 when the connection closed without one.
 */
export function httpUnfinished(scope: Scope, method: string, url: string, headers: Record<string, string>): { req: ClientRequest; answered: Promise<number> } {
  const req = open(method, url, headers);
  scope.defer(() => req.destroy());
  const answered = new Promise<number>((resolve) => {
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('close', () => resolve(0));
  });
  return { req, answered };
}

/** A GET whose body is read as it arrives (streams, held polls). */
export class HttpStream {
  status = 0;
  headers: IncomingHttpHeaders = {};
  /** The body so far, decoded as UTF-8. */
  text = '';
  /** The body so far, as bytes. */
  private chunks: Buffer[] = [];
  /** The response ended normally. */
  ended = false;
  /** The response or connection broke. */
  broken = false;
  /** When the response ended or broke (Date.now()). */
  endedAt = 0;
  readonly startedAt = Date.now();
  private readonly req: ClientRequest;

  constructor(
    scope: Scope,
    readonly url: string,
    headers: Record<string, string> | undefined,
  ) {
    this.req = open('GET', url, headers);
    scope.defer(() => this.abort());
    this.req.on('response', (res: IncomingMessage) => {
      this.status = res.statusCode ?? 0;
      this.headers = res.headers;
      const decoder = new TextDecoder('utf-8');
      res.on('data', (c: Buffer) => {
        this.chunks.push(c);
        this.text += decoder.decode(c, { stream: true });
      });
      res.on('end', () => {
        this.text += decoder.decode();
        this.ended = true;
        this.endedAt ||= Date.now();
      });
      res.on('error', () => {
        this.broken = true;
        this.endedAt ||= Date.now();
      });
      res.on('close', () => {
        if (!res.complete) this.broken = true;
        this.endedAt ||= Date.now();
      });
    });
    this.req.on('error', () => {
      this.broken = true;
      this.endedAt ||= Date.now();
    });
    this.req.end();
  }

  get done(): boolean {
    return this.ended || this.broken;
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Wait for the status line and headers. */
  async responded(ms: number): Promise<void> {
    await waitUntil(() => this.status !== 0 || this.broken, ms, 'the response to GET ' + new URL(this.url).pathname);
    if (!this.status) throw new CheckFailed(label('GET', this.url) + ': the connection failed before a response');
  }

  abort(): void {
    this.req.destroy();
  }
}

// ---- WebSocket -------------------------------------------------------------------------------------

export interface WsMessage {
  binary: boolean;
  data: Buffer;
  at: number;
}

export interface WsClose {
  code: number;
  reason: string;
  at: number;
}

/** A `ws` client that records every message; answers pings with pongs unless told not to. */
export class WsClient {
  readonly ws: WebSocket;
  readonly messages: WsMessage[] = [];
  /** 101 once upgraded; the status of a refused upgrade otherwise. */
  status = 0;
  openedAt = 0;
  closed: WsClose | null = null;
  error: string | null = null;
  autoPong: boolean;

  constructor(scope: Scope, url: string, opts: { origin?: string; autoPong?: boolean; timeoutMs: number }) {
    this.autoPong = opts.autoPong !== false;
    this.ws = new WebSocket(url.replace(/^http/, 'ws'), {
      origin: opts.origin,
      perMessageDeflate: false,
      handshakeTimeout: opts.timeoutMs,
      followRedirects: false,
    });
    scope.defer(() => this.ws.terminate());
    this.ws.on('upgrade', (res) => (this.status = res.statusCode ?? 0));
    this.ws.on('unexpected-response', (req, res) => {
      this.status = res.statusCode ?? 0;
      this.closed = { code: 1006, reason: 'upgrade refused with HTTP ' + this.status, at: Date.now() };
      res.resume();
      req.destroy();
    });
    this.ws.on('open', () => (this.openedAt = Date.now()));
    this.ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.messages.push({ binary: isBinary, data: buf, at: Date.now() });
      if (this.autoPong && !isBinary && this.ws.readyState === WebSocket.OPEN) {
        const text = buf.toString('utf8');
        if (text.split('\n').some((l) => l === '{"t":"p"}' || /^\s*\{\s*"t"\s*:\s*"p"\s*\}\s*$/.test(l))) this.ws.send('{"t":"P"}');
      }
    });
    this.ws.on('error', (e) => (this.error = e.message));
    this.ws.on('close', (code, reason) => {
      if (!this.closed) this.closed = { code, reason: reason.toString('utf8'), at: Date.now() };
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  async waitOpen(ms: number, what = 'the WebSocket upgrade'): Promise<void> {
    await waitUntil(() => this.openedAt > 0 || this.closed !== null, ms, what);
    if (!this.openedAt) throw new CheckFailed(what + ' failed: ' + (this.status ? 'HTTP ' + this.status : this.error || 'connection closed'));
  }

  async waitClose(ms: number, what = 'the WebSocket to close'): Promise<WsClose> {
    await waitUntil(() => this.closed !== null, ms, what);
    return this.closed!;
  }

  /** `asText`: bytes sent as a text message (e.g. to send one that is not UTF-8). */
  send(data: string | Buffer, asText = false): void {
    if (this.ws.readyState !== WebSocket.OPEN) throw new CheckFailed('cannot send: the WebSocket is no longer open (closed ' + show(this.closed) + ')');
    this.ws.send(data, { binary: typeof data !== 'string' && !asText });
  }

  /** Every frame received so far, in order, each with the index of its message. */
  frames(section = 'Frames'): Array<{ frame: ServerFrame; msg: number; binary: boolean }> {
    const out: Array<{ frame: ServerFrame; msg: number; binary: boolean }> = [];
    this.messages.forEach((m, i) => {
      if (m.binary) out.push({ frame: parseBinaryMessage(m.data), msg: i, binary: true });
      else for (const f of parseBatch(m.data.toString('utf8'), section)) out.push({ frame: f, msg: i, binary: false });
    });
    return out;
  }

  terminate(): void {
    this.ws.terminate();
  }
}

// ---- frames ----------------------------------------------------------------------------------------

// The frame types are PROTOCOL.md's TypeScript interfaces (src/frame.ts). Types only, erased at
// run time: every check below validates what the server sent on its own.
export type { Limits, OpenFrame, DataFrame, AckFrame, PingFrame, CloseFrame };
/** Every frame a server may send (PROTOCOL.md, "Frames"). */
export type ServerFrame = OpenFrame | DataFrame | AckFrame | PingFrame | CloseFrame;

function isSeq(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Parse and validate one line a server sent. */
export function parseServerFrame(line: string, section = 'Frames'): ServerFrame {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return fail('a server frame', 'one JSON object per line', line, section);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return fail('a server frame', 'a JSON object', line, 'Frames');
  const f = o as Record<string, unknown>;
  const bad = (why: string): never => fail('a server frame (' + why + ')', 'a valid frame', line, 'Frames');
  switch (f.t) {
    case 'o': {
      const l = f.lim as Record<string, unknown> | undefined;
      if (!isSeq(f.v) || typeof f.sid !== 'string' || typeof f.tok !== 'string' || !isSeq(f.hb) || !isSeq(f.hto) || !isSeq(f.ack)) bad('open frame fields');
      if (f.r !== undefined && f.r !== 1) bad('open frame r must be 1 when present');
      if (!l || typeof l !== 'object' || !isSeq(l.payload) || !isSeq(l.batch) || !isSeq(l.buffer)) bad('open frame lim');
      return f as unknown as OpenFrame;
    }
    case 'd':
      if (!isSeq(f.s) || f.s < 1 || typeof f.d !== 'string') bad('data frame needs s >= 1 and a string d');
      if (f.b !== undefined && f.b !== 1) bad('data frame b must be 1 when present');
      if (f.b === 1 && !BASE64.test(f.d as string)) bad('a binary data frame carries base64 in d');
      return f as unknown as DataFrame;
    case 'a':
      if (!isSeq(f.a)) bad('ack frame needs a non-negative integer a');
      return f as unknown as AckFrame;
    case 'p':
      return { t: 'p' };
    case 'c':
      if (!isSeq(f.c) || typeof f.r !== 'string') bad('close frame needs c and r');
      if (Buffer.byteLength(f.r as string) > 123) bad('close reason over 123 bytes');
      if (f.ra !== undefined && !isSeq(f.ra)) bad('close frame ra must be a number of ms');
      return f as unknown as CloseFrame;
    case 'P':
      return bad('a pong travels client to server only');
    default:
      return bad('unknown frame type');
  }
}

/** Parse a batch: frames joined by LF, empty lines ignored, an empty batch carries no frames. */
export function parseBatch(text: string, section = 'Batches'): ServerFrame[] {
  const out: ServerFrame[] = [];
  for (const line of text.split('\n')) if (line.length) out.push(parseServerFrame(line, section));
  return out;
}

/**
 * A binary WebSocket message from the server (PROTOCOL.md, "Binary messages"): a data frame's JSON
 * without d, LF, the bytes. Returned as the equivalent text frame (base64 in d, b: 1).
 */
export function parseBinaryMessage(m: Buffer): DataFrame {
  const lf = m.subarray(0, 65).indexOf(10);
  if (lf < 0) fail('a binary message from the server', 'a header of at most 64 bytes then LF', m, 'Binary messages');
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(m.subarray(0, lf).toString('utf8')) as Record<string, unknown>;
  } catch {
    return fail('a binary message header', 'JSON', m.subarray(0, lf).toString('utf8'), 'Binary messages');
  }
  if (h === null || typeof h !== 'object' || h.t !== 'd' || !isSeq(h.s) || h.s < 1 || h.b !== 1 || 'd' in h) {
    fail('a binary message header', '{"t":"d","s":N,"b":1} without d', h, 'Binary messages');
  }
  return { t: 'd', s: h.s as number, d: m.subarray(lf + 1).toString('base64'), b: 1 };
}

/** A client data frame as one binary WebSocket message. */
export function binaryMessage(s: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from('{"t":"d","s":' + s + ',"b":1}\n'), bytes]);
}

/** The payload of a data frame: bytes when b is 1, else the string. */
export function payloadOf(f: DataFrame): string | Buffer {
  return f.b === 1 ? Buffer.from(f.d, 'base64') : f.d;
}

export function samePayload(a: string | Buffer, b: string | Buffer): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.equals(b);
}

/** The close frame of a refusal body: exactly one close frame. */
export function refusalFrame(body: string, what: string, section = 'Close'): CloseFrame {
  const frames = parseBatch(body, section);
  if (frames.length !== 1 || frames[0].t !== 'c') fail(what + ': the body of a refusal', 'one close frame', body, section);
  return frames[0] as CloseFrame;
}

/** Expect a refusal: this HTTP status (one of) and a body that is one close frame with this code. */
export function expectRefusal(r: HttpResponse, statuses: number | number[], code: number, what: string, section = 'HTTP status codes'): CloseFrame {
  const ok = Array.isArray(statuses) ? statuses : [statuses];
  if (ok.indexOf(r.status) < 0) fail(what, 'HTTP ' + ok.join(' or ') + ' with close frame ' + code, { status: r.status, body: r.body }, section);
  const f = refusalFrame(r.body, what, section);
  if (f.c !== code) fail(what + ': close code in the refusal body', String(code), f, section);
  return f;
}

/** The media type of a Content-Type header, lower case, without parameters. */
export function mediaType(h: string | string[] | undefined): string {
  const v = Array.isArray(h) ? h[0] : h;
  return (v || '').split(';')[0].trim().toLowerCase();
}

// ---- HTTP transport bodies -------------------------------------------------------------------------

export const PADDING = 2048;
export const STREAMS = ['xhr-streaming', 'sse', 'iframe-streaming'] as const;
export const HTTP_TRANSPORTS = ['long-polling', 'short-polling', 'xhr-streaming', 'sse', 'iframe-streaming'] as const;
export type HttpTransport = (typeof HTTP_TRANSPORTS)[number];

export const CONTENT_TYPE: Record<HttpTransport, string> = {
  'long-polling': 'text/plain',
  'short-polling': 'text/plain',
  'xhr-streaming': 'text/plain',
  sse: 'text/event-stream',
  'iframe-streaming': 'text/html',
};

/** One batch as a streaming body carried it. */
export interface BodyBatch {
  text: string;
  /** sse: the event's id field, when it had one. */
  id?: string;
}

/** What a GET body carried so far. */
export interface ParsedBody {
  batches: BodyBatch[];
  /** The stream's end marker (sse `event: end`, iframe `p(null)`) was seen. */
  endMarker: boolean;
  /** How many batches came before the first end marker; -1 while none was seen. */
  endAfter: number;
  /** iframe-streaming: the document before the first `<script>p(`. */
  prelude: string;
}

const SECTION = 'Transports';

/**
 * Parse what a GET response of `transport` carried so far. Only complete units are returned (a
 * line ending in LF, an sse event ending in a blank line, a whole `<script>p(...)</script>`);
 * anything that cannot become a valid body is a failure.
 */
export function parseBody(transport: HttpTransport, text: string, complete: boolean): ParsedBody {
  const out: ParsedBody = { batches: [], endMarker: false, endAfter: -1, prelude: '' };
  if (transport === 'long-polling' || transport === 'short-polling') {
    if (complete) out.batches.push({ text });
    return out;
  }
  if (transport === 'xhr-streaming') {
    const pre = ' '.repeat(PADDING) + '\n';
    if (text.length < pre.length) {
      if (pre.slice(0, text.length) !== text) fail('the xhr-streaming prelude', '2,048 spaces and LF', text, SECTION);
      return out;
    }
    if (text.slice(0, pre.length) !== pre) fail('the xhr-streaming prelude', '2,048 spaces and LF', text.slice(0, pre.length + 40), SECTION);
    const rest = text.slice(pre.length);
    const lines = rest.split('\n');
    lines.pop(); // an incomplete (or empty) tail
    for (const l of lines) if (l.length) out.batches.push({ text: l });
    return out;
  }
  if (transport === 'sse') {
    const lines = text.split(/\r\n|\r|\n/);
    // The last element is an incomplete line (or '' after a final line break); a lone CR at the
    // very end may still be followed by LF.
    lines.pop();
    if (!lines.length) return out;
    if (!/^: {2048}$/.test(lines[0])) fail('the sse prelude', 'a comment line of 2,048 spaces (":" then 2,048 spaces)', lines[0], SECTION);
    let data: string[] = [];
    let id: string | undefined;
    let event = '';
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i];
      if (l === '') {
        if (event === 'end') {
          if (!out.endMarker) out.endAfter = out.batches.length;
          out.endMarker = true;
        }
        else if (event !== '' && event !== 'message') fail('an sse event type', '"end" or none', event, SECTION);
        else if (data.length) out.batches.push({ text: data.join('\n'), id });
        data = [];
        id = undefined;
        event = '';
        continue;
      }
      if (l[0] === ':') continue;
      const c = l.indexOf(':');
      const field = c < 0 ? l : l.slice(0, c);
      let value = c < 0 ? '' : l.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field !== 'retry') fail('an sse field', 'data, id, event or retry', l, SECTION);
    }
    return out;
  }
  // iframe-streaming
  const first = text.indexOf('<script>p(');
  if (first < 0) {
    out.prelude = text;
    return out;
  }
  out.prelude = text.slice(0, first);
  const unit = /<script>p\(("(?:[^"\\\n]|\\.)*"|null)\)<\/script>/y;
  let i = first;
  while (i < text.length) {
    const ws = /[ \t\r\n]*/y;
    ws.lastIndex = i;
    ws.exec(text);
    i = ws.lastIndex;
    if (i >= text.length) break;
    unit.lastIndex = i;
    const m = unit.exec(text);
    if (!m) {
      const tail = text.slice(i);
      // A unit still arriving, or the end of the document after p(null); anything else is invalid.
      const arriving = !complete && (tail.startsWith('<script>p(') ? !tail.includes('</script>') : '<script>p('.startsWith(tail));
      const closing = out.endMarker && (/^<\/body>\s*<\/html>\s*$/i.test(tail) || (!complete && '</body></html>'.startsWith(tail)));
      if (arriving || closing) break;
      fail('the iframe-streaming document after its prelude', 'only <script>p("<batch>")</script> units (and </body></html> after p(null))', tail.slice(0, 200), SECTION);
    }
    const lit = m[1];
    if (lit === 'null') {
      if (!out.endMarker) out.endAfter = out.batches.length;
      out.endMarker = true;
    }
    else {
      const raw = /[<>&\u2028\u2029]/.exec(lit);
      if (raw) fail('an iframe-streaming payload literal', '<, >, &, U+2028 and U+2029 escaped as \\uXXXX', 'a raw ' + JSON.stringify(raw[0]) + ' in …' + lit.slice(Math.max(0, raw.index - 40), raw.index + 40) + '…', SECTION);
      let s: unknown;
      try {
        s = JSON.parse(lit);
      } catch {
        return fail('an iframe-streaming payload literal', 'a JSON string literal', lit, SECTION);
      }
      out.batches.push({ text: s as string });
    }
    i = unit.lastIndex;
  }
  return out;
}

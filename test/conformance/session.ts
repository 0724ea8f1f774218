/**
 * Protocol-level helpers for the conformance checks: the target, a per-check context that closes
 * whatever the check opened, and client sessions over HTTP transports and WebSocket that keep
 * sequence numbers and record (and sanity-check) what the server sends.
 */
import {
  CheckFailed,
  CheckSkipped,
  CONTENT_TYPE,
  ensure,
  expectRefusal,
  fail,
  httpCall,
  HttpStream,
  mediaType,
  parseBatch,
  parseBody,
  payloadOf,
  samePayload,
  Scope,
  sleep,
  WsClient,
  type CloseFrame,
  type DataFrame,
  type HttpResponse,
  type HttpTransport,
  type OpenFrame,
  type ParsedBody,
  type ServerFrame,
} from './wire';

/** The server under test. */
export interface Target {
  /** The endpoint, e.g. http://127.0.0.1:8080/rt. */
  url: string;
  /** An Origin the server accepts (sent on every request when given; iframe-streaming's `po`). */
  origin?: string;
  /** An Origin the server must refuse; the Origin checks are skipped without it. */
  foreignOrigin?: string;
  /** Bound of a request or wait that does not depend on the server's heartbeat, ms. @default 5000 */
  timeoutMs?: number;
}

export type Payload = string | Buffer;

/** The stream id (`i`) of every iframe-streaming GET the suite makes. */
export const IFRAME_ID = 'conf_1';

/** Per-check context: the target, and a scope that closes every request, socket and session. */
export class Io {
  readonly scope = new Scope();
  readonly base: string;
  constructor(readonly target: Target) {
    this.base = target.url.replace(/\/+$/, '');
  }

  get ms(): number {
    return this.target.timeoutMs ?? 5000;
  }

  url(transport: string, query: string): string {
    return this.base + '/' + transport + (query ? '?' + query : '');
  }

  /** The parent page's origin for iframe-streaming: the accepted origin, else the endpoint's own. */
  get pageOrigin(): string {
    return this.target.origin ?? new URL(this.target.url).origin;
  }

  /** Extra query a transport's GETs need (iframe-streaming: the stream id and the page origin). */
  getExtra(transport: string, po = this.pageOrigin): string {
    return transport === 'iframe-streaming' ? '&i=' + IFRAME_ID + '&po=' + encodeURIComponent(po) : '';
  }

  /** Headers with the accepted Origin (or `origin`; null for none). */
  headers(origin: string | null | undefined, extra: Record<string, string> = {}): Record<string, string> {
    const o = origin === undefined ? this.target.origin : origin;
    return o ? { Origin: o, ...extra } : { ...extra };
  }

  http(method: string, url: string, init: { body?: string | Buffer; origin?: string | null; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpResponse> {
    const headers = this.headers(init.origin, init.headers);
    if (init.body !== undefined && headers['Content-Type'] === undefined) headers['Content-Type'] = 'text/plain;charset=UTF-8';
    const p = httpCall(this.scope, method, url, { headers, body: init.body, timeoutMs: init.timeoutMs ?? this.ms });
    // A request a failing check leaves behind (a held poll) must not become an unhandled rejection.
    p.catch(() => undefined);
    return p;
  }

  stream(url: string, init: { origin?: string | null; headers?: Record<string, string> } = {}): HttpStream {
    return new HttpStream(this.scope, url, this.headers(init.origin, init.headers));
  }

  ws(query: string, init: { origin?: string | null; autoPong?: boolean; transport?: string } = {}): WsClient {
    const o = init.origin === undefined ? this.target.origin : init.origin;
    return new WsClient(this.scope, this.url(init.transport ?? 'websocket', query), { origin: o ?? undefined, autoPong: init.autoPong, timeoutMs: this.ms });
  }
}

/** Run `fn` with a fresh context; everything it opened is closed afterwards, pass or fail. */
export async function withIo<T>(target: Target, fn: (io: Io) => Promise<T>): Promise<T> {
  const io = new Io(target);
  try {
    return await fn(io);
  } finally {
    await io.scope.close();
  }
}

/**
 * A handshake answered with this status means the server does not offer the transport: 501 (with
 * close frame 4501) is what PROTOCOL.md "Close" specifies; 404 is still taken from servers that
 * predate it.
 */
export function notOffered(status: number): boolean {
  return status === 501 || status === 404;
}

// ---- open frames ---------------------------------------------------------------------------------

/** 128 bits as base64url without padding: 22 characters, the last one carrying 2 bits. */
export function isId128(s: string): boolean {
  if (!/^[A-Za-z0-9_-]{22}$/.test(s)) return false;
  const b = Buffer.from(s, 'base64url');
  return b.length === 16 && b.toString('base64url') === s;
}

/** Check every field of an open frame (PROTOCOL.md, "Frames" and "Handshake"). */
export function checkOpen(f: ServerFrame | undefined, what: string, expect: { resumed: boolean; ack?: number; sid?: string }): OpenFrame {
  if (!f || f.t !== 'o') return fail(what + ': the first frame', 'an open frame {"t":"o",...}', f, 'Handshake');
  const section = 'Frames';
  if (f.v !== 1) fail(what + ': open frame v', '1', f.v, section);
  if (!isId128(f.sid)) fail(what + ': open frame sid', '128 bits as base64url (22 chars)', f.sid, section);
  if (!isId128(f.tok)) fail(what + ': open frame tok', '128 bits as base64url (22 chars)', f.tok, section);
  if (!(f.hb > 0)) fail(what + ': open frame hb', 'a positive number of ms', f.hb, section);
  if (!(f.hto > 0)) fail(what + ': open frame hto', 'a positive number of ms', f.hto, section);
  for (const k of ['payload', 'batch', 'buffer'] as const) if (!(f.lim[k] > 0)) fail(what + ': open frame lim.' + k, 'a positive integer', f.lim[k], section);
  if (expect.resumed) {
    if (f.r !== 1) fail(what + ': open frame r on a resume', '1', f.r, 'Resume');
  } else {
    if (f.r !== undefined) fail(what + ': open frame r on a new session', 'absent', f.r, 'Handshake');
    if (f.ack !== 0) fail(what + ': open frame ack on a new session', '0', f.ack, 'Handshake');
  }
  if (expect.ack !== undefined && f.ack !== expect.ack) fail(what + ': open frame ack (the server\'s received)', String(expect.ack), f.ack, 'Resume');
  if (expect.sid !== undefined && f.sid !== expect.sid) fail(what + ': open frame sid on a resume', expect.sid, f.sid, 'Resume');
  return f;
}

// ---- sessions ----------------------------------------------------------------------------------

/** What both session kinds record about the server's frames. */
export abstract class ClientSession {
  sid = '';
  tok = '';
  open!: OpenFrame;
  /** The client's last data sequence number. */
  outSeq = 0;
  /** Highest server data sequence number received in order. */
  received = 0;
  /** Every server data frame, in arrival order (replays included). */
  readonly data: DataFrame[] = [];
  /** Every frame, in arrival order. */
  readonly log: ServerFrame[] = [];
  /** Data frames that arrived with s <= received (replays). */
  replays = 0;
  closeFrame: CloseFrame | null = null;
  protected closed = false;
  /** Highest ack seen before each data frame was received, by index in `data`. */
  readonly ackBefore: number[] = [];
  private maxAck = 0;

  constructor(protected readonly io: Io) {}

  get liveness(): number {
    return this.open.hb + this.open.hto;
  }

  /** Record frames as they arrive. `released` is the ack the request carrying them told the server. */
  protected absorb(frames: ServerFrame[], released: number, where: string): void {
    for (const f of frames) {
      this.log.push(f);
      if (f.t === 'a') {
        if (f.a > this.outSeq) fail(where + ': an ack from the server', 'at most ' + this.outSeq + ' (the highest s sent)', f, 'Sessions, sequence numbers and acknowledgements');
        if (f.a < this.maxAck) fail(where + ': acks are cumulative', 'an ack >= ' + this.maxAck, f, 'Sessions, sequence numbers and acknowledgements');
        this.maxAck = f.a;
      } else if (f.t === 'd') {
        if (f.s <= released) fail(where + ': a data frame the client had acknowledged (ack=' + released + ')', 'never written again', f, 'Resume');
        if (f.s > this.received + 1) fail(where + ': server data sequence', 's=' + (this.received + 1) + ' next (no gap)', f, 'Sessions, sequence numbers and acknowledgements');
        this.data.push(f);
        this.ackBefore.push(this.maxAck);
        if (f.s === this.received + 1) this.received = f.s;
        else this.replays++;
      } else if (f.t === 'c') {
        this.closeFrame = f;
      } else if (f.t === 'o') {
        fail(where + ': an open frame', 'only as the first frame of a handshake response', f, 'Frames');
      }
    }
  }

  /** The open frame's ack acknowledges like an ack frame. */
  protected opened(open: OpenFrame): void {
    this.open = open;
    this.maxAck = open.ack;
  }

  get highestAck(): number {
    return this.maxAck;
  }

  /** The payload of server data frame `s`, as first received. */
  payloadAt(s: number): Payload | undefined {
    for (const f of this.data) if (f.s === s) return payloadOf(f);
    return undefined;
  }

  /** Next client data frames, as lines (binary payloads as base64 text frames). */
  dataLines(payloads: Payload[]): string[] {
    return payloads.map((p) => JSON.stringify(typeof p === 'string' ? { t: 'd', s: ++this.outSeq, d: p } : { t: 'd', s: ++this.outSeq, d: p.toString('base64'), b: 1 }));
  }

  /**
   * The echo server gives back message k as its data frame k. Check that the first `n` server data
   * frames are `payloads`, in order, each once, with an ack >= k sent before echo k (it leads the
   * batch when not sent earlier).
   */
  expectEchoes(payloads: Payload[], where: string, from = 1): void {
    for (let i = 0; i < payloads.length; i++) {
      const s = from + i;
      const p = this.payloadAt(s);
      if (p === undefined || !samePayload(p, payloads[i])) fail(where + ': echo s=' + s, JSON.stringify(typeof payloads[i] === 'string' ? payloads[i] : '<bytes ' + payloads[i].toString('hex') + '>'), p === undefined ? 'nothing' : p, 'Sessions, sequence numbers and acknowledgements');
    }
    if (this.replays) fail(where + ': server data frames', 'each sequence number once', this.data.map((f) => f.s), 'Sessions, sequence numbers and acknowledgements');
    for (let i = 0; i < this.data.length; i++) {
      const f = this.data[i];
      if (f.s >= from && f.s < from + payloads.length && this.ackBefore[i] < f.s) {
        fail(where + ': the ack for client message ' + f.s + ' before its echo', 'an ack >= ' + f.s + ' written before (or leading the batch of) echo s=' + f.s, 'highest ack so far ' + this.ackBefore[i], 'Sessions, sequence numbers and acknowledgements');
      }
    }
  }
}

/** A session over an HTTP transport: POSTs, polls (polling transports) or a stream (streaming). */
export class HttpSession extends ClientSession {
  stream: HttpStream | null = null;
  private streamAck = 0;
  private streamUnits = 0;
  private parsedAt = -1;
  private parsed: ParsedBody | null = null;

  constructor(
    io: Io,
    readonly transport: HttpTransport,
  ) {
    super(io);
  }

  get query(): string {
    return 'sid=' + encodeURIComponent(this.sid) + '&tok=' + encodeURIComponent(this.tok);
  }

  /** URL of this session's POSTs. */
  get postUrl(): string {
    return this.io.url(this.transport, this.query);
  }

  /** URL of a continuing GET with `ack`. */
  getUrl(ack: number | null): string {
    return this.io.url(this.transport, this.query + (ack === null ? '' : '&ack=' + ack) + this.io.getExtra(this.transport));
  }

  /** A request held by the server is answered within hb + hto (the poll timeout is below it). */
  get pollMs(): number {
    return this.liveness + this.io.ms;
  }

  /** Open a session (or resume one with `resume`) with a handshake GET. */
  static async handshake(io: Io, transport: HttpTransport, resume?: { sid: string; tok: string; ack: number; outSeq: number }): Promise<HttpSession> {
    const s = new HttpSession(io, transport);
    const q = 'v=1' + (resume ? '&sid=' + encodeURIComponent(resume.sid) + '&tok=' + encodeURIComponent(resume.tok) + '&ack=' + resume.ack : '') + io.getExtra(transport);
    const url = io.url(transport, q);
    if (resume) {
      s.sid = resume.sid;
      s.tok = resume.tok;
      s.outSeq = resume.outSeq;
      s.received = resume.ack;
    }
    const where = transport + ' ' + (resume ? 'resume ' : '') + 'handshake';
    let frames: ServerFrame[];
    if (transport === 'long-polling' || transport === 'short-polling') {
      const r = await io.http('GET', url);
      if (notOffered(r.status) && !resume) throw new CheckSkipped(transport + ' is not offered (handshake answered ' + r.status + ')');
      if (r.status !== 200) fail(where, 'HTTP 200 and an open frame', { status: r.status, body: r.body }, 'HTTP transports');
      checkHeaders(r.headers, transport, where);
      frames = parseBatch(r.body, 'HTTP transports');
    } else {
      const st = io.stream(url);
      s.stream = st;
      await st.responded(io.ms);
      if (notOffered(st.status) && !resume) {
        st.abort();
        throw new CheckSkipped(transport + ' is not offered (handshake answered ' + st.status + ')');
      }
      if (st.status !== 200) {
        await waitDone(st, io.ms);
        fail(where, 'HTTP 200 and an open frame', { status: st.status, body: st.text }, 'HTTP transports');
      }
      checkHeaders(st.headers, transport, where);
      let body: ParsedBody = parseBody(transport, st.text, false);
      const until = Date.now() + io.ms;
      while (!body.batches.length) {
        if (st.done || Date.now() > until) fail(where, 'the open frame on the stream', st.text.slice(0, 400), 'HTTP transports');
        await sleep(5);
        body = parseBody(transport, st.text, st.ended);
      }
      frames = [];
      s.streamUnits = 0;
      for (const b of body.batches) frames.push(...parseBatch(b.text, 'HTTP transports'));
      s.streamUnits = body.batches.length;
      s.streamAck = resume ? resume.ack : 0;
    }
    s.opened(checkOpen(frames[0], where, resume ? { resumed: true, sid: resume.sid } : { resumed: false }));
    if (!resume) {
      s.sid = s.open.sid;
      s.tok = s.open.tok;
    }
    s.tok = s.open.tok;
    s.absorb(frames.slice(1), resume ? resume.ack : 0, where);
    io.scope.defer(() => s.close());
    return s;
  }

  /** POST a body; expects 204 unless told otherwise. */
  async post(body: string, expect: number | null = 204, origin?: string | null): Promise<HttpResponse> {
    const r = await this.io.http('POST', this.postUrl, { body, origin });
    if (expect !== null && r.status !== expect) fail('POST ' + this.transport + ' ' + show1(body), 'HTTP ' + expect, { status: r.status, body: r.body }, 'HTTP transports');
    return r;
  }

  /** Send messages in one POST. */
  async send(payloads: Payload[]): Promise<void> {
    await this.post(this.dataLines(payloads).join('\n'));
  }

  /** One continuing GET on a polling transport with `ack` (default: everything received). */
  async poll(ack: number = this.received): Promise<HttpResponse> {
    ensure(this.transport === 'long-polling' || this.transport === 'short-polling', 'poll() is for polling transports');
    const r = await this.io.http('GET', this.getUrl(ack), { timeoutMs: this.pollMs });
    if (r.status !== 200) fail('continuing GET ' + this.transport + ' ack=' + ack, 'HTTP 200', { status: r.status, body: r.body }, 'HTTP transports');
    this.absorb(parseBatch(r.body, 'HTTP transports'), ack, this.transport + ' poll');
    return r;
  }

  /** Open a continuing stream GET with `ack` (streaming transports). */
  async reopen(ack: number | null = this.received, headers?: Record<string, string>): Promise<HttpStream> {
    const st = this.io.stream(this.getUrl(ack), { headers });
    await st.responded(this.io.ms);
    if (st.status !== 200) {
      await waitDone(st, this.io.ms);
      fail('continuing GET ' + this.transport, 'HTTP 200', { status: st.status, body: st.text }, 'HTTP transports');
    }
    this.adopt(st, ack ?? Number(headers && headers['Last-Event-ID']));
    return st;
  }

  /** Read this session's frames from `st`, a continuing GET that told the server `ack`. */
  adopt(st: HttpStream, ack: number): void {
    this.stream = st;
    this.streamUnits = 0;
    this.parsed = null;
    this.parsedAt = -1;
    this.streamAck = ack;
  }

  /** Read new batches from the current stream. */
  readStream(): ParsedBody {
    const st = this.stream!;
    if (this.parsedAt !== st.text.length || !this.parsed || (st.ended && !this.parsed.endMarker)) {
      this.parsed = parseBody(this.transport, st.text, st.ended);
      this.parsedAt = st.text.length;
    }
    const body = this.parsed;
    for (; this.streamUnits < body.batches.length; this.streamUnits++) this.absorb(parseBatch(body.batches[this.streamUnits].text, 'HTTP transports'), this.streamAck, this.transport + ' stream');
    return body;
  }

  /** Read (poll or stream) until `cond()`; bounded by `ms`. */
  async until(cond: () => boolean, what: string, ms = this.pollMs): Promise<void> {
    const end = Date.now() + ms;
    const stream = this.stream !== null && this.transport !== 'long-polling' && this.transport !== 'short-polling';
    for (;;) {
      if (stream) this.readStream();
      if (cond()) return;
      if (Date.now() > end) throw new CheckFailed('timed out after ' + ms + ' ms on ' + this.transport + ' waiting for ' + what + '; data so far: ' + show1(this.data.map((f) => f.s)));
      if (stream) {
        if (this.stream!.done) throw new CheckFailed('the ' + this.transport + ' stream ended while waiting for ' + what);
        await sleep(5);
      } else {
        await this.poll();
        if (this.transport === 'short-polling' && !cond()) await sleep(20);
      }
    }
  }

  /** End the session with a close frame (best effort, for cleanup). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.stream) this.stream.abort();
    try {
      await this.io.http('POST', this.postUrl, { body: '{"t":"c","c":1000,"r":"conformance check done"}', timeoutMs: 2000 });
    } catch {
      /* gone already */
    }
  }
}

/** A session over WebSocket. */
export class WsSession extends ClientSession {
  private seen = 0;

  constructor(
    io: Io,
    readonly client: WsClient,
  ) {
    super(io);
  }

  /** Open (or resume) a session over WebSocket. */
  static async handshake(io: Io, resume?: { sid: string; tok: string; ack: number; outSeq: number }, init: { autoPong?: boolean } = {}): Promise<WsSession> {
    const q = 'v=1' + (resume ? '&sid=' + encodeURIComponent(resume.sid) + '&tok=' + encodeURIComponent(resume.tok) + '&ack=' + resume.ack : '');
    const c = io.ws(q, init);
    const where = 'websocket ' + (resume ? 'resume ' : '') + 'handshake';
    await c.waitOpen(io.ms, where);
    if (c.status !== 101) fail(where, 'HTTP 101', c.status, 'websocket');
    const s = new WsSession(io, c);
    if (resume) {
      s.sid = resume.sid;
      s.outSeq = resume.outSeq;
      s.received = resume.ack;
    }
    const end = Date.now() + io.ms;
    while (!c.messages.length) {
      if (c.closed || Date.now() > end) fail(where, 'the open frame as the first message', c.closed ? 'closed ' + show1(c.closed) : 'nothing within ' + io.ms + ' ms', 'websocket');
      await sleep(5);
    }
    const first = c.frames()[0];
    if (first.binary) fail(where, 'the open frame in a text message first', 'a binary message', 'websocket');
    s.opened(checkOpen(first.frame, where, resume ? { resumed: true, sid: resume.sid } : { resumed: false }));
    s.sid = s.open.sid;
    s.tok = s.open.tok;
    s.seen = 1;
    s.read(resume ? resume.ack : 0);
    io.scope.defer(() => s.close());
    return s;
  }

  private released = 0;

  /** Absorb new frames. */
  read(released = this.released): void {
    this.released = released;
    const all = this.client.frames('websocket');
    if (this.seen < all.length) this.absorb(all.slice(this.seen).map((x) => x.frame), released, 'websocket');
    this.seen = all.length;
  }

  /** Send messages as one text batch (binary payloads as base64 text frames). */
  send(payloads: Payload[]): void {
    this.client.send(this.dataLines(payloads).join('\n'));
  }

  async until(cond: () => boolean, what: string, ms = this.io.ms): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      this.read();
      if (cond()) return;
      if (Date.now() > end) throw new CheckFailed('timed out after ' + ms + ' ms on websocket waiting for ' + what + '; data so far: ' + show1(this.data.map((f) => f.s)));
      if (this.client.closed) throw new CheckFailed('the WebSocket closed (' + show1(this.client.closed) + ') while waiting for ' + what);
      await sleep(5);
    }
  }

  /** Tell the server everything received is held. */
  ack(): void {
    this.client.send(JSON.stringify({ t: 'a', a: this.received }));
  }

  /**
   * End the session (best effort, for cleanup). With no open socket the close frame goes by a POST
   * to an HTTP transport's URL, as PROTOCOL.md "Close" has a client do.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const frame = '{"t":"c","c":1000,"r":"conformance check done"}';
    if (this.client.isOpen) {
      this.client.send(frame);
      this.client.ws.close(1000);
      try {
        await this.client.waitClose(1000);
      } catch {
        /* terminated by the scope */
      }
      return;
    }
    try {
      await this.io.http('POST', this.io.url('long-polling', 'sid=' + encodeURIComponent(this.sid) + '&tok=' + encodeURIComponent(this.tok)), { body: frame, timeoutMs: 2000 });
    } catch {
      /* gone already */
    }
  }
}

function show1(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 160 ? s.slice(0, 160) + '…' : s;
}

async function waitDone(st: HttpStream, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!st.done && Date.now() < end) await sleep(5);
}

/** Headers every GET of an HTTP transport carries (PROTOCOL.md, "Transports"). */
export function checkHeaders(h: Record<string, string | string[] | undefined>, transport: HttpTransport, where: string): void {
  const ct = mediaType(h['content-type']);
  if (ct !== CONTENT_TYPE[transport]) fail(where + ': Content-Type', CONTENT_TYPE[transport], h['content-type'], 'HTTP transports');
  checkNoStore(h, where);
  if (String(h['x-accel-buffering'] ?? '').toLowerCase() !== 'no') fail(where + ': X-Accel-Buffering', 'no', h['x-accel-buffering'], 'HTTP transports');
}

export function checkNoStore(h: Record<string, string | string[] | undefined>, where: string): void {
  const cc = String(h['cache-control'] ?? '')
    .toLowerCase()
    .split(',')
    .map((x) => x.trim());
  for (const d of ['no-store', 'no-cache', 'must-revalidate', 'no-transform']) {
    if (cc.indexOf(d) < 0) fail(where + ': Cache-Control', '"no-store, no-cache, must-revalidate, no-transform"', h['cache-control'], 'Transports');
  }
}

/** After a refusal, the server still opens and serves a fresh session (long polling, one echo). */
export async function expectServing(io: Io, after: string): Promise<void> {
  try {
    const s = await HttpSession.handshake(io, 'long-polling');
    await s.send(['still serving?']);
    await s.until(() => s.received >= 1, 'the echo on a fresh session');
    s.expectEchoes(['still serving?'], 'fresh session after ' + after);
  } catch (e) {
    throw new CheckFailed('after ' + after + ' the server no longer serves a fresh session: ' + (e as Error).message);
  } finally {
    // Closed by the scope.
  }
}

/** The session is over: its GETs and resumes get 404/4404 (after at most one last close frame `code`). */
export async function expectSessionGone(io: Io, s: ClientSession, code: number | null, after: string): Promise<void> {
  const q = 'sid=' + encodeURIComponent(s.sid) + '&tok=' + encodeURIComponent(s.tok);
  // The server may still hand the session's close frame to the next GET ("the last frame of a
  // poll response"); after that the session is unknown. (A session still alive holds the GET.)
  let r = await io.http('GET', io.url('long-polling', q + '&ack=0'), { timeoutMs: s.liveness + io.ms });
  if (r.status === 200 && code !== null) {
    const frames = parseBatch(r.body, 'Close');
    const last = frames[frames.length - 1];
    if (!last || last.t !== 'c' || last.c !== code) fail('the GET after ' + after, '404/4404, or 200 ending with the session\'s close frame ' + code, { status: r.status, body: r.body }, 'Close');
    r = await io.http('GET', io.url('long-polling', q + '&ack=0'), { timeoutMs: io.ms });
  }
  expectRefusal(r, 404, 4404, 'a GET for the session after ' + after, 'Close codes');
  const resume = await io.http('GET', io.url('long-polling', 'v=1&' + q + '&ack=0'), { timeoutMs: io.ms });
  expectRefusal(resume, 404, 4404, 'a resume of the session after ' + after, 'Resume');
}


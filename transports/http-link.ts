/**
 * The server half of every HTTP transport: a GET that carries server frames and a POST that
 * carries client frames. Transports differ only in how a GET response is shaped (`HttpFormat`)
 * and how long it lives (`mode`):
 *  - 'poll'   long polling: held until there is output or the poll timeout, one batch, then ended;
 *  - 'now'    short polling: answered at once, even when empty;
 *  - 'stream' streaming: kept open, one chunk per batch, ended after `streamLimit` bytes so the
 *             client's document or buffer does not grow without bound (the client reopens).
 * A GET with `v` is the handshake; without it, it continues the session (and carries `ack`, so
 * whatever a lost response carried is written again).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeFrame, closeIfUnread, handlePost, NO_CACHE, refuse as refuseWithStatus } from './http-server';
import { isRefusal, type LinkedConnection, type Refusal, type ServerLink, type ServerTransport, type TransportHub } from './server-types';

export interface HttpFormat {
  readonly contentType: string;
  /** Written first on every response (streams: padding so proxies and browsers flush at once). */
  prelude(query: URLSearchParams): string;
  /** One batch as written on this response. `seq` is the highest data sequence number it carries. */
  batch(batch: string, seq: number): string;
  /** Written last when the server ends a stream to recycle it. */
  readonly end: string;
  /**
   * The client cannot read an HTTP status (EventSource, an iframe): refusals are answered 200 with
   * the close frame as this format's only batch, so the client still learns the close code.
   */
  readonly refuseInBody?: boolean;
  /** Checks the query of a GET (e.g. the iframe's parent origin); a refusal when it is bad. */
  check?(query: URLSearchParams, hub: TransportHub, req: IncomingMessage): Refusal | null;
}

/** Padding for stream preludes: 2 KiB, enough for browsers and proxies that hold back the first bytes. */
export const PAD = ' '.repeat(2048);

export type HttpMode = 'poll' | 'now' | 'stream';

class HttpLink implements ServerLink {
  conn: LinkedConnection | null = null;
  private res: ServerResponse | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private sent = 0;
  /** Responses ended but not yet read by their client (see `finish`). */
  private readonly undrained = new Set<ServerResponse>();

  constructor(
    readonly name: string,
    private readonly format: HttpFormat,
    private readonly mode: HttpMode,
    private readonly hub: TransportHub,
  ) {}

  get holding(): boolean {
    return this.res !== null;
  }

  /** Take `res` as this link's response and write what is waiting. */
  hold(res: ServerResponse, query: URLSearchParams): void {
    res.writeHead(200, {
      ...NO_CACHE,
      'Content-Type': this.format.contentType,
      // nginx and others buffer proxied responses unless told not to.
      'X-Accel-Buffering': 'no',
    });
    const prelude = this.format.prelude(query);
    if (prelude) res.write(prelude);
    this.res = res;
    this.sent = 0;
    res.on('close', () => {
      if (this.res === res) this.release();
    });
    const c = this.conn!;
    if (c.hasOutput || this.mode === 'now') this.notify();
    else if (this.mode === 'poll') this.timer = setTimeout(() => this.finish(), this.hub.pollTimeout);
  }

  notify(): void {
    const res = this.res;
    const c = this.conn;
    if (!res || !c) return;
    if (c.link !== this) return this.finish();
    if (this.mode !== 'stream') {
      res.write(this.format.batch(c.take(), c.written));
      return this.finish();
    }
    // A stream writes all that waits, batch after batch, until it reaches streamLimit. A batch is
    // cut at what the limit leaves, so the stream passes it by one frame at most (as formatted:
    // iframe-streaming's escaping can make that last batch up to 6 times longer).
    const limit = this.hub.streamLimit;
    while (c.link === this && c.hasOutput && this.sent < limit) {
      const b = c.take(false, limit - this.sent);
      if (!b) break;
      const chunk = this.format.batch(b, c.written);
      res.write(chunk);
      this.sent += Buffer.byteLength(chunk);
    }
    if (this.sent >= limit) this.finish(this.format.end);
  }

  /** End the held response (with `tail` written last). */
  finish(tail = ''): void {
    const res = this.res;
    if (!res) return;
    this.release();
    res.end(tail);
    if (res.destroyed) return;
    // Until its client reads it, an ended response keeps its socket and unsent bytes: one not read
    // within hb + hto is dropped (PROTOCOL.md, "HTTP transports"), as is a dead peer's (end(-1)).
    const timer = setTimeout(() => res.destroy(), this.hub.drainTimeout);
    const drained = (): void => {
      clearTimeout(timer);
      this.undrained.delete(res);
    };
    res.on('finish', drained);
    res.on('close', drained);
    this.undrained.add(res);
  }

  end(code?: number): void {
    const res = this.res;
    if (code !== undefined && code < 0) {
      for (const r of Array.from(this.undrained)) r.destroy();
      if (res) this.release(), res.destroy();
    } else this.finish(this.format.end);
  }

  private release(): void {
    this.res = null;
    clearTimeout(this.timer);
    // A probe lives as long as its one response: it stops counting when that ends (PROTOCOL.md, "Upgrade probes").
    if (this.conn && this.conn.probe) this.conn.detach(this);
  }
}

function get(name: string, format: HttpFormat, mode: HttpMode, req: IncomingMessage, res: ServerResponse, query: URLSearchParams, hub: TransportHub): void {
  const refuse = format.refuseInBody ? refuseInBody(format, query) : refuseWithStatus;
  const bad = format.check && format.check(query, hub, req);
  if (bad) return refuse(res, bad);
  if (query.has('v')) {
    const link = new HttpLink(name, format, mode, hub);
    const conn = hub.handshake(query, req, link);
    if (isRefusal(conn)) return refuse(res, conn);
    link.conn = conn;
    return link.hold(res, query);
  }
  const conn = hub.find(query);
  if (isRefusal(conn)) return refuse(res, conn);
  const link = conn.link;
  if (!(link instanceof HttpLink) || link.name !== name) {
    return refuse(res, { status: 409, code: 4409, reason: 'the session is carried by ' + (link ? link.name : 'no transport') });
  }
  if (link.holding) {
    link.finish(format.end);
    return refuse(res, { status: 409, code: 4409, reason: 'another request is pending for this session' });
  }
  const ack = Number(query.get('ack') ?? req.headers['last-event-id']);
  if (!Number.isSafeInteger(ack) || ack < 0) return refuse(res, { status: 400, code: 4400, reason: 'bad ack' });
  const r = conn.rewind(ack);
  if (r) return refuse(res, r);
  conn.touch();
  link.hold(res, query);
}

function refuseInBody(format: HttpFormat, query: URLSearchParams): (res: ServerResponse, r: Refusal) => void {
  return (res, r) => {
    closeIfUnread(res);
    res.writeHead(200, { ...NO_CACHE, 'Content-Type': format.contentType });
    res.end(format.prelude(query) + format.batch(closeFrame(r), 0) + format.end);
  };
}

/** A server transport over HTTP: GET shaped by `format` and `mode`, POST for client frames. */
export function httpTransport(name: string, format: HttpFormat, mode: HttpMode): ServerTransport {
  return {
    name,
    request(req, res, query, hub) {
      if (req.method === 'POST') return handlePost(req, res, query, hub);
      if (req.method !== 'GET') {
        req.resume();
        return refuseWithStatus(res, { status: 405, code: 4400, reason: 'method not allowed' });
      }
      get(name, format, mode, req, res, query, hub);
    },
    refuseRequest(req, res, query, r) {
      req.resume();
      (req.method === 'GET' && format.refuseInBody ? refuseInBody(format, query) : refuseWithStatus)(res, r);
    },
  };
}

/** Batches as they are: the long- and short-polling response body. */
export const plainFormat: HttpFormat = {
  contentType: 'text/plain; charset=UTF-8',
  prelude: () => '',
  batch: (b) => b,
  end: '',
};

/**
 * Long polling, server side. GET with `v` is the handshake, answered at once with the open frame;
 * GET without `v` is a poll, held until there is output or the poll timeout; POST carries client
 * batches. One poll per session: a second gets 409 and the first is answered at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { handlePost, refuse, sendBatch } from '../http-server';
import { isRefusal, type LinkedConnection, type ServerLink, type ServerTransport } from '../server-types';

class PollLink implements ServerLink {
  readonly name = 'long-polling';
  conn: LinkedConnection | null = null;
  private pending: ServerResponse | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;

  get holding(): boolean {
    return this.pending !== null;
  }

  hold(res: ServerResponse, timeout: number): void {
    if (this.conn!.hasOutput) return sendBatch(res, this.conn!.take());
    this.pending = res;
    this.timer = setTimeout(() => this.answer(), timeout);
    res.on('close', () => {
      if (this.pending === res) (this.pending = null), clearTimeout(this.timer);
    });
  }

  /** Answer the held poll with what the session has (nothing if this link no longer carries it). */
  answer(): void {
    const res = this.pending;
    if (!res) return;
    this.pending = null;
    clearTimeout(this.timer);
    const c = this.conn;
    sendBatch(res, c && c.link === this ? c.take() : '');
  }

  notify(): void {
    if (this.pending) this.answer();
  }

  end(): void {
    this.answer();
  }
}

function poll(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, hub: Parameters<NonNullable<ServerTransport['request']>>[3]): void {
  if (query.has('v')) {
    const link = new PollLink();
    const conn = hub.handshake(query, req, link);
    if (isRefusal(conn)) return refuse(res, conn);
    link.conn = conn;
    return sendBatch(res, conn.take());
  }
  const conn = hub.find(query);
  if (isRefusal(conn)) return refuse(res, conn);
  const link = conn.link;
  if (!(link instanceof PollLink)) return refuse(res, { status: 409, code: 4409, reason: 'the session is carried by ' + (link ? link.name : 'no transport') });
  if (link.holding) {
    link.answer();
    return refuse(res, { status: 409, code: 4409, reason: 'another poll is pending for this session' });
  }
  const ack = Number(query.get('ack'));
  if (!Number.isSafeInteger(ack) || ack < 0) return refuse(res, { status: 400, code: 4400, reason: 'bad ack' });
  const r = conn.rewind(ack);
  if (r) return refuse(res, r);
  conn.touch();
  link.hold(res, hub.pollTimeout);
}

/** The long-polling transport's server half. */
export function longPollingServer(): ServerTransport {
  return {
    name: 'long-polling',
    request(req, res, query, hub) {
      if (req.method === 'POST') return handlePost(req, res, query, hub);
      if (req.method !== 'GET') {
        req.resume();
        return refuse(res, { status: 405, code: 4400, reason: 'method not allowed' });
      }
      poll(req, res, query, hub);
    },
  };
}

/** Shared by the HTTP transports, server side: responses, refusals, and the POST half. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeFrame } from '../src/frame';
import { isRefusal, type Refusal, type TransportHub } from './server-types';

/** Headers every transport response carries: never cached, never transformed by a proxy. */
export const NO_CACHE = {
  'Cache-Control': 'no-store, no-cache, must-revalidate, no-transform',
  Pragma: 'no-cache',
};

/** The close frame of a refusal (with the retry delay in ms when it has one). */
export function closeFrame(r: Refusal): string {
  return encodeFrame(r.retryAfter !== undefined ? { t: 'c', c: r.code, r: r.reason, ra: r.retryAfter * 1000 } : { t: 'c', c: r.code, r: r.reason });
}

/** Answer a refusal: its HTTP status, a close frame as the body, Retry-After when it has one. */
export function refuse(res: ServerResponse, r: Refusal): void {
  const body = closeFrame(r);
  const headers: Record<string, string | number> = { ...NO_CACHE, 'Content-Type': 'text/plain; charset=UTF-8', 'Content-Length': Buffer.byteLength(body) };
  if (r.retryAfter !== undefined) headers['Retry-After'] = r.retryAfter;
  if (!res.headersSent) res.writeHead(r.status, headers);
  res.end(body);
}

/** Read a request body up to `max` bytes; calls back with null when it was larger (and stops reading). */
export function readBody(req: IncomingMessage, max: number, done: (body: string | null) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  req.on('data', (c: Buffer) => {
    if (over) return;
    size += c.length;
    if (size > max) {
      over = true;
      chunks.length = 0;
      done(null);
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (!over) done(Buffer.concat(chunks).toString('utf8'));
  });
  req.on('error', () => {
    over = true;
  });
}

/** POST `${path}/${transport}?sid&tok`: a batch of client frames. 204 on success. */
export function handlePost(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, hub: TransportHub): void {
  const conn = hub.find(query);
  if (isRefusal(conn)) {
    req.resume();
    return refuse(res, conn);
  }
  conn.touch();
  readBody(req, hub.maxBatch, (body) => {
    if (body === null) {
      const r: Refusal = { status: 413, code: 4413, reason: 'batch larger than ' + hub.maxBatch + ' bytes' };
      conn.fail(r);
      res.setHeader('Connection', 'close');
      return refuse(res, r);
    }
    const r = conn.receive(body);
    if (r) return refuse(res, r);
    res.writeHead(204, NO_CACHE);
    res.end();
  });
}

/** Shared by the HTTP transports, server side: responses, refusals, and the POST half. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeFrame } from '../src/frame';
import { isRefusal, type LinkedConnection, type Refusal, type TransportHub } from './server-types';

/** Headers every transport response carries: never cached, never transformed by a proxy. */
export const NO_CACHE = {
  'Cache-Control': 'no-store, no-cache, must-revalidate, no-transform',
  Pragma: 'no-cache',
};

/** A close reason fits in 123 bytes (PROTOCOL.md, "Frames"; a WebSocket close frame's limit too). */
export function truncate(reason: string): string {
  return Buffer.byteLength(reason) <= 123 ? reason : Buffer.from(reason).subarray(0, 120).toString('utf8').replace(/\uFFFD$/, '');
}

/** The close frame of a refusal (with the retry delay in ms when it has one). */
export function closeFrame(r: Refusal): string {
  const reason = truncate(r.reason);
  return encodeFrame(r.retryAfter !== undefined ? { t: 'c', c: r.code, r: reason, ra: r.retryAfter * 1000 } : { t: 'c', c: r.code, r: reason });
}

/**
 * An answer (a refusal, mostly) given before the request's body was read to its end closes the
 * connection after it: a body that never ends is then cut off, not drained until Node's requestTimeout.
 */
export function closeIfUnread(res: ServerResponse): void {
  const req = res.req;
  const body = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length']) > 0;
  if (body && !req.complete && !res.headersSent) res.setHeader('Connection', 'close');
}

/** Answer a refusal: its HTTP status, a close frame as the body, Retry-After when it has one. */
export function refuse(res: ServerResponse, r: Refusal): void {
  const body = closeFrame(r);
  const headers: Record<string, string | number> = { ...NO_CACHE, 'Content-Type': 'text/plain; charset=UTF-8', 'Content-Length': Buffer.byteLength(body) };
  if (r.retryAfter !== undefined) headers['Retry-After'] = r.retryAfter;
  closeIfUnread(res);
  if (!res.headersSent) res.writeHead(r.status, headers);
  res.end(body);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** `bytes` as a string, or null when they are not UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Read a request body up to `max` bytes; calls back with null when it was larger (and stops reading).
 * Returns a function that stops reading (without calling back) and lets go of what was read.
 */
export function readBody(req: IncomingMessage, max: number, done: (body: Buffer | null) => void): () => void {
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
    if (!over) done(Buffer.concat(chunks));
  });
  req.on('error', () => {
    over = true;
  });
  return () => {
    over = true;
    chunks.length = 0;
  };
}

/** The POST whose body is being read, per session (one at a time): how to cut it. */
const reading = new WeakMap<LinkedConnection, () => void>();

/** POST `${path}/${transport}?sid&tok`: a batch of client frames. 204 on success. */
export function handlePost(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, hub: TransportHub): void {
  const conn = hub.find(query);
  if (isRefusal(conn)) {
    req.resume();
    return refuse(res, conn);
  }
  // The client sends one POST at a time: a second one means it gave up on the first (a stalled
  // or half-open connection, then a resume), so the one still being read is cut (409 / 4409,
  // Connection: close, its body not read further) and this one is read (PROTOCOL.md "HTTP
  // transports"). One body per session at a time; sequence numbers catch anything out of step.
  const cut = reading.get(conn);
  if (cut) cut();
  // A closing session's deadline runs from its close: a client that keeps POSTing does not extend it.
  if (conn.state === 'open') conn.touch();
  const stop = readBody(req, hub.maxBatch, (body) => {
    reading.delete(conn);
    if (body === null) {
      const r: Refusal = { status: 413, code: 4413, reason: 'batch larger than ' + hub.maxBatch + ' bytes' };
      conn.fail(r);
      res.setHeader('Connection', 'close');
      return refuse(res, r);
    }
    const text = decodeUtf8(body);
    // Not UTF-8: malformed, like a frame that is not JSON (PROTOCOL.md, "Frames").
    const r = text === null ? conn.fail({ status: 400, code: 4400, reason: 'a batch that is not UTF-8' }) : conn.receive(text);
    if (r) return refuse(res, r);
    res.writeHead(204, NO_CACHE);
    res.end();
  });
  const cutThis = (): void => {
    reading.delete(conn);
    stop();
    refuse(res, { status: 409, code: 4409, reason: 'a newer POST arrived for this session' });
  };
  reading.set(conn, cutThis);
  res.on('close', () => {
    if (reading.get(conn) === cutThis) reading.delete(conn);
  });
}

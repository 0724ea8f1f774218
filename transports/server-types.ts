/**
 * The server side of a transport, and what the server offers it. A server transport moves
 * batches between one HTTP mechanism and a connection; sessions, limits and Origin checks
 * belong to the server (`server/`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** A request the server refuses: HTTP status, and the close code for transports that carry frames. */
export interface Refusal {
  status: number;
  code: number;
  reason: string;
  /** Seconds, for Retry-After. */
  retryAfter?: number;
  /**
   * The session ended with this refusal (Connection.fail): its close frame, the session's last,
   * already goes out through the session's transport, so a WebSocket must not write it again.
   */
  ended?: boolean;
}

/** One transport attached to a connection. */
export interface ServerLink {
  readonly name: string;
  /** The connection has output: take it (`conn.take()`) as soon as the transport can write. */
  notify(): void;
  /**
   * Stop carrying the session: end after what is written (a WebSocket closes with `code`).
   * `code` -1 drops the connection at once (a dead peer).
   */
  end(code?: number, reason?: string): void;
}

/** What a transport may ask of a connection. */
export interface LinkedConnection {
  /** The next batch to write ('' when nothing is waiting). */
  take(): string;
  /** For a stream near its byte limit: the next batch, its data frames `max` bytes at most (but at least one). */
  take(binary: false, max: number): string;
  /**
   * For a link that carries binary messages: the next batch, or the bytes of one binary message
   * (PROTOCOL.md, "Binary messages").
   */
  take(binary: boolean): string | Uint8Array;
  /** Whether a batch is waiting. */
  readonly hasOutput: boolean;
  /** 'closing' while the session's close frame waits to be collected: client frames are ignored. */
  readonly state?: 'open' | 'closing' | 'closed';
  /** An upgrade probe (server/probe.ts): it lives as long as the one response carrying it. */
  readonly probe?: boolean;
  /** A batch (or a binary message) arrived from the client. Returns a refusal when it broke the protocol or a limit. */
  receive(batch: string | Uint8Array): Refusal | null;
  /** A poll says the client holds everything up to `ack`: write the rest again. */
  rewind(ack: number): Refusal | null;
  /** The client broke a limit the transport enforces: close the session with this refusal's code. */
  fail(r: Refusal): Refusal;
  /** The client showed signs of life. */
  touch(): void;
  /** The link is gone (its socket or request closed). */
  detach(link: ServerLink): void;
  /** The link carrying the session now. */
  readonly link: ServerLink | null;
  /** Highest data sequence number written so far (carried, not interpreted: e.g. SSE event ids). */
  readonly written: number;
}

/** What the server offers its transports. */
export interface TransportHub {
  /** Largest request body or WebSocket message, bytes. */
  readonly maxBatch: number;
  /** How long a poll may be held, ms. */
  readonly pollTimeout: number;
  /** Bytes after which a streaming response is ended so the client reopens it. */
  readonly streamLimit: number;
  /** `hb + hto`, ms: how long an ended response may wait for its client to read it before it is dropped. */
  readonly drainTimeout: number;
  /** Whether `origin` may use this server (for transports that learn it from the query). */
  originAllowed(origin: string, req: IncomingMessage): boolean;
  /** Open or resume the session the handshake query names, carried by `link`. */
  handshake(query: URLSearchParams, req: IncomingMessage, link: ServerLink): LinkedConnection | Refusal;
  /** The session a poll or POST names. */
  find(query: URLSearchParams): LinkedConnection | Refusal;
}

/** A transport's server half, as the server routes to it by name: `${path}/${name}`. */
export interface ServerTransport {
  readonly name: string;
  /** A plain HTTP request (GET, POST). */
  request?(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, hub: TransportHub): void;
  /** An HTTP upgrade. */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer, query: URLSearchParams, hub: TransportHub): void;
  /**
   * A request the server refuses before the transport sees it (a foreign Origin): answer `r` in a
   * way the client can read (sse and iframe-streaming GETs: in the body, PROTOCOL.md "Close").
   */
  refuseRequest?(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, r: Refusal): void;
  /** An upgrade the server refuses (a foreign Origin): tell the client `r` in a way it can read. */
  refuseUpgrade?(req: IncomingMessage, socket: Duplex, head: Buffer, r: Refusal): void;
  /** Release what the transport holds (called when the server closes). */
  close?(): void;
}

export function isRefusal(x: unknown): x is Refusal {
  return typeof x === 'object' && x !== null && 'status' in x && 'code' in x;
}

/**
 * The client side of a transport: it moves encoded batches (PROTOCOL.md) over one mechanism and
 * knows nothing of sequence numbers, acks or retries. The socket pulls: it writes one batch
 * whenever the transport says it is writable, so batching and limits stay in the session layer.
 */
import type { Env } from '../src/env';

/** Why a transport ended. `code` is a close code (PROTOCOL.md), `retryAfter` ms when the server asked. */
export interface TransportClose {
  code: number;
  reason: string;
  retryAfter?: number;
}

/** What the socket gives a transport it opens. */
export interface TransportHooks {
  /** Query string (without "?") for the next request: the handshake when `open` is true. */
  query(open: boolean): string;
  /**
   * A batch arrived (possibly empty, which is no sign of life: the heartbeat counts frames), or a
   * binary message (PROTOCOL.md, "Binary messages") from a transport that carries them.
   */
  data(batch: string | ArrayBuffer): void;
  /** The transport can take a batch now (it had said it could not). */
  writable(): void;
  /** The transport died. Never called after `close()`. */
  closed(info: TransportClose): void;
}

/** One open transport. */
export interface ClientTransport {
  /** Whether `send` may be called now. */
  readonly canSend: boolean;
  /** It carries binary messages: `send` then also takes the bytes of one (Session.take). */
  readonly binary?: boolean;
  /** Write one encoded batch (or, when `binary`, one binary message). */
  send(batch: string | Uint8Array): void;
  /**
   * Write the last batch of this transport (a close frame) even when `canSend` is false: after
   * whatever is in flight, and it still goes out if `close()` follows at once.
   */
  sendLast(batch: string): void;
  /** Stop at once, silently: no hook is called afterwards. */
  close(): void;
}

/** Settings every transport receives. */
export interface TransportSettings {
  /** Endpoint URL, http(s), without query: e.g. https://example.com/rt */
  url: string;
  /** Timeout for a request the server answers at once (handshake, POST), ms. */
  requestTimeout: number;
  /** Timeout for a request the server may hold (a poll), ms. */
  holdTimeout: number;
  /** A stream whose first bytes have not arrived by then is buffered by a proxy: give it up, ms. */
  probeTimeout: number;
  /** Delay between short polls, ms. */
  pollInterval: number;
}

/** A transport as passed to `connect({ transports: [...] })`. */
export interface Transport {
  /** Its name on the wire and in `socket.transport`, e.g. "websocket". */
  readonly name: string;
  /** A streaming transport: negotiation tries only the first streaming transport supported. */
  readonly stream?: boolean;
  /** Whether this environment can run it. */
  supported(env: Env): boolean;
  open(settings: TransportSettings, hooks: TransportHooks, env: Env): ClientTransport;
  /**
   * Deliver one last batch (a close frame) for the session that `query` (a resume handshake's)
   * names, best effort and without telling the socket: close() uses it between transports.
   */
  farewell?(settings: TransportSettings, query: string, batch: string, env: Env): void;
}

/** Endpoint URL for a transport's requests: `${url}/${name}?${query}`. */
export function endpoint(url: string, name: string, query: string): string {
  return url + '/' + name + (query ? '?' + query : '');
}

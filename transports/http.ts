/**
 * Shared by the HTTP transports, client side: what an HTTP status means as a close code
 * (PROTOCOL.md, "HTTP status codes"), and the POST half that every non-WebSocket transport uses
 * to carry client frames: one request in flight, the socket's next batch waits for it.
 */
import type { Env, HttpResult } from '../src/env';
import { endpoint, type ClientTransport, type Transport, type TransportClose, type TransportHooks, type TransportSettings } from './types';

/** Statuses whose close code mirrors them (4000 + status); 405 reads as 400, 503 as 429. */
const MIRRORED = [400, 403, 404, 409, 413, 429, 501, 507];

/** The close a failed HTTP request means. Status 0 is a network failure; 5xx and unknown statuses are transient. */
export function httpClose(r: HttpResult, what: string): TransportClose {
  const status = r.status === 405 ? 400 : r.status === 503 ? 429 : r.status;
  let code = MIRRORED.indexOf(status) >= 0 ? 4000 + status : 1006;
  // A refusal's body is its close frame (PROTOCOL.md "Close"). A 404 without 4404 in it comes from
  // something else on the path (a proxy without the route), not from a server that lost the session.
  if (code === 4404 && r.body.indexOf('"c":4404') < 0) code = 1006;
  const info: TransportClose = { code, reason: what + (r.status ? ' answered HTTP ' + r.status : ' failed') };
  if (r.retryAfter) {
    const secs = parseFloat(r.retryAfter);
    if (secs >= 0) info.retryAfter = secs * 1000;
  }
  return info;
}

/**
 * The POST half: sends one batch at a time to `${url}/${name}`. `last()` sends the close frame
 * after whatever is in flight; `stop()` stops listening and aborts a POST in flight (its frames
 * are unacknowledged: the next transport writes them again).
 */
export function poster(
  name: string,
  s: TransportSettings,
  hooks: TransportHooks,
  env: Env,
  fail: (info: TransportClose) => void,
): { readonly busy: boolean; send(batch: string): void; last(batch: string): void; stop(): void } {
  let busy = false;
  let stopped = false;
  let final: string | null = null;
  /** Aborts the POST in flight (null when none, or once last() sent the close frame). */
  let abort: (() => void) | null = null;
  const send = (batch: string): void => {
    busy = true;
    let answered = false;
    const a = env.request!('POST', endpoint(s.url, name, hooks.query(false)), batch, s.requestTimeout, (r) => {
      answered = true;
      busy = false;
      abort = null;
      if (final !== null) {
        const b = final;
        final = null;
        send(b);
      } else if (stopped) return;
      else if (r.status >= 200 && r.status < 300) hooks.writable();
      else fail(httpClose(r, 'POST'));
    });
    if (!answered && !stopped) abort = a;
  };
  return {
    get busy() {
      return busy;
    },
    send,
    last(batch) {
      // The close frame goes after whatever is in flight: nothing is aborted from here on.
      abort = null;
      stopped = true;
      if (busy) final = batch;
      else send(batch);
    },
    stop() {
      stopped = true;
      // An abandoned transport (it failed, or the session moved) does not wait for its POST: on a
      // dead connection it would hold one of the browser's six per host until requestTimeout. Its
      // frames are unacknowledged, so the next transport writes them again (duplicates are dropped).
      if (abort) abort(), (abort = null), (busy = false);
    },
  };
}

/** An HTTP transport's farewell: one POST of the batch (the server ignores the handshake's `v`), its answer ignored. */
export function farewell(name: string): NonNullable<Transport['farewell']> {
  return (s, query, batch, env) => {
    if (env.request) env.request('POST', endpoint(s.url, name, query), batch, s.requestTimeout, () => {});
  };
}

/** What the receiving half of an HTTP transport (polls or a stream) is given. */
export interface Receiving {
  /** The transport was closed (by the socket or by a failure). */
  readonly done: boolean;
  /** The handshake response arrived: the transport can send. */
  ready(): void;
  /** The transport failed: close it and tell the socket. */
  fail(info: TransportClose): void;
}

/**
 * A client transport over HTTP: `receive` runs the receiving half (polls or a stream) and returns
 * what stops it; the sending half is the shared POST half.
 */
export function httpClient(
  name: string,
  s: TransportSettings,
  hooks: TransportHooks,
  env: Env,
  receive: (r: Receiving) => () => void,
): ClientTransport {
  let done = false;
  let ready = false;
  let stop: (() => void) | undefined;
  const r: Receiving = {
    get done() {
      return done;
    },
    ready() {
      if (ready || done) return;
      ready = true;
      hooks.writable();
    },
    fail(info) {
      if (done) return;
      t.close();
      hooks.closed(info);
    },
  };
  const post = poster(name, s, hooks, env, r.fail);
  const t: ClientTransport = {
    get canSend() {
      return ready && !done && !post.busy;
    },
    send: post.send,
    sendLast: post.last,
    close() {
      done = true;
      if (stop) stop();
      post.stop();
    },
  };
  stop = receive(r);
  if (done) stop();
  return t;
}

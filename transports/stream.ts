/**
 * Streaming, client side, shared by xhr-streaming, sse and iframe-streaming: one long response
 * carries server frames, POST carries client batches. The first response is the handshake. A
 * response whose first frame has not arrived within `probeTimeout` is being buffered by a proxy:
 * the transport fails so negotiation moves on. A stream the server ends after carrying frames was
 * recycled (so the page's buffer or document stays bounded) and is reopened at once.
 */
import type { Env } from '../src/env';
import { farewell, httpClient, httpClose } from './http';
import { endpoint, type Transport, type TransportSettings } from './types';

/** Characters one stream may carry before the client recycles it (see `data` below). */
const MAX_STREAM = 4 << 20;

export interface StreamHandlers {
  /** A batch arrived. */
  data(batch: string): void;
  /** The stream ended: HTTP status 200 when the server ended it, else the status or 0 (and Retry-After, and the body of a refusal). */
  end(status: number, retryAfter?: string | null, body?: string): void;
}

/** Opens one stream response at `url`; returns a function that stops it silently. */
export type StreamOpener = (url: string, h: StreamHandlers, env: Env, s: TransportSettings) => () => void;

export function streamTransport(name: string, supported: (env: Env) => boolean, opener: StreamOpener): Transport {
  return {
    name,
    stream: true,
    supported,
    farewell: farewell(name),
    open: (s, hooks, env) =>
      httpClient(name, s, hooks, env, (r) => {
        let stop: (() => void) | null = null;
        let probe: unknown;
        const start = (handshake: boolean): void => {
          let got = false;
          let size = 0;
          // Only the handshake is probed: a reopened (recycled) stream may stay quiet, and the
          // heartbeat watches it like any transport.
          if (handshake) probe = env.setTimeout(() => r.fail({ code: 1006, reason: name + ': no frame within ' + s.probeTimeout + ' ms (buffered by a proxy?)' }), s.probeTimeout);
          stop = opener(
            endpoint(s.url, name, hooks.query(handshake)),
            {
              data(b) {
                if (r.done) return;
                if (!got) env.clearTimeout(probe);
                got = true;
                hooks.data(b);
                r.ready();
                // A server recycles its streams (PROTOCOL.md: after streamLimit, plus a batch at most).
                // One that never does would grow the page's buffer or the iframe's document without
                // bound: past 4 MiB the client recycles the stream itself (the next GET's ack says what arrived).
                if ((size += b.length) > MAX_STREAM && !r.done && stop) {
                  stop();
                  start(false);
                }
              },
              end(status, retryAfter, body) {
                if (r.done) return;
                env.clearTimeout(probe);
                stop = null;
                if (status === 200 && got) start(false);
                else r.fail(httpClose({ status: status === 200 ? 0 : status, body: body || '', retryAfter: retryAfter || null }, name));
              },
            },
            env,
            s,
          );
        };
        start(true);
        return () => {
          env.clearTimeout(probe);
          if (stop) stop();
        };
      }),
  };
}

/**
 * Polling, client side, shared by long and short polling: GET polls carry server frames, POST
 * carries client batches. The first GET is the handshake and is answered at once. Long polling
 * re-polls at once (the server holds each poll until it has frames); short polling waits
 * `pollInterval` between polls, for networks that cut any request the server holds.
 */
import type { Env } from '../src/env';
import { httpClient, httpClose } from './http';
import { endpoint, type Transport } from './types';

export function polling(name: string, short: boolean): Transport['open'] {
  return (s, hooks, env) =>
    httpClient(name, s, hooks, env, (r) => {
      let abort: (() => void) | null = null;
      let wait: unknown;
      const poll = (handshake: boolean): void => {
        const t0 = env.now();
        abort = env.request!('GET', endpoint(s.url, name, hooks.query(handshake)), null, handshake || short ? s.requestTimeout : s.holdTimeout, (res) => {
          abort = null;
          // 2xx is success (PROTOCOL.md, "HTTP status codes"); a 204 is an empty batch.
          if (res.status < 200 || res.status > 299) return r.fail(httpClose(res, 'poll'));
          // A handshake always carries the open frame: an empty one is not our server.
          if (handshake && !res.body) return r.fail({ code: 1002, reason: 'empty handshake' });
          hooks.data(res.body);
          if (handshake) r.ready();
          if (r.done || abort) return;
          // Long polling re-polls at once, but polls answered empty (a server that does not hold them,
          // a proxy that cuts them) start pollInterval apart, not in a tight loop.
          const gap = short ? s.pollInterval : res.body ? 0 : s.pollInterval - (env.now() - t0);
          if (gap > 0) wait = env.setTimeout(() => poll(false), gap);
          else poll(false);
        });
      };
      poll(true);
      return () => {
        env.clearTimeout(wait);
        if (abort) abort();
      };
    });
}

/** Polling needs HTTP requests (XMLHttpRequest or fetch). */
export const canRequest = (env: Env): boolean => typeof env.request === 'function';

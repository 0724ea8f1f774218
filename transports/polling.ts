/**
 * Polling, client side, shared by long and short polling: GET polls carry server frames, POST carries client batches. The first GET
 * is the handshake and is answered at once. Long polling re-polls at once (the server holds each
 * poll until it has frames); short polling waits `pollInterval` between polls, for networks that
 * cut any request the server holds.
 */
import type { Env } from '../src/env';
import { httpClose, poster } from './http';
import { endpoint, type ClientTransport, type Transport, type TransportClose, type TransportHooks, type TransportSettings } from './types';

export function polling(name: string, short: boolean): Transport['open'] {
  return (s: TransportSettings, hooks: TransportHooks, env: Env): ClientTransport => {
    let done = false;
    let ready = false;
    let abortPoll: (() => void) | null = null;
    let wait: unknown;
    const fail = (info: TransportClose): void => {
      if (done) return;
      t.close();
      hooks.closed(info);
    };
    const post = poster(name, s, hooks, env, fail);
    const poll = (handshake: boolean): void => {
      abortPoll = env.request!('GET', endpoint(s.url, name, hooks.query(handshake)), null, handshake || short ? s.requestTimeout : s.holdTimeout, (r) => {
        abortPoll = null;
        if (r.status !== 200) return fail(httpClose(r, 'poll'));
        hooks.data(r.body);
        if (done) return;
        if (handshake) {
          ready = true;
          hooks.writable();
        }
        if (done || abortPoll) return;
        if (short) wait = env.setTimeout(() => poll(false), s.pollInterval);
        else poll(false);
      });
    };
    const t: ClientTransport = {
      get canSend() {
        return ready && !done && !post.busy;
      },
      send: post.send,
      sendLast: post.last,
      close() {
        done = true;
        env.clearTimeout(wait);
        if (abortPoll) abortPoll();
        post.stop();
      },
    };
    poll(true);
    return t;
  };
}

/** Polling needs HTTP requests (XMLHttpRequest or fetch). */
export const canRequest = (env: Env): boolean => typeof env.request === 'function';

/**
 * Long polling, client side: GET polls the server holds until it has frames (or its poll timeout),
 * POST carries client batches. The first GET is the handshake and is answered at once.
 */
import type { Env } from '../../src/env';
import { httpClose, poster } from '../http';
import { endpoint, type ClientTransport, type Transport, type TransportClose, type TransportHooks, type TransportSettings } from '../types';

const NAME = 'long-polling';

function open(s: TransportSettings, hooks: TransportHooks, env: Env): ClientTransport {
  let done = false;
  let ready = false;
  let abortPoll: (() => void) | null = null;
  const fail = (info: TransportClose): void => {
    if (done) return;
    t.close();
    hooks.closed(info);
  };
  const post = poster(NAME, s, hooks, env, fail);
  const poll = (handshake: boolean): void => {
    abortPoll = env.request!('GET', endpoint(s.url, NAME, hooks.query(handshake)), null, handshake ? s.requestTimeout : s.holdTimeout, (r) => {
      abortPoll = null;
      if (r.status !== 200) return fail(httpClose(r, 'poll'));
      hooks.data(r.body);
      if (done) return;
      if (handshake) {
        ready = true;
        hooks.writable();
      }
      if (!done && !abortPoll) poll(false);
    });
  };
  const t: ClientTransport = {
    get canSend() {
      return ready && !done && !post.busy;
    },
    send: post.send,
    close() {
      done = true;
      if (abortPoll) abortPoll();
      post.abort();
    },
  };
  poll(true);
  return t;
}

/** The long-polling transport: `connect(url, { transports: [longPolling] })`. */
export const longPolling: Transport = {
  name: NAME,
  supported: (env) => typeof env.request === 'function',
  open,
};

/** WebSocket transport, client side: one text message per batch, one binary message per payload of bytes. */
import { CloseCode } from '../../src/close-codes';
import type { Env } from '../../src/env';
import { endpoint, type ClientTransport, type Transport, type TransportHooks, type TransportSettings } from '../types';

/** Backpressure: stop taking batches while this much is queued in the browser. */
const HIGH_WATER = 1 << 20;

function open(s: TransportSettings, hooks: TransportHooks, env: Env): ClientTransport {
  const url = endpoint(s.url.replace(/^http/, 'ws'), 'websocket', hooks.query(true));
  const ws = new env.WebSocket!(url);
  ws.binaryType = 'arraybuffer';
  let done = false;
  let opened = false;
  let drainTimer: unknown;
  /** Stop; `code` 0 is the socket's own close(), which no hook hears of. */
  const end = (code: number, reason: string): void => {
    if (done) return;
    done = true;
    env.clearTimeout(drainTimer);
    detach();
    try {
      ws.close(1000);
    } catch {
      /* not open yet, or already closing */
    }
    if (code) hooks.closed({ code, reason });
  };
  // onerror stays a no-op: the `ws` package throws an 'error' event that nobody listens to
  // (e.g. "closed before the connection was established").
  const detach = (): void => {
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
  };
  const waitDrain = (): void => {
    drainTimer = env.setTimeout(() => {
      if (done) return;
      if (ws.bufferedAmount < HIGH_WATER) hooks.writable();
      else waitDrain();
    }, 50);
  };
  ws.onopen = () => {
    opened = true;
    hooks.writable();
  };
  ws.onmessage = (ev) => {
    const d = ev.data as string | ArrayBuffer;
    // binaryType 'arraybuffer': bytes come as an ArrayBuffer (checked by shape: realms differ).
    if (typeof d === 'string' || (d && typeof d.byteLength === 'number')) hooks.data(d);
    else end(CloseCode.BadFrame, 'unexpected message type');
  };
  // A session ends only by a close frame (it arrives as data first). The socket's own close code
  // matters only when it is one of ours (4xxx) or 1009; anything else (1000 from a server that
  // replaced this transport, 1001, 1006) means the transport broke.
  ws.onclose = (ev) => end(ev.code >= 4000 || ev.code === 1009 ? ev.code : 1006, ev.reason || (opened ? 'connection lost' : 'connection failed'));
  ws.onerror = () => end(1006, opened ? 'connection error' : 'connection failed');
  return {
    binary: true,
    get canSend() {
      return !done && ws.readyState === 1 && ws.bufferedAmount < HIGH_WATER;
    },
    send(batch) {
      ws.send(batch);
      if (ws.bufferedAmount >= HIGH_WATER) waitDrain();
    },
    sendLast(batch) {
      // Closing right after is fine: a WebSocket sends what it buffered before its close frame.
      if (!done && ws.readyState === 1) ws.send(batch);
    },
    close: () => end(0, ''),
  };
}

/** A resume handshake that only delivers `batch` (a close frame), then closes. */
const farewell: Transport['farewell'] = (s, query, batch, env) => {
  const ws = new env.WebSocket!(endpoint(s.url.replace(/^http/, 'ws'), 'websocket', query));
  const timer = env.setTimeout(() => ws.close(), s.requestTimeout);
  ws.onerror = () => {};
  ws.onmessage = ws.onclose = null;
  ws.onopen = () => {
    env.clearTimeout(timer);
    ws.send(batch);
    ws.close(1000);
  };
};

/** The WebSocket transport: `connect(url, { transports: [webSocket] })`. */
export const webSocket: Transport = {
  name: 'websocket',
  supported: (env) => typeof env.WebSocket === 'function',
  open,
  farewell,
};

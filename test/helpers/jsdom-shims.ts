/**
 * Test-environment shim, not a fix of cometsocket: under vitest's jsdom environment, jsdom's
 * WebSocket (a wrapper around undici's) never fires `open`. undici builds its open event with the
 * *global* `Event`, which vitest has replaced by jsdom's, and dispatches it on a Node.js
 * EventTarget, which throws "The "event" argument must be an instance of Event" from inside
 * undici (an uncaught exception; the socket still works but `onopen` never runs).
 *
 * `patchJsdomWebSocketOpen()` gives undici's WebSocket a `dispatchEvent` that re-creates a foreign
 * event as a Node.js one (undici's own event classes extend the Node.js `Event`, captured before
 * vitest replaced the global). Returns a function that removes the patch.
 */
import { createRequire } from 'node:module';

interface Undici {
  WebSocket: { prototype: { dispatchEvent(e: unknown): boolean } };
  CloseEvent: new (...a: never[]) => unknown;
}

export function patchJsdomWebSocketOpen(): () => void {
  // The undici instance jsdom itself loads.
  const req = createRequire(createRequire(import.meta.url).resolve('jsdom'));
  const undici = req('undici') as Undici;
  const NodeEvent = Object.getPrototypeOf(undici.CloseEvent) as new (type: string) => object;
  const proto = undici.WebSocket.prototype;
  const had = Object.prototype.hasOwnProperty.call(proto, 'dispatchEvent');
  const own = proto.dispatchEvent;
  const base = Object.getPrototypeOf(proto) as { dispatchEvent(e: unknown): boolean };
  proto.dispatchEvent = function (this: unknown, e: unknown): boolean {
    const ev = e instanceof NodeEvent ? e : new NodeEvent((e as { type: string }).type);
    return (had ? own : base.dispatchEvent).call(this, ev);
  };
  return () => {
    if (had) proto.dispatchEvent = own;
    else delete (proto as Partial<typeof proto>).dispatchEvent;
  };
}

/**
 * Test-environment shim for msw under jsdom: when msw's XMLHttpRequest interceptor lets a request
 * through to the network, it first sets `x-interceptors-internal-request-id` on the real (jsdom)
 * request, a marker meant for msw's http.ClientRequest interceptor. jsdom's XHR does not go
 * through http.ClientRequest, and the custom header turns every passed-through request into a
 * non-simple one: jsdom sends a CORS preflight the server (rightly) refuses, and the request fails
 * with status 0. The cometsocket client never sends a custom header, so dropping the marker
 * restores exactly what the client sends. Returns a function that removes the patch.
 */
export function dropMswXhrMarkerHeader(Xhr: { prototype: { setRequestHeader(name: string, value: string): void } }): () => void {
  const proto = Xhr.prototype;
  const had = Object.prototype.hasOwnProperty.call(proto, 'setRequestHeader');
  const orig = proto.setRequestHeader;
  proto.setRequestHeader = function (this: unknown, name: string, value: string): void {
    if (name.toLowerCase() === 'x-interceptors-internal-request-id') return;
    orig.call(this, name, value);
  };
  return () => {
    if (had) proto.setRequestHeader = orig;
    else delete (proto as Partial<typeof proto>).setRequestHeader;
  };
}

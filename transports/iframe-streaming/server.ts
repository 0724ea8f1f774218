/** iframe-streaming ("forever frame"), server side. */
import type { IncomingMessage } from 'node:http';
import { httpTransport, PAD, type HttpFormat } from '../http-link';
import type { Refusal, ServerTransport, TransportHub } from '../server-types';

/**
 * A JSON string literal safe inside an HTML <script>: no "</script>", no "<!--", no U+2028/U+2029
 * (line terminators in old engines), whatever the payload.
 */
export function scriptString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4));
}

const ID = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * iframe-streaming ("forever frame"): an HTML document that the server keeps open, one <script>
 * per batch handing it to the parent page by postMessage, aimed at the parent's origin (`po`,
 * checked against the allowed origins: an iframe navigation carries no Origin header).
 */
export const iframeFormat: HttpFormat = {
  contentType: 'text/html; charset=UTF-8',
  prelude: (q) =>
    '<!doctype html><html><head><meta charset="utf-8"></head><body><script>var o=' +
    scriptString(q.get('po') || '') +
    ',i=' +
    scriptString(q.get('i') || '') +
    ';function p(b){parent.postMessage({cometsocket:i,b:b},o)}</script>' +
    PAD +
    '\n',
  batch: (b) => '<script>p(' + scriptString(b) + ')</script>\n',
  end: '<script>p(null)</script></body></html>',
  refuseInBody: true,
  check(q: URLSearchParams, hub: TransportHub, req: IncomingMessage): Refusal | null {
    const po = q.get('po');
    if (!ID.test(q.get('i') || '') || !po) return { status: 400, code: 4400, reason: 'iframe-streaming needs i and po' };
    return hub.originAllowed(po, req) ? null : { status: 403, code: 4403, reason: 'origin not allowed' };
  },
};

export const iframeStreamingServer = (): ServerTransport => httpTransport('iframe-streaming', iframeFormat, 'stream');

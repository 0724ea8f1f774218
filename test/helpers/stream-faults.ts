/**
 * Helpers for the streaming rows of the matrix (test/matrix/streams.test.ts): a reference server
 * that logs every request it gets, msw response builders that misbehave like proxies do (buffer a
 * stream until it ends, cut it in the middle of a line), an ordered log of everything a socket
 * starts (WebSockets and HTTP requests, one array), and a storage whose writes can be counted.
 */
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bypass } from 'msw';
import { createServer } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import type { HttpRequest, WebSocketConstructor, WebSocketLike } from '../../src/env';
import type { TestServer } from './server';

// ---- a reference server that logs requests ------------------------------------------------------

export interface SeenRequest {
  method: string;
  /** Transport name: the path segment after the endpoint. */
  transport: string;
  query: URLSearchParams;
  at: number;
}

export interface LoggingServer extends TestServer {
  /** Every request under the endpoint, in arrival order (upgrades included, as method 'UPGRADE'). */
  requests: SeenRequest[];
  /** The GETs of `transport` (handshakes and continuing GETs). */
  gets(transport: string): SeenRequest[];
}

/**
 * The reference server on 127.0.0.1 (allowedOrigins '*'), attached to an HTTP server that logs
 * requests. `port` 0 (the default) picks a free port; a given port restarts a server there.
 */
export async function startLoggingServer(options: ServerOptions = {}, port = 0): Promise<LoggingServer> {
  const path = options.path || '/rt';
  const requests: SeenRequest[] = [];
  const http = createHttpServer();
  const rt = createServer({ allowedOrigins: '*', ...options });
  rt.attach(http);
  const note = (method: string, url: string): void => {
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    if (pathname.indexOf(path + '/') !== 0) return;
    requests.push({ method, transport: pathname.slice(path.length + 1), query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), at: performance.now() });
  };
  // Listeners added after attach() run alongside the server's own.
  http.on('request', (req) => note(req.method || '', req.url || ''));
  http.on('upgrade', (req) => note('UPGRADE', req.url || ''));
  await new Promise<void>((r) => http.listen(port, '127.0.0.1', () => r()));
  const bound = (http.address() as AddressInfo).port;
  return {
    rt,
    port: bound,
    url: 'http://127.0.0.1:' + bound + path,
    requests,
    gets: (t) => requests.filter((r) => r.method === 'GET' && r.transport === t),
    close: () =>
      new Promise<void>((resolve) => {
        rt.close();
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

// ---- proxies that misbehave (msw response builders) -----------------------------------------------

/** Upstream requests the fault handlers opened; `abortAll()` ends them (call it in afterEach). */
const upstreams = new Set<AbortController>();

export function abortUpstreams(): void {
  for (const c of upstreams) c.abort();
  upstreams.clear();
}

async function upstream(request: Request): Promise<{ res: Response; ctl: AbortController }> {
  const ctl = new AbortController();
  upstreams.add(ctl);
  // The client giving up (fetch-based EventSource) ends the upstream request too.
  request.signal?.addEventListener('abort', () => ctl.abort());
  const res = await fetch(bypass(request), { signal: ctl.signal });
  return { res, ctl };
}

function copyHeaders(res: Response): Headers {
  const h = new Headers();
  res.headers.forEach((v, k) => {
    if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') h.set(k, v);
  });
  return h;
}

/**
 * A proxy that buffers whole responses: the request reaches the server (which starts streaming),
 * but nothing reaches the client until the server ends the response — for a stream, never (here:
 * until the test aborts the upstream request or closes the server).
 */
export async function bufferedResponse(request: Request): Promise<Response> {
  const { res } = await upstream(request);
  const body = await res.arrayBuffer().catch(() => new ArrayBuffer(0));
  return new Response(body, { status: res.status, headers: copyHeaders(res) });
}

export interface CutState {
  /** Bytes passed to the client before the cut. */
  passed: number;
  /** The text passed, for checks (the cut is inside its last line). */
  text: string;
  /** The response was cut. */
  cut: boolean;
  /** The response ended without a cut (the server ended it first, e.g. a refusal). */
  ended: boolean;
}

/**
 * A proxy that cuts the response in the middle of a line: it passes everything up to and
 * including the `afterLines`-th line end, then `into` more bytes of the next line (which must be
 * longer), then ends the response cleanly (as a connection reset seen as a normal end would) and
 * drops the upstream request. `state` tells what was passed.
 */
export async function cutResponse(request: Request, afterLines: number, into = 7, state?: CutState): Promise<Response> {
  const { res, ctl } = await upstream(request);
  const s: CutState = state || { passed: 0, text: '', cut: false, ended: false };
  const reader = res.body!.getReader();
  let lines = 0;
  let inLine = 0;
  const dec = new TextDecoder();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch {
        s.ended = true;
        controller.close();
        return;
      }
      if (r.done) {
        s.ended = true;
        return controller.close();
      }
      const chunk = r.value;
      for (let i = 0; i < chunk.length; i++) {
        if (lines < afterLines) {
          if (chunk[i] === 10) lines++;
          continue;
        }
        if (chunk[i] === 10) {
          // The line was shorter than `into`: cut in the next one.
          inLine = 0;
          continue;
        }
        if (++inLine === into) {
          const part = chunk.subarray(0, i + 1);
          controller.enqueue(part);
          s.passed += part.length;
          s.text += dec.decode(part, { stream: true });
          s.cut = true;
          controller.close();
          ctl.abort();
          return;
        }
      }
      controller.enqueue(chunk);
      s.passed += chunk.length;
      s.text += dec.decode(chunk, { stream: true });
    },
    cancel() {
      ctl.abort();
    },
  });
  const headers = copyHeaders(res);
  // msw's XHR interceptor reads a mocked body to its end to learn its length unless the response
  // states one; a stated (never reached) length makes it hand the chunks over as they come, as a
  // real proxy would. The fetch path ignores it.
  headers.set('content-length', String(1 << 30));
  return new Response(body, { status: res.status, headers });
}

// ---- one ordered log of what a socket starts ---------------------------------------------------------

export interface NetEvent {
  kind: 'ws' | 'GET' | 'POST';
  url: string;
  at: number;
}

/** Wraps a WebSocket constructor and a request function so that both log into one array, in order. */
export function netLog(
  WebSocket: WebSocketConstructor | undefined,
  request: HttpRequest,
  now: () => number = () => performance.now(),
): { events: NetEvent[]; WebSocket: WebSocketConstructor | undefined; request: HttpRequest } {
  const events: NetEvent[] = [];
  const ws = WebSocket
    ? (function (url: string): WebSocketLike {
        events.push({ kind: 'ws', url, at: now() });
        return new WebSocket(url);
      } as unknown as WebSocketConstructor)
    : undefined;
  const req: HttpRequest = (method, url, body, timeoutMs, done) => {
    events.push({ kind: method, url, at: now() });
    return request(method, url, body, timeoutMs, done);
  };
  return { events, WebSocket: ws, request: req };
}

/** "ws websocket", "GET long-polling handshake", "POST long-polling": a log entry in words. */
export function describeNet(e: NetEvent): string {
  const m = /\/([a-z-]+)\?/.exec(e.url);
  const name = m ? m[1] : e.url;
  if (e.kind === 'ws') return 'ws ' + name;
  return e.kind + ' ' + name + (/[?&]v=1(&|$)/.test(e.url) ? ' handshake' : '');
}

// ---- storage -----------------------------------------------------------------------------------------

/** A localStorage stand-in that counts writes (shared by sockets to model one page's storage). */
export class MapStorage {
  readonly map = new Map<string, string>();
  writes = 0;
  getItem(key: string): string | null {
    return this.map.has(key) ? this.map.get(key)! : null;
  }
  setItem(key: string, value: string): void {
    this.writes++;
    this.map.set(key, value);
  }
}

import { FETCH } from './build';

/**
 * The environment the client runs in, injectable so that tests fake time and the network, and so
 * the same client runs in a browser and in Node. Everything that touches a global lives here.
 */

/**
 * An event handler property. Declared as a method's type so its parameter is bivariant: the
 * browser's `WebSocket` (`(ev: Event) => …`) and `ws`'s (`(ev: WebSocket.Event) => …`) both fit
 * without a cast, as `connect(url, { WebSocket })` in the README promises.
 */
type Handler<E> = { h(ev: E): void }['h'] | null;

/** The subset of the WebSocket API the client uses (browser `WebSocket` or the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  onopen: Handler<unknown>;
  onmessage: Handler<{ data: unknown }>;
  onclose: Handler<{ code: number; reason: string }>;
  onerror: Handler<unknown>;
  /** Set to 'arraybuffer': binary messages must arrive as ArrayBuffers. */
  binaryType?: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Result of an HTTP request: status 0 means the network failed or the request was aborted. */
export interface HttpResult {
  status: number;
  body: string;
  /** Value of the Retry-After header, when present. */
  retryAfter: string | null;
}

/** Starts an HTTP request; returns a function that aborts it (after which `done` is not called). */
export type HttpRequest = (
  method: 'GET' | 'POST',
  url: string,
  body: string | null,
  timeoutMs: number,
  done: (r: HttpResult) => void,
) => () => void;

/** The subset of EventSource the sse transport uses. */
export interface EventSourceLike {
  onmessage: ((ev: { data: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  addEventListener(type: string, fn: () => void): void;
  close(): void;
}

/** The subset of a page the iframe transport uses. */
export interface PageLike {
  document: {
    createElement(tag: 'a'): { href: string; protocol: string; host: string };
    createElement(tag: 'iframe'): {
      src: string;
      style: { display: string };
      contentWindow: unknown;
      onload: (() => void) | null;
      parentNode: { removeChild(n: unknown): void } | null;
    };
    body: { appendChild(n: unknown): void } | null;
    readyState: string;
  };
  addEventListener(type: 'message', fn: (ev: { data: unknown; origin: string; source: unknown }) => void): void;
  addEventListener(type: 'load', fn: () => void): void;
  removeEventListener(type: 'message', fn: (ev: { data: unknown; origin: string; source: unknown }) => void): void;
  removeEventListener(type: 'load', fn: () => void): void;
  location: { protocol: string; host: string };
}

export interface Env {
  /** Wall clock, ms. */
  now(): number;
  /** A number in [0, 1). */
  random(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  /** Run `fn` once the current task is done (a microtask where there are any). */
  defer(fn: () => void): void;
  clearTimeout(id: unknown): void;
  /** WebSocket constructor, or undefined when there is none. */
  WebSocket: WebSocketConstructor | undefined;
  /** XMLHttpRequest constructor (read incrementally by xhr-streaming), or undefined. */
  XMLHttpRequest: (new () => XhrLike) | undefined;
  /** EventSource constructor, or undefined. */
  EventSource: (new (url: string) => EventSourceLike) | undefined;
  /** The page (window with a document), or undefined outside a page. */
  page: PageLike | undefined;
  /** Where the transport that worked is remembered (localStorage when the page can use it). */
  storage: { getItem(key: string): string | null; setItem(key: string, value: string): void } | undefined;
  /**
   * HTTP requests: XMLHttpRequest, else fetch (not in the script-tag builds, src/build.ts), else
   * undefined.
   */
  request: HttpRequest | undefined;
  /**
   * Calls `fn` when the page may have slept or come back online (visibilitychange, online,
   * focus, pageshow, resume); returns an unsubscribe function. A no-op outside browsers.
   */
  onWake(fn: () => void): () => void;
  /** Where `debug: true` writes: console.debug, or nothing without a console. */
  log(message: string): void;
}

// Globals are read through this so the IIFE works in any host (window, worker, Node).
const g: Record<string, unknown> =
  typeof globalThis !== 'undefined'
    ? (globalThis as unknown as Record<string, unknown>)
    : typeof self !== 'undefined'
      ? (self as unknown as Record<string, unknown>)
      : {};

export interface XhrLike {
  open(method: string, url: string): void;
  send(body: string | null): void;
  abort(): void;
  setRequestHeader(name: string, value: string): void;
  getResponseHeader(name: string): string | null;
  onreadystatechange: (() => void) | null;
  onprogress?: (() => void) | null;
  overrideMimeType?(mime: string): void;
  readyState: number;
  status: number;
  responseText: string;
  timeout: number;
}

const FAILED: HttpResult = { status: 0, body: '', retryAfter: null };

/**
 * setTimeout with the delay clamped to the largest one hosts keep (2^31 - 1 ms, about 24.8 days):
 * beyond it they fire at once, so `requestTimeout: Infinity` would time every request out at once.
 */
function later(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
  return setTimeout(fn, Math.min(ms, 0x7fffffff));
}

/**
 * Calls `done` once: with the result (`finish`), or with status 0 after `timeoutMs` (then
 * `abort` runs); `finish(null)` cancels. A timer of our own: XHR's `timeout` is not honoured by
 * every engine for every state.
 */
function once(timeoutMs: number, done: (r: HttpResult) => void, abort: () => void): (r: HttpResult | null) => void {
  let finished = false;
  const finish = (r: HttpResult | null): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (r) done(r);
  };
  const timer = later(() => {
    finish(FAILED);
    abort();
  }, timeoutMs);
  return finish;
}

function xhrRequest(Xhr: new () => XhrLike): HttpRequest {
  return (method, url, body, timeoutMs, done) => {
    const x = new Xhr();
    const finish = once(timeoutMs, done, () => x.abort());
    x.open(method, url);
    // Frames are UTF-8 whatever charset a server or proxy labels them with.
    if (x.overrideMimeType) x.overrideMimeType('text/plain; charset=utf-8');
    // text/plain keeps the request "simple": no CORS preflight.
    if (body !== null) x.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');
    x.onreadystatechange = () => {
      if (x.readyState !== 4) return;
      let ra: string | null = null;
      try {
        ra = x.getResponseHeader('Retry-After');
      } catch {
        /* some engines throw on cross-origin headers */
      }
      finish({ status: x.status, body: x.responseText || '', retryAfter: ra });
    };
    x.send(body);
    return () => {
      finish(null);
      x.onreadystatechange = null;
      x.abort();
    };
  };
}

type FetchLike = (
  url: string,
  init: { method: string; body: string | null; headers: Record<string, string>; signal?: unknown },
) => Promise<{ status: number; text(): Promise<string>; headers: { get(n: string): string | null } }>;

function fetchRequest(f: FetchLike): HttpRequest {
  return (method, url, body, timeoutMs, done) => {
    const Ctl = g.AbortController as (new () => { signal: unknown; abort(): void }) | undefined;
    const ctl = Ctl ? new Ctl() : undefined;
    const finish = once(timeoutMs, done, () => ctl && ctl.abort());
    f(url, {
      method,
      body,
      headers: body !== null ? { 'Content-Type': 'text/plain;charset=UTF-8' } : {},
      signal: ctl && ctl.signal,
    }).then(
      (res) =>
        res.text().then(
          (text) => finish({ status: res.status, body: text, retryAfter: res.headers.get('Retry-After') }),
          () => finish(FAILED),
        ),
      () => finish(FAILED),
    );
    return () => {
      finish(null);
      if (ctl) ctl.abort();
    };
  };
}

/**
 * The endpoint as an absolute http(s) URL: ws(s):// becomes http(s)://, a path is resolved
 * against the page's location, a trailing slash is dropped.
 */
export function httpUrl(url: string): string {
  url = url.replace(/^ws(s?):/i, 'http$1:').replace(/\/+$/, '');
  const loc = g.location as { protocol: string; host: string } | undefined;
  if (url.charAt(0) === '/' && loc) url = (url.charAt(1) === '/' ? loc.protocol : loc.protocol + '//' + loc.host) + url;
  return url;
}

function deferrer(): (fn: () => void) => void {
  const qm = g.queueMicrotask as ((fn: () => void) => void) | undefined;
  const P = g.Promise as { resolve(): { then(fn: () => void): void } } | undefined;
  if (typeof qm === 'function') return (fn) => qm.call(g, fn);
  if (P) return (fn) => P.resolve().then(fn);
  return (fn) => setTimeout(fn, 0);
}

function localStore(): Env['storage'] {
  try {
    // Reading localStorage throws where storage is blocked (some privacy settings, sandboxed frames).
    return g.localStorage as Env['storage'];
  } catch {
    return undefined;
  }
}

// 'resume': a frozen page (Page Lifecycle API) runs again.
const WAKE_EVENTS = ['visibilitychange', 'online', 'focus', 'pageshow', 'resume'];

/** The environment read from the host's globals, with `overrides` applied (a key set to undefined removes it). */
export function defaultEnv(overrides?: Partial<Env>): Env {
  const Xhr = g.XMLHttpRequest as (new () => XhrLike) | undefined;
  const f = FETCH ? (g.fetch as FetchLike | undefined) : undefined;
  const doc = g.document as { addEventListener?: unknown; removeEventListener?: unknown } | undefined;
  type Target = { addEventListener(t: string, fn: () => void): void; removeEventListener(t: string, fn: () => void): void };
  const targets: Target[] = [];
  if (typeof g.addEventListener === 'function') targets.push(g as unknown as Target);
  if (doc && typeof doc.addEventListener === 'function') targets.push(doc as unknown as Target);
  const env: Env = {
    now: () => Date.now(),
    random: () => Math.random(),
    setTimeout: later,
    clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
    defer: deferrer(),
    WebSocket: g.WebSocket as WebSocketConstructor | undefined,
    XMLHttpRequest: Xhr,
    EventSource: g.EventSource as Env['EventSource'],
    page: doc && typeof g.addEventListener === 'function' ? (g as unknown as PageLike) : undefined,
    storage: localStore(),
    request: Xhr ? xhrRequest(Xhr) : f ? fetchRequest(f.bind(g) as FetchLike) : undefined,
    log(m) {
      const c = g.console as { debug(m: string): void } | undefined;
      if (c) c.debug('[cometsocket] ' + m);
    },
    onWake(fn) {
      for (let i = 0; i < targets.length; i++)
        for (let j = 0; j < WAKE_EVENTS.length; j++) targets[i].addEventListener(WAKE_EVENTS[j], fn);
      return () => {
        for (let i = 0; i < targets.length; i++)
          for (let j = 0; j < WAKE_EVENTS.length; j++) targets[i].removeEventListener(WAKE_EVENTS[j], fn);
      };
    },
  };
  const e = env as unknown as Record<string, unknown>;
  for (const k in overrides) e[k] = (overrides as Record<string, unknown>)[k];
  return env;
}

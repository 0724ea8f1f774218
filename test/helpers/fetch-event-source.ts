/**
 * A test-only EventSource for jsdom, which has none: `fetch` plus a ReadableStream reader, parsing
 * text/event-stream as the HTML standard describes it (fields `event`, `data`, `id`; comments;
 * CR, LF and CRLF line ends, also split across chunks; a blank line dispatches; an event left
 * unfinished by the end of the response is dropped; UTF-8 decoded with a streaming decoder).
 *
 * One deliberate difference from a browser's: it never reconnects by itself. A non-200 answer, a
 * Content-Type other than text/event-stream, a network error and the end of the response all fire
 * `error` and close it (readyState 2). The cometsocket sse client closes the EventSource on its
 * first error anyway (its URL cannot carry `ack`), so a browser's own reconnection never runs.
 * Like a browser's, it does not expose the HTTP status to its user (`status` is for the tests).
 *
 * `fetch` is read from the global at each request, so msw (which patches it) sees the requests.
 */
import type { EventSourceLike } from '../../src/env';

export interface SseEvent {
  type: string;
  data: string;
  lastEventId: string;
}

type Listener = (ev: SseEvent) => void;

export class FetchEventSource implements EventSourceLike {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;

  readyState = 0;
  /** HTTP status of the answer (0 until it arrives, or on a network error). Not in the real API. */
  status = 0;
  lastEventId = '';
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: string; type?: string; lastEventId?: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  /** Events dispatched so far (of any type). Not in the real API. */
  dispatched = 0;

  private readonly listeners: Record<string, Listener[]> = {};
  private readonly ctl = new AbortController();
  private buf = '';
  private lastCR = false;
  private data = '';
  private event = '';
  private id = '';

  constructor(readonly url: string) {
    void this.run();
  }

  addEventListener(type: string, fn: Listener): void {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }

  removeEventListener(type: string, fn: Listener): void {
    const l = this.listeners[type];
    if (l && l.indexOf(fn) >= 0) l.splice(l.indexOf(fn), 1);
  }

  close(): void {
    if (this.readyState === 2) return;
    this.readyState = 2;
    this.ctl.abort();
  }

  private async run(): Promise<void> {
    let res: Response;
    try {
      res = await globalThis.fetch(this.url, { headers: { Accept: 'text/event-stream' }, signal: this.ctl.signal });
    } catch {
      return this.fail();
    }
    this.status = res.status;
    const type = res.headers.get('content-type') || '';
    if (this.readyState === 2 || res.status !== 200 || !/^text\/event-stream/i.test(type) || !res.body) {
      if (res.body) res.body.cancel().catch(() => {});
      return this.fail();
    }
    this.readyState = 1;
    if (this.onopen) this.onopen({ type: 'open' });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if ((this.readyState as number) === 2) return;
        if (done) break;
        this.feed(dec.decode(value, { stream: true }));
        if ((this.readyState as number) === 2) return;
      }
      this.feed(dec.decode());
    } catch {
      /* aborted or reset: fail below */
    }
    reader.cancel().catch(() => {});
    this.fail();
  }

  private fail(): void {
    if (this.readyState === 2) return;
    this.readyState = 2;
    this.ctl.abort();
    const ev = { type: 'error' };
    if (this.onerror) this.onerror(ev);
    for (const fn of (this.listeners.error || []).slice()) fn(ev as SseEvent);
  }

  /** Split into lines (CR, LF, CRLF); keep an unfinished line for the next chunk. */
  private feed(chunk: string): void {
    if (this.lastCR && chunk.charCodeAt(0) === 10) chunk = chunk.slice(1);
    this.lastCR = false;
    const s = this.buf + chunk;
    let from = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(s.slice(from, i));
      if (this.readyState === 2) return;
      if (c === 13) {
        if (i + 1 === s.length) this.lastCR = true;
        else if (s.charCodeAt(i + 1) === 10) i++;
      }
      from = i + 1;
    }
    this.buf = s.slice(from);
  }

  private line(l: string): void {
    if (l === '') return this.dispatch();
    if (l.charCodeAt(0) === 58 /* : */) return;
    const k = l.indexOf(':');
    const field = k < 0 ? l : l.slice(0, k);
    let value = k < 0 ? '' : l.slice(k + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data += value + '\n';
    else if (field === 'id' && value.indexOf('\0') < 0) this.id = value;
    // 'retry' and unknown fields: ignored (this EventSource never reconnects).
  }

  private dispatch(): void {
    this.lastEventId = this.id;
    if (this.data === '') {
      this.event = '';
      return;
    }
    const data = this.data.slice(0, -1);
    const type = this.event || 'message';
    this.data = this.event = '';
    const ev: SseEvent = { type, data, lastEventId: this.lastEventId };
    this.dispatched++;
    if (type === 'message' && this.onmessage) this.onmessage(ev);
    if (this.readyState === 2) return;
    for (const fn of (this.listeners[type] || []).slice()) {
      if (this.readyState === 2) return;
      fn(ev);
    }
  }
}

/** An EventSource constructor for `env.EventSource` that records every instance it makes. */
export function recordingEventSource(): { ctor: new (url: string) => FetchEventSource; made: FetchEventSource[] } {
  const made: FetchEventSource[] = [];
  class Recorded extends FetchEventSource {
    constructor(url: string) {
      super(url);
      made.push(this);
    }
  }
  return { ctor: Recorded, made };
}

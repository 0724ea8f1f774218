/**
 * The browser client against a hostile, buggy or broken server: a fake clock (timers modelled on
 * Node's and browsers': a delay outside [1, 2^31 - 1] ms, NaN included, fires after 1 ms) and
 * scripted transports that hand the socket whatever frames a test wants, through the same hooks the
 * real transports use. No network. The first block holds the defects an audit found (each cell
 * failed, for the reason its name gives, before the fix it names).
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Env, HttpRequest, HttpResult } from '../../src/env';
import { Socket } from '../../src/socket';
import { longPolling } from '../../transports/long-polling/client';
import type { ClientTransport, Transport, TransportHooks } from '../../transports/types';

const MAX_DELAY = 2147483647;

/** A fake clock. `defer` runs before the next timer, like a microtask. */
class Clock {
  t = 0;
  fired = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void; n: number }>();
  private deferred: Array<() => void> = [];
  readonly errors: unknown[] = [];
  /** Run `fn` as the event loop would: an exception is reported (here: recorded), not thrown. */
  task(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.errors.push(e);
    }
    while (this.deferred.length) this.task(this.deferred.shift()!);
  }
  env(extra: Partial<Env> = {}): Partial<Env> {
    return {
      now: () => this.t,
      random: () => 0.5,
      setTimeout: (fn, ms) => {
        const d = ms >= 1 && ms <= MAX_DELAY ? ms : 1; // Node; browsers: 0
        const id = ++this.seq;
        this.timers.set(id, { at: this.t + d, fn, n: id });
        return id;
      },
      clearTimeout: (id) => void this.timers.delete(id as number),
      defer: (fn) => void this.deferred.push(fn),
      storage: undefined,
      onWake: () => () => {},
      WebSocket: undefined,
      XMLHttpRequest: undefined,
      EventSource: undefined,
      page: undefined,
      request: undefined,
      ...extra,
    };
  }
  /** Advance `ms`, running due timers in order; stops (and says so) past `limit` timers. */
  advance(ms: number, limit = 20000): void {
    const end = this.t + ms;
    for (let k = 0; k < limit; k++) {
      let next: { at: number; fn: () => void; n: number } | undefined;
      let id = 0;
      for (const [i, tm] of this.timers) if (tm.at <= end && (!next || tm.at < next.at || (tm.at === next.at && tm.n < next.n))) (next = tm), (id = i);
      if (!next) break;
      this.timers.delete(id);
      this.t = Math.max(this.t, next.at);
      this.fired++;
      this.task(next.fn);
    }
    this.t = Math.max(this.t, end);
  }
}

/** One scripted transport instance: the hooks the socket gave it, and what the socket wrote. */
interface Fake {
  name: string;
  query: string;
  hold: number;
  hooks: TransportHooks;
  sent: Array<string | Uint8Array>;
  last: string[];
  closed: boolean;
  t: ClientTransport;
}

function fakeTransport(name: string, made: Fake[], binary = false): Transport {
  return {
    name,
    supported: () => true,
    open(settings, hooks) {
      const f: Fake = { name, query: hooks.query(true), hold: settings.holdTimeout, hooks, sent: [], last: [], closed: false, t: null as unknown as ClientTransport };
      f.t = {
        binary,
        get canSend() {
          return !f.closed;
        },
        send: (b) => void f.sent.push(b),
        sendLast: (b) => void f.last.push(b),
        close: () => void (f.closed = true),
      };
      made.push(f);
      return f.t;
    },
  };
}

const open = (o: Record<string, unknown> = {}): string =>
  JSON.stringify({ t: 'o', v: 1, sid: 'S', tok: 'T', hb: 25000, hto: 20000, ack: 0, lim: { payload: 1 << 20, batch: 2 << 20, buffer: 4096 }, ...o });
const data = (s: number, d: string, b?: 1): string => JSON.stringify(b ? { t: 'd', s, d, b } : { t: 'd', s, d });

/** A socket on scripted transports, with every event logged in order. */
function rig(opts: { names?: string[]; binary?: boolean; options?: Record<string, unknown>; env?: Partial<Env> } = {}) {
  const clock = new Clock();
  const made: Fake[] = [];
  const transports = (opts.names || ['a']).map((n) => fakeTransport(n, made, opts.binary));
  const events: string[] = [];
  const got: unknown[] = [];
  const sock = new Socket('http://127.0.0.1:1/rt', { transports, rememberFor: 0, upgrade: false, parallelFallback: false, env: clock.env(opts.env), ...opts.options });
  for (const e of ['open', 'resume', 'reconnecting', 'session-lost', 'drain', 'close', 'transport'] as const)
    sock.on(e, ((x: { code?: number }) => events.push(e + (e === 'close' || e === 'reconnecting' ? ':' + x.code : '') + '@' + sock.state)) as unknown as () => void);
  sock.on('message', (m) => (got.push(m), events.push('message')));
  socks.push(sock);
  const feed = (f: Fake, ...lines: string[]): void => clock.task(() => f.hooks.data(lines.join('\n')));
  const last = (): Fake => made[made.length - 1];
  const drop = (f: Fake = last(), code = 1006): void => clock.task(() => f.hooks.closed({ code, reason: 'dropped' }));
  return { clock, made, sock, events, got, feed, last, drop };
}

let socks: Socket[] = [];
afterEach(() => {
  for (const s of socks) if (s.state !== 'closed') s.close();
  socks = [];
});

function pollNet(clock: Clock, answer: (m: string, url: string, body: string | null) => HttpResult | null) {
  const calls: Array<{ m: string; url: string; at: number }> = [];
  const request: HttpRequest = (m, url, body, _t, done) => {
    calls.push({ m, url, at: clock.t });
    let live = true;
    const r = answer(m, url, body);
    if (r) clock.env().setTimeout!(() => live && done(r), 1);
    return () => void (live = false);
  };
  return { request, calls };
}


/** A socket on long polling over a scripted `env.request` (answers after 1 ms; null: held forever). */
function lpRig(answer: (m: string, url: string) => HttpResult | null, options: Record<string, unknown> = {}) {
  const clock = new Clock();
  const net = pollNet(clock, answer);
  const sock = new Socket('http://127.0.0.1:1/rt', { transports: [longPolling], rememberFor: 0, env: clock.env({ request: net.request }), ...options });
  socks.push(sock);
  const reconnecting: Array<{ code: number; delay: number; reason: string }> = [];
  sock.on('reconnecting', (i) => reconnecting.push(i));
  return { clock, net, sock, reconnecting };
}
const ok = (body = ''): HttpResult => ({ status: 200, body, retryAfter: null });
const noContent: HttpResult = { status: 204, body: '', retryAfter: null };
const isHs = (url: string): boolean => /[?&]v=1/.test(url);

describe('defects found by a hostile-server audit, fixed', () => {
  it('a data frame with b:1 whose d is not base64 (was: an uncaught InvalidCharacterError, the message acknowledged but never emitted) → a malformed frame: 1002, a resume that acknowledges nothing', () => {
    const r = rig();
    r.feed(r.last(), open());
    r.feed(r.last(), data(1, '!!not base64!!', 1), data(2, 'two'));
    expect(r.got).toEqual([]);
    // PROTOCOL "Frames": a malformed frame is a broken transport (1002): resume, nothing acknowledged.
    expect(r.clock.errors).toEqual([]);
    if (r.events.indexOf('reconnecting:1002@reconnecting') < 0) r.drop();
    r.clock.advance(1000);
    expect(r.last().query).toMatch(/&ack=0$/);
  });

  it('a 4429 close frame whose ra is huge or not a number (was: a reconnect every 1-2 ms, the delay NaN or past what a timer holds) → not a number: a malformed frame, with backoff; huge: honoured up to an hour', () => {
    for (const ra of [1e12, 'soon', 1e300, -5, 1.5]) {
      const r = rig();
      const answered = new Set<Fake>();
      for (let i = 0; i < 2000; i++) {
        for (const f of r.made) if (!f.closed && !answered.has(f)) answered.add(f), r.feed(f, JSON.stringify({ t: 'c', c: 4429, r: 'busy', ra }));
        r.clock.advance(5);
      }
      // 10 s of backoff (base 500, cap 15000, random 0.5): 250 + 500 + 1000 + 2000 + 4000 ms → 6 handshakes.
      // An integer ra of 1e12 ms: one handshake, the next an hour later.
      expect({ ra, handshakes: r.made.length }).toEqual({ ra, handshakes: ra === 1e12 ? 1 : 6 });
      if (ra === 1e12) expect(r.events[0]).toBe('reconnecting:4429@reconnecting');
    }
  });

  it('HTTP 503 with Retry-After: 99999999 (or Infinity) (was: a reconnect every 2 ms, the delay past what a timer holds) → one hour', () => {
    for (const ra of ['99999999', 'Infinity']) {
      const r = lpRig(() => ({ status: 503, body: '{"t":"c","c":4429,"r":"busy"}', retryAfter: ra }));
      r.clock.advance(10000);
      expect({ ra, calls: r.net.calls.length, delays: r.reconnecting.map((x) => x.delay) }).toEqual({ ra, calls: 1, delays: [3600000] });
    }
  });

  it('an open frame whose heartbeat is already due (was: the transport declared dead inside _onOpen, "open" emitted after "reconnecting") → "open", then the reconnect; hb = 0 is a malformed open frame', () => {
    const r = rig();
    r.feed(r.last(), open({ hb: 1, hto: 0 }));
    r.clock.advance(1);
    expect(r.events.slice(0, 3)).toEqual(['transport@open', 'open@open', 'reconnecting:4408@reconnecting']);
    const z = rig();
    z.feed(z.last(), open({ hb: 0, hto: 0 }));
    expect(z.events).toEqual(['reconnecting:1002@reconnecting']);
  });

  it('an open frame with hb = 2^40 (was: the heartbeat timer past what a timer holds, re-armed every ms; polls held past it) → both wait 2^31 - 1 ms at most', () => {
    const r = rig();
    r.feed(r.last(), open({ hb: 2 ** 40 }));
    r.drop();
    r.clock.advance(1000);
    r.feed(r.last(), open({ hb: 2 ** 40, r: 1 }));
    const before = r.clock.fired;
    r.clock.advance(10000);
    expect(r.clock.fired - before).toBeLessThan(10);
    expect(r.last().hold).toBeLessThanOrEqual(MAX_DELAY);
  });

  it('close() in a "transport" listener (was: "open" after "close"), close() in a "resume" listener with a full send buffer (was: "drain" after "close") → nothing after "close"', () => {
    const a = rig();
    a.sock.once('transport', () => a.sock.close());
    a.feed(a.last(), open());
    const b = rig({ options: { maxBufferedMessages: 2 } });
    b.sock.send('1'), b.sock.send('2');
    expect(b.sock.send('3')).toBe(false);
    b.feed(b.last(), open());
    b.drop();
    b.clock.advance(1000);
    b.sock.on('resume', () => b.sock.close());
    b.feed(b.last(), open({ r: 1, ack: 2 }));
    for (const { events } of [a, b]) expect(events.slice(events.findIndex((e) => e.startsWith('close')) + 1)).toEqual([]);
  });

  it('a throwing listener (was: a "message" one dropped the rest of its batch, a "transport" one swallowed "open") → the socket carries on; the error is thrown again from a timer', () => {
    const a = rig();
    a.sock.once('message', () => {
      throw new Error('application bug');
    });
    a.feed(a.last(), open(), data(1, 'a'), data(2, 'b'), data(3, 'c'));
    a.feed(a.last(), data(4, 'd'));
    expect(a.events.filter((e) => e.startsWith('reconnecting'))).toEqual([]);
    expect(a.got).toEqual(['a', 'b', 'c', 'd']);
    const b = rig();
    b.sock.once('transport', () => {
      throw new Error('application bug');
    });
    b.feed(b.last(), open());
    b.drop();
    b.clock.advance(1000);
    b.feed(b.last(), open({ r: 1 }));
    expect(b.events.filter((e) => /^(open|resume)/.test(e))).toEqual(['open@open', 'resume@open']);
    a.clock.advance(1);
    expect(a.clock.errors.map((e) => (e as Error).message)).toEqual(['application bug']);
  });

  it('long polling × a throwing "open" listener (was: the handshake callback unwound before ready() and the next poll: nothing sent or polled for hb + hto) → polls and sends', () => {
    const r = lpRig((m, url) => (m === 'POST' ? noContent : isHs(url) ? ok(open()) : null));
    r.sock.once('open', () => {
      throw new Error('application bug');
    });
    r.sock.send('hello');
    r.clock.advance(5000);
    expect(r.net.calls.map((c) => c.m).sort()).toEqual(['GET', 'GET', 'POST']);
  });

  it('long polling × an empty poll answered 204 (was: a broken transport, a reconnect after every poll) → an empty batch (PROTOCOL.md, "HTTP status codes": 200, 204 = success); an empty handshake → 1002', () => {
    const r = lpRig((m, url) => (m === 'POST' ? noContent : isHs(url) ? ok(open()) : noContent));
    r.clock.advance(3000);
    expect(r.reconnecting).toEqual([]);
    // Answered empty at once: the polls start pollInterval (1 s) apart, and, no frame coming, the
    // heartbeat (hb + hto) ends the transport (was: ~500 polls a second, the heartbeat fed by them).
    const z = lpRig((m, url) => (m === 'POST' ? noContent : isHs(url) ? ok(open({ hb: 2000, hto: 1000 })) : ok('')));
    z.clock.advance(2900);
    expect(z.net.calls.filter((c) => c.m === 'GET').length).toBe(4);
    z.clock.advance(200);
    expect(z.reconnecting.map((x) => x.code)).toEqual([4408]);
    const e = lpRig((m) => (m === 'POST' ? noContent : ok('')));
    e.clock.advance(10);
    expect(e.reconnecting.map((x) => x.code + ' ' + x.reason)).toEqual(['1002 empty handshake']);
  });

  it('an open frame with an empty sid (was: accepted; the next reconnect opened a new session silently, its messages dropped as replays) → a malformed open frame', () => {
    const r = rig();
    r.feed(r.last(), open({ sid: '' }), data(1, 'one'));
    expect(r.events).toEqual(['reconnecting:1002@reconnecting']);
    expect(r.got).toEqual([]);
  });

  it("a race loser failing during the next race (was: counted as that race's failure: the fallback started early, a live candidate killed by a spurious reconnect) → ignored by that race", () => {
    const r = rig({ names: ['a', 'b'], options: { parallelFallback: true } });
    const [a0, b0] = r.made; // first visit: both start at once
    r.feed(b0, open()); // b wins; a0 is kept until its own open frame
    r.drop(b0);
    r.clock.advance(251); // the resume race starts with a (head start 250 ms)
    const a1 = r.last();
    r.drop(a0); // the old loser fails now
    expect(r.made.length).toBe(3); // b must wait for a1's head start
    r.clock.advance(250); // b1 starts alongside
    r.drop(a1);
    expect(r.events.filter((e) => e.startsWith('reconnecting'))).toHaveLength(1);
    expect(r.last().closed).toBe(false);
  });

  it('close() on a closed socket (was: one more farewell POST per call) → nothing', () => {
    const r = lpRig((m, url) => (m === 'POST' ? noContent : isHs(url) ? ok(open()) : null));
    r.clock.advance(10);
    r.sock.close();
    r.clock.advance(10);
    const n = r.net.calls.length;
    r.sock.close();
    r.sock.close();
    expect(r.net.calls.slice(n)).toEqual([]);
  });

  it('a server that accepts and drops every session at once (was: attempt 1 after every open, a reconnect every backoffBase) → the backoff grows; a transport that stayed open for 2·backoffBase starts it again', () => {
    const r = rig();
    const seen: Array<[number, number]> = [];
    r.sock.on('reconnecting', (i) => seen.push([i.attempt, i.delay]));
    for (let k = 0; k < 5; k++) {
      r.feed(r.last(), open(k ? { r: 1 } : {}));
      r.drop();
      r.clock.advance(seen[seen.length - 1][1] + 1); // the next attempt starts
    }
    // random 0.5: half of min(15000, 500 * 2^(n-1)).
    expect(seen).toEqual([[1, 250], [2, 500], [3, 1000], [4, 2000], [5, 4000]]);
    r.feed(r.last(), open({ r: 1 }));
    r.clock.advance(999);
    r.feed(r.last(), '{"t":"p"}');
    r.drop();
    expect(seen[5]).toEqual([6, 7500]);
    r.clock.advance(7501);
    // A link that breaks after a second or more (was: backoffCap, 15 s, so a link reset every
    // 1.5 s waited up to 15 s each time): the next reconnect is quick again.
    r.feed(r.last(), open({ r: 1 }));
    r.clock.advance(1000);
    r.feed(r.last(), '{"t":"p"}');
    r.drop();
    expect(seen[6]).toEqual([1, 250]);
  });
});

describe('behaves (hostile input the client handles)', () => {
  it('random batches of valid, out-of-order, duplicate, impossible and malformed frames, dropped transports, resumes (property) → nothing thrown, exactly once in order, nothing after close, open/resume/message only while open', () => {
    const frame = fc.oneof(
      fc.integer({ min: 1, max: 12 }).map((n) => data(n, 'm' + n)),
      fc.integer({ min: 0, max: 12 }).map((a) => JSON.stringify({ t: 'a', a })),
      fc.constant('{"t":"p"}'),
      fc.constantFrom(0, 1000, 1001, 1002, 1006, 1011, 3000, 4100, 4400, 4404, 4408, 4409, 4429, 4501, 4999).map((c) => JSON.stringify({ t: 'c', c, r: 'x' })),
      fc.constantFrom('', '<html>', '[]', 'null', '1', '"o"', '{"t":"x"}', open(), open({ r: 1 }), open({ sid: 'Z' }), open({ v: 2 }), '{"t":"d","s":0,"d":""}'),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.array(frame, { maxLength: 6 }), fc.boolean()), { maxLength: 25 }), (steps) => {
        const r = rig({ names: ['a', 'b'] });
        for (let i = 0; i < 3; i++) r.sock.send('c' + i);
        const fed = new Set<Fake>();
        for (const [batch, drop] of steps) {
          const f = r.made.filter((m) => !m.closed).pop();
          if (f && !fed.has(f)) fed.add(f), r.feed(f, r.sock.id ? open({ r: 1 }) : open());
          if (f) r.feed(f, ...batch);
          if (f && drop && !f.closed) r.drop(f);
          r.clock.advance(300);
        }
        expect(r.clock.errors).toEqual([]);
        // Each session numbers its messages from 1: a new one starts after 'session-lost'.
        for (const part of r.events.join(' ').split('session-lost')) {
          const n = part.split(' ').filter((e) => e === 'message').length;
          const nums = (r.got.splice(0, n) as string[]).map((m) => +m.slice(1));
          expect(nums).toEqual(nums.map((_, i) => i + 1));
        }
        const count = (p: string): number => r.events.filter((e) => e.startsWith(p)).length;
        expect(count('open')).toBeLessThanOrEqual(count('session-lost') + 1);
        const ci = r.events.findIndex((e) => e.startsWith('close'));
        if (ci >= 0) expect(r.events.slice(ci + 1)).toEqual([]);
        for (const e of r.events) if (/^(open|resume|message)/.test(e)) expect(e).not.toMatch(/@(closed|reconnecting)/);
        if (r.sock.state !== 'closed') r.sock.close();
      }),
      { numRuns: 300 },
    );
  });
  it('malformed binary messages (no LF, header not a data frame, b missing, d present, empty) → 1002 and a resume; nothing thrown', () => {
    const bad = ['{"t":"d","s":1,"b":1}', '{"t":"a","a":1}\nx', '{"t":"d","s":1}\nx', '{"t":"d","s":1,"b":1,"d":""}\nx', '', '{"t":"d","s":1,"b":1}    ' + ' '.repeat(60) + '\nx'];
    for (const m of bad) {
      const r = rig({ binary: true });
      r.feed(r.last(), open());
      r.clock.task(() => r.last().hooks.data(new TextEncoder().encode(m).buffer as ArrayBuffer));
      expect({ m, ev: r.events.slice(2), errors: r.clock.errors }).toEqual({ m, ev: ['reconnecting:1002@reconnecting'], errors: [] });
    }
  });

  it('a transport calling its hooks after close() (data, closed, writable) and 10,000 pings in one batch → ignored; one pong', () => {
    const r = rig();
    const f = r.last();
    r.feed(f, open(), Array(10000).fill('{"t":"p"}').join('\n'));
    expect(f.sent).toEqual(['{"t":"P"}']);
    r.sock.close();
    r.clock.task(() => (f.hooks.data(data(1, 'late')), f.hooks.writable(), f.hooks.closed({ code: 1006, reason: 'late' })));
    r.clock.advance(60000);
    expect(r.events).toEqual(['transport@open', 'open@open', 'close:1000@closed']);
    expect(r.clock.errors).toEqual([]);
  });

  it('close() and send() inside a "message" listener → no message after close, the close frame carries the queued send', () => {
    const r = rig();
    r.sock.on('message', (m) => {
      if (m === 'b') expect(r.sock.send('reply')).toBe(true), r.sock.close(4000, 'bye');
    });
    r.feed(r.last(), open(), data(1, 'a'), data(2, 'b'), data(3, 'c'));
    expect(r.got).toEqual(['a', 'b']);
    expect(r.events.slice(-1)).toEqual(['close:4000@closed']);
    expect(r.last().last[0].split('\n').map((l) => JSON.parse(l).t)).toEqual(['a', 'd', 'c']);
  });
});

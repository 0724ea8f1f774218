import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { nextUpgrade, raceOrder, recall, remember, Race, supportedTransports, type StorageLike } from '../../src/negotiate';
import type { Env } from '../../src/env';
import type { Transport } from '../../transports/types';

function fakeTransport(name: string, supported: (env: Env) => boolean, stream?: boolean): Transport {
  return {
    name,
    stream,
    supported,
    open() {
      throw new Error('not opened in unit tests');
    },
  };
}

const env = { WebSocket: undefined, request: undefined } as unknown as Env;

describe('supportedTransports', () => {
  it('keeps the supported transports, in the order given', () => {
    const a = fakeTransport('a', () => true);
    const b = fakeTransport('b', () => false);
    const c = fakeTransport('c', () => true);
    const d = fakeTransport('d', () => false);
    expect(supportedTransports([a, b, c, d], env)).toEqual([a, c]);
    expect(supportedTransports([d, c, b, a], env)).toEqual([c, a]);
  });

  it('asks each transport about the environment it was given', () => {
    const seen: Env[] = [];
    const t = fakeTransport('t', (e) => (seen.push(e), e.WebSocket !== undefined));
    expect(supportedTransports([t], env)).toEqual([]);
    const withWs = { ...env, WebSocket: function () {} } as unknown as Env;
    expect(supportedTransports([t], withWs)).toEqual([t]);
    expect(seen).toEqual([env, withWs]);
  });

  it('returns an empty list when nothing is supported or nothing is given', () => {
    expect(supportedTransports([], env)).toEqual([]);
    expect(supportedTransports([fakeTransport('x', () => false)], env)).toEqual([]);
  });

  it('returns a new array, leaving the input alone', () => {
    const list = [fakeTransport('a', () => true), fakeTransport('b', () => false)];
    const copy = [...list];
    const out = supportedTransports(list, env);
    expect(out).not.toBe(list);
    expect(list).toEqual(copy);
  });
});

describe('Race', () => {
  it('starts candidates in order, then returns -1', () => {
    const r = new Race(3);
    expect(r.start()).toBe(0);
    expect(r.start()).toBe(1);
    expect(r.start()).toBe(2);
    expect(r.start()).toBe(-1);
    expect(r.start()).toBe(-1);
    expect(r.live()).toBe(3);
    expect(r.lost()).toBe(false);
  });

  it('a failure with nothing else live starts the next at once', () => {
    const r = new Race(3);
    expect(r.start()).toBe(0);
    expect(r.live()).toBe(1);
    expect(r.failed()).toBe(true);
    expect(r.live()).toBe(0);
    expect(r.lost()).toBe(false);
    expect(r.start()).toBe(1);
  });

  // Was: false while another candidate was live. Behind a buffering proxy the WebSocket upgrade
  // fails at once while the stream started alongside stays silent, so long polling waited out the
  // stream's whole head start (first message 275 ms against Socket.IO's 62, bench/browser).
  it('a failure while another candidate is live starts the next at once too', () => {
    const r = new Race(3);
    r.start();
    expect(r.headStartOver()).toBe(true);
    r.start();
    expect(r.failed()).toBe(true); // candidate 1 still racing, candidate 2 starts alongside
    expect(r.live()).toBe(1);
    expect(r.start()).toBe(2);
    expect(r.failed()).toBe(false); // nothing left to start
  });

  it('headStartOver says whether any candidate is left to start', () => {
    const r = new Race(2);
    expect(r.headStartOver()).toBe(true);
    r.start();
    expect(r.headStartOver()).toBe(true);
    r.start();
    expect(r.headStartOver()).toBe(false);
  });

  it('headStartOver does not itself start a candidate', () => {
    const r = new Race(2);
    r.start();
    r.headStartOver();
    r.headStartOver();
    expect(r.live()).toBe(1);
    expect(r.start()).toBe(1);
  });

  it('is lost only when every candidate started and failed', () => {
    const r = new Race(3);
    for (let i = 0; i < 3; i++) r.start();
    expect(r.failed()).toBe(false);
    expect(r.lost()).toBe(false);
    expect(r.failed()).toBe(false);
    expect(r.lost()).toBe(false);
    expect(r.failed()).toBe(false); // last failure: nothing left to start
    expect(r.lost()).toBe(true);
    expect(r.live()).toBe(0);
  });

  it('sequential fallback: each failure starts the next until the race is lost', () => {
    const r = new Race(3);
    expect(r.start()).toBe(0);
    expect(r.failed()).toBe(true);
    expect(r.start()).toBe(1);
    expect(r.failed()).toBe(true);
    expect(r.start()).toBe(2);
    expect(r.lost()).toBe(false);
    expect(r.failed()).toBe(false);
    expect(r.lost()).toBe(true);
  });

  it('a race of one', () => {
    const r = new Race(1);
    expect(r.start()).toBe(0);
    expect(r.headStartOver()).toBe(false);
    expect(r.lost()).toBe(false);
    expect(r.failed()).toBe(false);
    expect(r.lost()).toBe(true);
  });

  it('a race of zero is lost at once', () => {
    const r = new Race(0);
    expect(r.lost()).toBe(true);
    expect(r.start()).toBe(-1);
    expect(r.headStartOver()).toBe(false);
  });

  it('never stalls and never starts a candidate twice, whatever the timing (property)', () => {
    // A driver that obeys the race: start 0; when failed() or headStartOver() says so, start the
    // next. Events are failures of live candidates and head-start timers, in any order.
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.record({ fail: fc.boolean(), which: fc.nat() }), { maxLength: 40 }),
        (count, events) => {
          const r = new Race(count);
          const started: number[] = [];
          const live = new Set<number>();
          const begin = (): void => {
            const i = r.start();
            expect(i).toBe(started.length < count ? started.length : -1);
            if (i >= 0) {
              started.push(i);
              live.add(i);
            }
          };
          begin();
          for (const e of events) {
            if (r.lost()) break;
            if (e.fail && live.size) {
              const victim = [...live][e.which % live.size];
              live.delete(victim);
              const next = r.failed();
              expect(next).toBe(started.length < count);
              if (next) begin();
            } else if (!e.fail) {
              const next = r.headStartOver();
              expect(next).toBe(started.length < count);
              if (next) begin();
            }
            expect(r.live()).toBe(live.size);
            // Not lost means something is racing: the socket is never left waiting for nothing.
            expect(r.lost() || live.size > 0).toBe(true);
            expect(r.lost()).toBe(started.length === count && live.size === 0);
          }
          expect(started).toEqual(started.map((_, i) => i));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('supportedTransports with streaming transports', () => {
  const env = {} as Env;
  const yes = () => true;
  const no = () => false;
  it('keeps only the first supported streaming transport, in place', () => {
    const list = [fakeTransport('ws', no), fakeTransport('sse', no, true), fakeTransport('xhr', yes, true), fakeTransport('iframe', yes, true), fakeTransport('lp', yes)];
    expect(supportedTransports(list, env).map((t) => t.name)).toEqual(['xhr', 'lp']);
  });
  it('keeps a forced streaming transport alone', () => {
    expect(supportedTransports([fakeTransport('iframe', yes, true)], env).map((t) => t.name)).toEqual(['iframe']);
  });
});

describe('remembering what worked', () => {
  const list = [fakeTransport('websocket', () => true), fakeTransport('sse', () => true, true), fakeTransport('long-polling', () => true)];
  const store = (): StorageLike & { data: Record<string, string> } => {
    const data: Record<string, string> = {};
    return { data, getItem: (k) => (k in data ? data[k] : null), setItem: (k, v) => void (data[k] = v) };
  };
  it('recalls a remembered transport until it expires', () => {
    const s = store();
    remember(s, 'k', 'long-polling', 1000, 500);
    expect(recall(s, 'k', list, 1200)).toBe(2);
    expect(recall(s, 'k', list, 1500)).toBe(-1);
    expect(recall(s, 'other', list, 1200)).toBe(-1);
  });
  it('ignores unknown names, garbage, missing or throwing storage', () => {
    const s = store();
    remember(s, 'k', 'carrier-pigeon', 0, 1e9);
    expect(recall(s, 'k', list, 1)).toBe(-1);
    s.data.k = '{not json';
    expect(recall(s, 'k', list, 1)).toBe(-1);
    expect(recall(undefined, 'k', list, 1)).toBe(-1);
    const throwing: StorageLike = { getItem: () => { throw new Error('blocked'); }, setItem: () => { throw new Error('full'); } };
    expect(recall(throwing, 'k', list, 1)).toBe(-1);
    expect(() => remember(throwing, 'k', 'sse', 1, 1)).not.toThrow();
  });
  it('puts the remembered candidate first and keeps the rest in order', () => {
    expect(raceOrder(4, -1)).toEqual([0, 1, 2, 3]);
    expect(raceOrder(4, 2)).toEqual([2, 0, 1, 3]);
    expect(raceOrder(4, 0)).toEqual([0, 1, 2, 3]);
  });
});

describe('nextUpgrade', () => {
  it('probes every better candidate, best first, then says none is left', () => {
    expect(nextUpgrade(0, -1)).toBe(-1);
    expect(nextUpgrade(3, -1)).toBe(0);
    expect(nextUpgrade(3, 0)).toBe(1);
    expect(nextUpgrade(3, 1)).toBe(2);
    expect(nextUpgrade(3, 2)).toBe(-1);
  });
});

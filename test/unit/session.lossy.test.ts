/**
 * Two Session objects connected by a simulated lossy network.
 *
 * Model: a transport carries batches in each direction, in order and without loss while it lives.
 * When it dies, each batch still in flight is either lost or becomes "stale": it may still arrive
 * later (a late HTTP response, a slow proxy), any number of times, in any order, possibly split
 * into single frames. A dying transport may also deliver a prefix of the batch it was carrying.
 * After a death both sides resume: each calls resume(peer.receivedSeq) (the handshake carries
 * each side's position). A long-poll is modelled by rewind(peer.receivedSeq) on the live transport.
 * A Gap seen on receipt makes the receiver resynchronise (kill the transport and resume).
 *
 * Invariants checked after every step: every message delivered is the next one the peer pushed
 * (never a duplicate, never out of order), the sender never releases a message the receiver does
 * not hold, the buffer stays within its limits and its byte count is exact, a live transport never
 * shows a gap, an ack never acknowledges more than was sent. At the end, after a final clean resume
 * and flush: each side delivered exactly what the other pushed, once, in order, and both buffers
 * are empty.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBatch, decodeBinary, encodeFrame, type DataFrame } from '../../src/frame';
import { Receipt, Session, type SessionLimits } from '../../src/session';

type Side = 0 | 1;

type Op =
  | { k: 'push'; side: Side; d: string; bin: boolean; maxFrame: number | null }
  | { k: 'write'; side: Side; max: number | null; bin?: boolean }
  | { k: 'deliver'; side: Side; n: number }
  | { k: 'kill'; keep: number; split: boolean; partial: number }
  | { k: 'stale'; side: Side; idx: number; keep: boolean }
  | { k: 'poll'; side: Side };

interface Peer {
  name: string;
  s: Session;
  /** Keys of the messages this side pushed (accepted by push), in sequence order. */
  pushed: string[];
  /** Keys of the messages this side delivered to its application. */
  delivered: string[];
  /** Batches this side wrote on the live transport, not yet delivered. */
  live: string[];
  /** Batches this side wrote on dead transports that may still arrive. */
  stale: string[];
}

interface Stats {
  liveFrames: number;
  staleDeliveries: number;
  duplicates: number;
  gaps: number;
  resumes: number;
  rejectedFull: number;
  rejectedBig: number;
}

const key = (f: { d: string; b?: 1 }): string => (f.b ? 'b:' : 't:') + f.d;

const side = fc.constantFrom<Side>(0, 1);

const payload = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).map((d) => ({ d, bin: false })) },
  { weight: 1, arbitrary: fc.constantFrom('\n', 'a\nb', '"\\n"', '').map((d) => ({ d, bin: false })) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 10 }).map((u) => ({ d: Buffer.from(u).toString('base64'), bin: true })) },
);

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({ side, p: payload, maxFrame: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: 20, max: 80 }) }) })
      .map(({ side, p, maxFrame }): Op => ({ k: 'push', side, d: p.d, bin: p.bin, maxFrame })),
  },
  {
    weight: 5,
    arbitrary: fc
      .record({ side, max: fc.option(fc.integer({ min: 1, max: 300 }), { freq: 2 }), bin: fc.boolean() })
      .map(({ side, max, bin }): Op => ({ k: 'write', side, max, bin })),
  },
  {
    weight: 5,
    arbitrary: fc.record({ side, n: fc.integer({ min: 1, max: 3 }) }).map(({ side, n }): Op => ({ k: 'deliver', side, n })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ keep: fc.nat({ max: 255 }), split: fc.boolean(), partial: fc.nat({ max: 6 }) })
      .map(({ keep, split, partial }): Op => ({ k: 'kill', keep, split, partial })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ side, idx: fc.nat({ max: 50 }), keep: fc.boolean() })
      .map(({ side, idx, keep }): Op => ({ k: 'stale', side, idx, keep })),
  },
  { weight: 1, arbitrary: side.map((side): Op => ({ k: 'poll', side })) },
);

const limits: fc.Arbitrary<SessionLimits> = fc.record({
  maxMessages: fc.integer({ min: 1, max: 10 }),
  maxBytes: fc.integer({ min: 60, max: 800 }),
});

/** A cheap assertion for the hot path (expect() per step makes the property slow). */
function must(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

function utf8(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function simulate(lim: SessionLimits, ops: readonly Op[]): Stats {
  const peers: [Peer, Peer] = [
    { name: 'A', s: new Session(lim), pushed: [], delivered: [], live: [], stale: [] },
    { name: 'B', s: new Session(lim), pushed: [], delivered: [], live: [], stale: [] },
  ];
  const stats: Stats = { liveFrames: 0, staleDeliveries: 0, duplicates: 0, gaps: 0, resumes: 0, rejectedFull: 0, rejectedBig: 0 };

  /** The handshake of a new transport: each side learns the other's position. */
  function handshake(): void {
    const [a, b] = peers;
    const ra = a.s.receivedSeq;
    const rb = b.s.receivedSeq;
    must(a.s.resume(rb), 'A.resume(B.receivedSeq) refused');
    must(b.s.resume(ra), 'B.resume(A.receivedSeq) refused');
    must(a.s.ackOwed() === 0 && b.s.ackOwed() === 0, 'an ack is still owed after the handshake');
    stats.resumes++;
  }

  /** The transport died without delivering anything more; a new one attaches. */
  function resync(): void {
    for (const p of peers) p.live = [];
    handshake();
  }

  /**
   * `to` receives frames written by `from`. Returns false when a Gap was seen (the receiver
   * then drops the rest and resynchronises, which the caller does).
   */
  function receive(to: Peer, from: Peer, text: string, onLive: boolean): boolean {
    for (const f of decodeBatch(text)) {
      if (f.t === 'd') {
        const before = to.s.receivedSeq;
        const r = to.s.receive(f);
        if (r === Receipt.Deliver) {
          must(f.s === before + 1, `${to.name} delivered seq ${f.s} after ${before}`);
          must(key(f) === from.pushed[f.s - 1], `${to.name} delivered the wrong message for seq ${f.s}`);
          to.delivered.push(key(f));
        } else if (r === Receipt.Duplicate) {
          must(f.s <= before, `${to.name} called seq ${f.s} a duplicate after ${before}`);
          stats.duplicates++;
        } else {
          must(r === Receipt.Gap, `unknown receipt ${r}`);
          must(f.s > before + 1, `${to.name} called seq ${f.s} a gap after ${before}`);
          must(!onLive, `${to.name} saw a gap (seq ${f.s} after ${before}) on a live transport`);
          stats.gaps++;
          return false;
        }
        must(to.s.receivedSeq === to.delivered.length, 'receivedSeq out of step');
        if (onLive) stats.liveFrames++;
      } else if (f.t === 'a') {
        must(f.a <= from.s.receivedSeq, `${from.name} acknowledged ${f.a} but received ${from.s.receivedSeq}`);
        const r = to.s.acked(f.a);
        must(r >= 0, `${to.name}.acked(${f.a}) = ${r}`);
      } else {
        throw new Error('unexpected frame ' + encodeFrame(f));
      }
    }
    return true;
  }

  function check(): void {
    for (const i of [0, 1] as const) {
      const me = peers[i];
      const peer = peers[1 - i];
      const s = me.s;
      must(s.receivedSeq === me.delivered.length, `${me.name}.receivedSeq ${s.receivedSeq} != delivered ${me.delivered.length}`);
      must(s.bufferedCount() <= lim.maxMessages, `${me.name} buffers ${s.bufferedCount()} messages`);
      must(s.bufferedBytes <= lim.maxBytes, `${me.name} buffers ${s.bufferedBytes} bytes`);
      const un = s.unacked();
      must(un.length === s.bufferedCount(), 'unacked().length != bufferedCount');
      const released = me.pushed.length - un.length;
      must(released <= peer.s.receivedSeq, `${me.name} released ${released} messages but ${peer.name} holds ${peer.s.receivedSeq}`);
      let bytes = 0;
      for (let j = 0; j < un.length; j++) {
        const u = un[j];
        const f: DataFrame = typeof u === 'string' ? { t: 'd', s: released + j + 1, d: u } : { t: 'd', s: released + j + 1, d: Buffer.from(u).toString('base64'), b: 1 };
        must(key(f) === me.pushed[f.s - 1], `${me.name} buffers the wrong message for seq ${f.s}`);
        bytes += utf8(encodeFrame(f));
      }
      must(s.bufferedBytes === bytes, `${me.name}.bufferedBytes ${s.bufferedBytes} != ${bytes}`);
      must(s.ackOwed() >= 0, 'negative ackOwed');
    }
  }

  for (const o of ops) {
    switch (o.k) {
      case 'push': {
        const me = peers[o.side];
        const before = { count: me.s.bufferedCount(), bytes: me.s.bufferedBytes };
        const seq = me.pushed.length + 1;
        const frame: DataFrame = o.bin ? { t: 'd', s: seq, d: o.d, b: 1 } : { t: 'd', s: seq, d: o.d };
        const size = utf8(encodeFrame(frame));
        const r = me.s.push(o.bin ? new Uint8Array(Buffer.from(o.d, 'base64')) : o.d, o.maxFrame ?? Infinity);
        if ((o.maxFrame !== null && size > o.maxFrame) || size > lim.maxBytes) {
          must(r === -2, `push of a ${size}-byte frame (maxFrame ${o.maxFrame}, maxBytes ${lim.maxBytes}) returned ${r}`);
          stats.rejectedBig++;
        } else if (before.count >= lim.maxMessages || before.bytes + size > lim.maxBytes) {
          must(r === -1, `push into a full buffer returned ${r}`);
          stats.rejectedFull++;
        } else {
          must(r === size, `push returned ${r}, frame is ${size} bytes`);
          me.pushed.push(key(frame));
        }
        if (r < 0) {
          must(me.s.bufferedCount() === before.count && me.s.bufferedBytes === before.bytes, 'a rejected push changed the buffer');
        }
        break;
      }
      case 'write': {
        const me = peers[o.side];
        const max = o.max ?? Infinity;
        const t = me.s.take(max, !!o.bin);
        let b: string;
        if (typeof t === 'string') b = t;
        else {
          // A binary message: checked here, then carried as the text line it stands for.
          must(!!o.bin, 'take() gave a binary message to a text transport');
          const [seq, bytes] = decodeBinary(t);
          b = encodeFrame({ t: 'd', s: seq, d: Buffer.from(bytes).toString('base64'), b: 1 });
        }
        if (o.bin && typeof t === 'string') must(!decodeBatch(t).some((f) => f.t === 'd' && f.b === 1), 'a binary-mode text batch carries bytes as base64');
        if (b) {
          const lines = b.split('\n');
          must(lines.length === 1 || utf8(b) <= max, `a ${lines.length}-frame batch of ${utf8(b)} bytes exceeds ${max}`);
          me.live.push(b);
        } else {
          must(!me.s.hasOutput(), 'take() returned nothing although hasOutput');
        }
        break;
      }
      case 'deliver': {
        const from = peers[o.side];
        const to = peers[1 - o.side];
        for (let i = 0; i < o.n && from.live.length; i++) {
          const b = from.live.shift()!;
          if (!receive(to, from, b, true)) {
            resync();
            break;
          }
        }
        break;
      }
      case 'kill': {
        // A dying transport may deliver a prefix of the first batch in flight (A → B).
        const [a, b] = peers;
        let ok = true;
        if (a.live.length && o.partial) {
          const lines = a.live[0].split('\n');
          const cut = o.partial % (lines.length + 1);
          ok = receive(b, a, lines.slice(0, cut).join('\n'), true);
        }
        if (ok) {
          let bit = 0;
          for (const p of peers) {
            for (const batch of p.live) {
              if ((o.keep >> bit++ % 8) & 1) {
                if (o.split) p.stale.push(...batch.split('\n'));
                else p.stale.push(batch);
              }
            }
          }
        }
        resync();
        break;
      }
      case 'stale': {
        const from = peers[o.side];
        const to = peers[1 - o.side];
        if (!from.stale.length) break;
        const i = o.idx % from.stale.length;
        const b = from.stale[i];
        if (!o.keep) from.stale.splice(i, 1);
        stats.staleDeliveries++;
        if (!receive(to, from, b, false)) resync();
        break;
      }
      case 'poll': {
        // A poll tells `me` how far the peer got; what was written after that is written again.
        const me = peers[o.side];
        const peer = peers[1 - o.side];
        must(me.s.rewind(peer.s.receivedSeq), 'rewind refused the peer position');
        break;
      }
    }
    check();
  }

  // A final clean transport: nothing more from dead ones, then flush until quiet.
  for (const p of peers) p.stale = [];
  resync();
  let rounds = 0;
  while (peers[0].s.hasOutput() || peers[1].s.hasOutput()) {
    expect(++rounds, 'flush did not converge').toBeLessThan(1000);
    for (const i of [0, 1] as const) {
      const b = peers[i].s.take(200);
      if (b) expect(receive(peers[1 - i], peers[i], b, true)).toBe(true);
    }
    check();
  }
  const [a, b] = peers;
  expect(b.delivered).toEqual(a.pushed);
  expect(a.delivered).toEqual(b.pushed);
  for (const p of peers) {
    expect(p.s.bufferedCount()).toBe(0);
    expect(p.s.bufferedBytes).toBe(0);
    expect(p.s.unacked()).toEqual([]);
    expect(p.s.ackOwed()).toBe(0);
    expect(p.s.take()).toBe('');
  }
  return stats;
}

describe('two sessions over a lossy network (property)', () => {
  it('deliver exactly once, in order, and drain their buffers', () => {
    const total: Stats = { liveFrames: 0, staleDeliveries: 0, duplicates: 0, gaps: 0, resumes: 0, rejectedFull: 0, rejectedBig: 0 };
    fc.assert(
      fc.property(limits, fc.array(op, { maxLength: 150, size: 'max' }), (lim, ops) => {
        const s = simulate(lim, ops);
        for (const k of Object.keys(total) as Array<keyof Stats>) total[k] += s[k];
      }),
      { numRuns: 1000 },
    );
    if (process.env.LOSSY_STATS) console.log(total);
    // The schedules exercised every path (otherwise the property proves little).
    expect(total.liveFrames).toBeGreaterThan(1000);
    expect(total.staleDeliveries).toBeGreaterThan(100);
    expect(total.duplicates).toBeGreaterThan(100);
    expect(total.gaps).toBeGreaterThan(10);
    expect(total.rejectedFull).toBeGreaterThan(10);
    expect(total.rejectedBig).toBeGreaterThan(10);
  });

  it('stays correct on a long one-way stream with frequent transport deaths', () => {
    const oneWay = fc.oneof(
      { weight: 5, arbitrary: payload.map(({ d, bin }): Op => ({ k: 'push', side: 0, d, bin, maxFrame: null })) },
      { weight: 4, arbitrary: fc.option(fc.integer({ min: 1, max: 120 })).map((max): Op => ({ k: 'write', side: 0, max })) },
      { weight: 2, arbitrary: fc.constant<Op>({ k: 'write', side: 1, max: null }) },
      { weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }).map((n): Op => ({ k: 'deliver', side: 0, n })) },
      { weight: 2, arbitrary: fc.constant<Op>({ k: 'deliver', side: 1, n: 1 }) },
      {
        weight: 1,
        arbitrary: fc
          .record({ keep: fc.nat({ max: 255 }), split: fc.boolean(), partial: fc.nat({ max: 6 }) })
          .map(({ keep, split, partial }): Op => ({ k: 'kill', keep, split, partial })),
      },
      {
        weight: 2,
        arbitrary: fc.record({ idx: fc.nat({ max: 50 }), keep: fc.boolean() }).map(({ idx, keep }): Op => ({ k: 'stale', side: 0, idx, keep })),
      },
    );
    fc.assert(
      fc.property(limits, fc.array(oneWay, { minLength: 50, maxLength: 400, size: 'max' }), (lim, ops) => {
        simulate(lim, ops);
      }),
      { numRuns: 300 },
    );
  });

  it('a hand-written schedule: loss, late duplicate and a gap', () => {
    const lim = { maxMessages: 10, maxBytes: 1000 };
    const stats = simulate(lim, [
      { k: 'push', side: 0, d: 'm1', bin: false, maxFrame: null },
      { k: 'push', side: 0, d: 'm2', bin: false, maxFrame: null },
      { k: 'write', side: 0, max: null }, // [1,2] in flight
      { k: 'push', side: 0, d: 'm3', bin: false, maxFrame: null },
      { k: 'write', side: 0, max: null }, // [3] in flight
      { k: 'kill', keep: 0b10, split: false, partial: 0 }, // [1,2] lost, [3] stale
      { k: 'stale', side: 0, idx: 0, keep: true }, // 3 arrives before 1: Gap → resync
      { k: 'write', side: 0, max: null }, // [1,2,3] again
      { k: 'deliver', side: 0, n: 1 },
      { k: 'stale', side: 0, idx: 0, keep: false }, // late duplicate of 3
      { k: 'write', side: 1, max: null }, // ack 3
      { k: 'deliver', side: 1, n: 1 },
    ]);
    expect(stats.gaps).toBe(1);
    expect(stats.duplicates).toBe(1);
  });
});

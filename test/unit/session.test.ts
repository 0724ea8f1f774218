import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { binaryLineLength, decodeBatch, decodeBinary, encodeBatch, encodeBinary, encodeFrame, FrameError, type DataFrame, type Frame } from '../../src/frame';
import { Receipt, Session, utf8Length } from '../../src/session';

const big = { maxMessages: 1000, maxBytes: 1 << 20 };

function lineBytes(s: number, d: string, b?: 1): number {
  return Buffer.byteLength(JSON.stringify(b ? { t: 'd', s, d, b } : { t: 'd', s, d }), 'utf8');
}

function dataSeqs(batch: string): number[] {
  return decodeBatch(batch)
    .filter((f): f is DataFrame => f.t === 'd')
    .map((f) => f.s);
}

describe('utf8Length', () => {
  it('counts ASCII as 1 byte each', () => {
    expect(utf8Length('')).toBe(0);
    expect(utf8Length('hello')).toBe(5);
    expect(utf8Length('\u0000\u007f')).toBe(2);
  });

  it('counts U+0080..U+07FF as 2 bytes', () => {
    expect(utf8Length('\u0080')).toBe(2);
    expect(utf8Length('é')).toBe(2);
    expect(utf8Length('\u07ff')).toBe(2);
  });

  it('counts U+0800..U+FFFF (outside surrogates) as 3 bytes', () => {
    expect(utf8Length('\u0800')).toBe(3);
    expect(utf8Length('€')).toBe(3);
    expect(utf8Length('\ud7ff')).toBe(3);
    expect(utf8Length('\ue000')).toBe(3);
    expect(utf8Length('\uffff')).toBe(3);
  });

  it('counts a surrogate pair (astral code point) as 4 bytes', () => {
    expect(utf8Length('😀')).toBe(4);
    expect(utf8Length('\u{10000}')).toBe(4);
    expect(utf8Length('\u{10ffff}')).toBe(4);
    expect(utf8Length('a😀é€')).toBe(1 + 4 + 2 + 3);
  });

  it('matches Buffer.byteLength for well-formed strings of any code points (property)', () => {
    const unit = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.string({ unit: 'binary-ascii', maxLength: 40 }),
    );
    fc.assert(
      fc.property(unit, (s) => {
        expect(utf8Length(s)).toBe(Buffer.byteLength(s, 'utf8'));
      }),
      { numRuns: 500 },
    );
  });

  it('matches Buffer.byteLength on JSON-encoded frames of arbitrary UTF-16 (lone surrogates get escaped)', () => {
    // push() measures encodeFrame output; JSON.stringify escapes lone surrogates (ES2019), so
    // what push() measures is always well-formed even when the payload is not.
    const utf16 = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 30 }).map((a) => String.fromCharCode(...a));
    fc.assert(
      fc.property(utf16, (d) => {
        const line = encodeFrame({ t: 'd', s: 1, d });
        expect(utf8Length(line)).toBe(Buffer.byteLength(line, 'utf8'));
      }),
      { numRuns: 500 },
    );
  });
});

describe('Session.push', () => {
  it('numbers messages 1, 2, 3… and returns the encoded frame size', () => {
    const s = new Session(big);
    expect(s.push('hello')).toBe(27); // {"t":"d","s":1,"d":"hello"}
    expect(s.push('é')).toBe(lineBytes(2, 'é'));
    // Bytes count as their text form: {"t":"d","s":3,"d":"AAE=","b":1}
    expect(s.push(new Uint8Array([0, 1]))).toBe(lineBytes(3, 'AAE=', 1));
    expect(s.unacked()).toEqual(['hello', 'é', new Uint8Array([0, 1])]);
    expect(s.bufferedCount()).toBe(3);
    expect(s.bufferedBytes).toBe(27 + lineBytes(2, 'é') + lineBytes(3, 'AAE=', 1));
    expect(s.hasOutput()).toBe(true);
  });

  it('a fresh session has nothing buffered and nothing to write', () => {
    const s = new Session(big);
    expect(s.bufferedCount()).toBe(0);
    expect(s.bufferedBytes).toBe(0);
    expect(s.receivedSeq).toBe(0);
    expect(s.ackOwed()).toBe(0);
    expect(s.hasOutput()).toBe(false);
    expect(s.take()).toBe('');
  });

  it('returns -1 and keeps nothing when full by count', () => {
    const s = new Session({ maxMessages: 2, maxBytes: 1 << 20 });
    expect(s.push('a')).toBeGreaterThan(0);
    expect(s.push('b')).toBeGreaterThan(0);
    const bytes = s.bufferedBytes;
    expect(s.push('c')).toBe(-1);
    expect(s.bufferedCount()).toBe(2);
    expect(s.bufferedBytes).toBe(bytes);
    // The rejected message did not consume a sequence number.
    s.acked(1);
    expect(s.push('c')).toBeGreaterThan(0);
    expect(s.unacked()).toEqual(['b', 'c']);
    expect(s.take()).toBe(encodeBatch([{ t: 'd', s: 2, d: 'b' }, { t: 'd', s: 3, d: 'c' }]));
  });

  it('returns -1 and keeps nothing when full by bytes', () => {
    const one = lineBytes(1, 'xxxx');
    const s = new Session({ maxMessages: 100, maxBytes: 2 * one + 1 });
    expect(s.push('xxxx')).toBe(one);
    expect(s.push('xxxx')).toBe(one);
    expect(s.push('xxxx')).toBe(-1);
    expect(s.bufferedCount()).toBe(2);
    expect(s.bufferedBytes).toBe(2 * one);
    // Only 1 byte is left: even an empty payload ({"t":"d","s":3,"d":""}) does not fit.
    expect(s.push('')).toBe(-1);
    s.acked(1);
    expect(s.push('xxxx')).toBe(lineBytes(3, 'xxxx'));
  });

  it('accepts a frame that exactly fills maxBytes', () => {
    const one = lineBytes(1, 'abc');
    const s = new Session({ maxMessages: 100, maxBytes: one });
    expect(s.push('abc')).toBe(one);
    expect(s.bufferedBytes).toBe(one);
    expect(s.push('')).toBe(-1);
  });

  it('measures bytes in UTF-8, not UTF-16 code units', () => {
    const d = '😀😀'; // 4 UTF-16 units, 8 UTF-8 bytes
    const s = new Session(big);
    expect(s.push(d)).toBe(lineBytes(1, d));
    expect(s.push(d)).toBe(encodeFrame({ t: 'd', s: 2, d }).length + 4);
  });

  it('returns -2 when one frame is larger than maxFrame, and keeps nothing', () => {
    const s = new Session(big);
    const size = lineBytes(1, 'x'.repeat(100));
    expect(s.push('x'.repeat(100), size - 1)).toBe(-2);
    expect(s.bufferedCount()).toBe(0);
    expect(s.hasOutput()).toBe(false);
    expect(s.push('x'.repeat(100), size)).toBe(size);
    expect(s.take()).toBe(encodeFrame({ t: 'd', s: 1, d: 'x'.repeat(100) }));
  });

  it('returns -2 (not -1) for an oversize frame even when the buffer is full', () => {
    const s = new Session({ maxMessages: 1, maxBytes: 1 << 20 });
    s.push('a');
    expect(s.push('x'.repeat(100), 50)).toBe(-2);
    expect(s.push('x', 50)).toBe(-1);
  });
});

describe('Session.acked', () => {
  it('releases everything up to n and returns how many were released', () => {
    const s = new Session(big);
    for (const d of ['a', 'b', 'c', 'd']) s.push(d);
    const total = s.bufferedBytes;
    expect(s.acked(2)).toBe(2);
    expect(s.bufferedCount()).toBe(2);
    expect(s.bufferedBytes).toBe(total - lineBytes(1, 'a') - lineBytes(2, 'b'));
    expect(s.unacked()).toEqual(['c', 'd']);
    expect(s.acked(2)).toBe(0); // repeated ack
    expect(s.acked(1)).toBe(0); // stale ack
    expect(s.bufferedCount()).toBe(2);
    expect(s.acked(4)).toBe(2);
    expect(s.bufferedCount()).toBe(0);
    expect(s.bufferedBytes).toBe(0);
  });

  it('acked(0) releases nothing', () => {
    const s = new Session(big);
    s.push('a');
    expect(s.acked(0)).toBe(0);
    expect(s.bufferedCount()).toBe(1);
  });

  it('returns -1 when n is beyond the last message pushed, releasing nothing', () => {
    const s = new Session(big);
    expect(s.acked(1)).toBe(-1);
    s.push('a');
    s.push('b');
    expect(s.acked(3)).toBe(-1);
    expect(s.bufferedCount()).toBe(2);
    expect(s.acked(2)).toBe(2);
  });

  it('an ack for frames not yet written on this transport skips them (the peer has them)', () => {
    const s = new Session(big);
    s.push('a');
    s.push('b');
    s.push('c');
    expect(dataSeqs(s.take())).toEqual([1, 2, 3]);
    s.push('d');
    s.push('e');
    // peer already holds 1..4 (e.g. 4 came over an older transport)
    expect(s.acked(4)).toBe(4);
    expect(dataSeqs(s.take())).toEqual([5]);
  });
});

describe('Session.take', () => {
  it('writes unwritten data frames once, oldest first, and marks them written', () => {
    const s = new Session(big);
    s.push('a');
    s.push('b');
    const b1 = s.take();
    expect(decodeBatch(b1)).toEqual([
      { t: 'd', s: 1, d: 'a' },
      { t: 'd', s: 2, d: 'b' },
    ]);
    expect(s.hasOutput()).toBe(false);
    expect(s.take()).toBe('');
    s.push('c');
    expect(s.hasOutput()).toBe(true);
    expect(decodeBatch(s.take())).toEqual([{ t: 'd', s: 3, d: 'c' }]);
    // written frames stay buffered until acknowledged
    expect(s.bufferedCount()).toBe(3);
  });

  it('puts an ack frame first when an ack is owed', () => {
    const s = new Session(big);
    expect(s.receive({ t: 'd', s: 1, d: 'x' })).toBe(Receipt.Deliver);
    expect(s.receive({ t: 'd', s: 2, d: 'y' })).toBe(Receipt.Deliver);
    expect(s.ackOwed()).toBe(2);
    expect(s.hasOutput()).toBe(true);
    s.push('out');
    const frames = decodeBatch(s.take());
    expect(frames).toEqual([
      { t: 'a', a: 2 },
      { t: 'd', s: 1, d: 'out' },
    ]);
    expect(s.ackOwed()).toBe(0);
    expect(s.hasOutput()).toBe(false);
  });

  it('writes an ack frame alone when no data is pending', () => {
    const s = new Session(big);
    s.receive({ t: 'd', s: 1, d: 'x' });
    expect(s.take()).toBe('{"t":"a","a":1}');
    expect(s.take()).toBe('');
    s.receive({ t: 'd', s: 2, d: 'x' });
    s.receive({ t: 'd', s: 3, d: 'x' });
    expect(s.ackOwed()).toBe(2);
    expect(decodeBatch(s.take())).toEqual([{ t: 'a', a: 3 }]);
  });

  it('respects maxBytes, splitting data across several batches', () => {
    const s = new Session(big);
    for (let i = 0; i < 10; i++) s.push('m' + i);
    const one = lineBytes(1, 'm0');
    const max = 3 * one + 2; // room for three frames and their two separators
    const seen: number[] = [];
    let batch: string;
    while ((batch = s.take(max))) {
      expect(utf8Length(batch)).toBeLessThanOrEqual(max);
      seen.push(...dataSeqs(batch));
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('counts the ack frame against maxBytes', () => {
    const s = new Session(big);
    s.receive({ t: 'd', s: 1, d: 'x' });
    s.push('aaaa');
    s.push('bbbb');
    const ack = '{"t":"a","a":1}'.length;
    const frame = lineBytes(1, 'aaaa');
    const b1 = s.take(ack + 1 + frame);
    expect(decodeBatch(b1)).toEqual([
      { t: 'a', a: 1 },
      { t: 'd', s: 1, d: 'aaaa' },
    ]);
    expect(decodeBatch(s.take(ack + 1 + frame))).toEqual([
      { t: 'd', s: 2, d: 'bbbb' },
    ]);
  });

  it('writes the ack frame alone when the first data frame does not fit beside it', () => {
    const s = new Session(big);
    s.receive({ t: 'd', s: 1, d: 'x' });
    s.push('a'.repeat(50));
    expect(decodeBatch(s.take(30))).toEqual([{ t: 'a', a: 1 }]);
    expect(dataSeqs(s.take(30))).toEqual([1]);
  });

  it('always writes at least one data frame, even when it alone exceeds maxBytes', () => {
    const s = new Session(big);
    s.push('x'.repeat(100));
    s.push('y');
    const b = s.take(10);
    expect(decodeBatch(b)).toEqual([{ t: 'd', s: 1, d: 'x'.repeat(100) }]);
    expect(dataSeqs(s.take(10))).toEqual([2]);
    expect(s.take(10)).toBe('');
  });

  it('measures maxBytes in UTF-8 bytes', () => {
    const s = new Session(big);
    const d = '€'.repeat(10); // 10 UTF-16 units, 30 bytes
    s.push(d);
    s.push(d);
    const one = lineBytes(1, d);
    // Two frames are 2*one+1 bytes but only 2*(one-20)+1 UTF-16 units: a UTF-16 count would fit both.
    const b = s.take(2 * one);
    expect(dataSeqs(b)).toEqual([1]);
  });

  it('packs frames up to exactly maxBytes (no separator charged before the first frame)', () => {
    const s = new Session(big);
    s.push('aa');
    s.push('bb');
    const exact = lineBytes(1, 'aa') + 1 + lineBytes(2, 'bb');
    expect(dataSeqs(s.take(exact))).toEqual([1, 2]);
  });

  it('never exceeds maxBytes unless the batch is a single frame (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'binary', maxLength: 30 }), { minLength: 1, maxLength: 30 }),
        fc.nat({ max: 5 }),
        fc.integer({ min: 1, max: 400 }),
        (msgs, owed, max) => {
          const s = new Session(big);
          for (let i = 1; i <= owed; i++) s.receive({ t: 'd', s: i, d: '' });
          for (const m of msgs) expect(s.push(m)).toBeGreaterThan(0);
          const seqs: number[] = [];
          let batch: string;
          let acks = 0;
          while ((batch = s.take(max))) {
            const frames = decodeBatch(batch);
            if (frames.length > 1) expect(Buffer.byteLength(batch, 'utf8')).toBeLessThanOrEqual(max);
            for (const f of frames) {
              if (f.t === 'a') {
                acks++;
                expect(f.a).toBe(owed);
              } else if (f.t === 'd') seqs.push(f.s);
            }
          }
          expect(acks).toBe(owed ? 1 : 0);
          expect(seqs).toEqual(msgs.map((_, i) => i + 1));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Session.resume / rewind', () => {
  function written(s: Session, n: number): void {
    for (let i = 0; i < n; i++) s.push('m' + (i + 1));
    expect(dataSeqs(s.take())).toHaveLength(n);
  }

  it('resume(peerAck) releases up to peerAck and writes the rest again', () => {
    const s = new Session(big);
    written(s, 5);
    expect(s.hasOutput()).toBe(false);
    expect(s.resume(2)).toBe(true);
    expect(s.bufferedCount()).toBe(3);
    expect(s.hasOutput()).toBe(true);
    expect(decodeBatch(s.take())).toEqual([
      { t: 'd', s: 3, d: 'm3' },
      { t: 'd', s: 4, d: 'm4' },
      { t: 'd', s: 5, d: 'm5' },
    ]);
  });

  it('resume(0) writes everything again', () => {
    const s = new Session(big);
    written(s, 3);
    expect(s.resume(0)).toBe(true);
    expect(dataSeqs(s.take())).toEqual([1, 2, 3]);
  });

  it('resume marks our position as sent: no ack frame is owed afterwards', () => {
    const s = new Session(big);
    written(s, 2);
    s.receive({ t: 'd', s: 1, d: 'x' });
    s.receive({ t: 'd', s: 2, d: 'x' });
    expect(s.ackOwed()).toBe(2);
    expect(s.resume(1)).toBe(true);
    expect(s.ackOwed()).toBe(0);
    const frames = decodeBatch(s.take());
    expect(frames.some((f) => f.t === 'a')).toBe(false);
    expect(dataSeqs(encodeFrames(frames))).toEqual([2]);
  });

  it('rewind(peerAck) writes the rest again but keeps the ack owed', () => {
    const s = new Session(big);
    s.receive({ t: 'd', s: 1, d: 'x' });
    written(s, 3);
    // the ack went out with the data frames above
    s.receive({ t: 'd', s: 2, d: 'x' });
    expect(s.ackOwed()).toBe(1);
    expect(s.rewind(1)).toBe(true);
    expect(s.ackOwed()).toBe(1);
    expect(decodeBatch(s.take())).toEqual([
      { t: 'a', a: 2 },
      { t: 'd', s: 2, d: 'm2' },
      { t: 'd', s: 3, d: 'm3' },
    ]);
  });

  it('rewind/resume to what was already written and acked writes nothing new', () => {
    const s = new Session(big);
    written(s, 3);
    expect(s.rewind(3)).toBe(true);
    expect(s.bufferedCount()).toBe(0);
    expect(s.take()).toBe('');
    expect(s.resume(3)).toBe(true);
    expect(s.take()).toBe('');
  });

  it('resume/rewind return false for an ack beyond what was sent, and change nothing', () => {
    const s = new Session(big);
    written(s, 2);
    expect(s.resume(3)).toBe(false);
    expect(s.rewind(3)).toBe(false);
    expect(s.bufferedCount()).toBe(2);
    // nothing was rewound: the frames written before are not written again
    expect(s.hasOutput()).toBe(false);
    expect(s.take()).toBe('');
  });

  it('a failed resume does not mark an owed ack as sent', () => {
    const s = new Session(big);
    s.receive({ t: 'd', s: 1, d: 'x' });
    expect(s.resume(1)).toBe(false);
    expect(s.ackOwed()).toBe(1);
  });

  it('unwritten frames pushed before a resume are written after it', () => {
    const s = new Session(big);
    written(s, 2);
    s.push('m3');
    expect(s.resume(1)).toBe(true);
    expect(dataSeqs(s.take())).toEqual([2, 3]);
  });

  // Regression guard (src/session.ts rewind/take): rewind(peerAck) with a
  // peerAck lower than an ack already received sets `_written` below the first buffered frame.
  // take() then starts at a negative index (_out.length - (_lastSeq - _written) < 0) and throws
  // "TypeError: Cannot read properties of undefined (reading 'line')". A stale long-poll whose
  // `ack` query lags an ack frame the server already processed (transports/long-polling/server.ts
  // calls conn.rewind(ack)) reaches this. Expected: take() writes the unacknowledged frames (3).
  it('rewind with a stale peerAck (below an ack already received) leaves take() working', () => {
    const s = new Session(big);
    written(s, 3);
    expect(s.acked(2)).toBe(2);
    s.rewind(1); // stale: the peer told us 2 already
    let batch = '';
    expect(() => (batch = s.take())).not.toThrow();
    expect(dataSeqs(batch)).toEqual([3]);
  });

  it('resume with a stale peerAck (below an ack already received) leaves take() working', () => {
    const s = new Session(big);
    written(s, 4);
    expect(s.acked(3)).toBe(3);
    s.resume(1);
    expect(dataSeqs(s.take())).toEqual([4]);
  });
});

function encodeFrames(frames: Frame[]): string {
  return frames.map((f) => encodeFrame(f)).join('\n');
}

describe('Session.receive', () => {
  it('delivers in-order frames and advances receivedSeq', () => {
    const s = new Session(big);
    expect(s.receive({ t: 'd', s: 1, d: 'a' })).toBe(Receipt.Deliver);
    expect(s.receivedSeq).toBe(1);
    expect(s.receive({ t: 'd', s: 2, d: 'b' })).toBe(Receipt.Deliver);
    expect(s.receivedSeq).toBe(2);
  });

  it('reports replays as Duplicate without moving', () => {
    const s = new Session(big);
    s.receive({ t: 'd', s: 1, d: 'a' });
    s.receive({ t: 'd', s: 2, d: 'b' });
    expect(s.receive({ t: 'd', s: 2, d: 'b' })).toBe(Receipt.Duplicate);
    expect(s.receive({ t: 'd', s: 1, d: 'a' })).toBe(Receipt.Duplicate);
    expect(s.receivedSeq).toBe(2);
    expect(s.ackOwed()).toBe(2);
  });

  it('reports a skipped sequence number as Gap without moving', () => {
    const s = new Session(big);
    expect(s.receive({ t: 'd', s: 2, d: 'b' })).toBe(Receipt.Gap);
    expect(s.receivedSeq).toBe(0);
    expect(s.ackOwed()).toBe(0);
    expect(s.hasOutput()).toBe(false);
    s.receive({ t: 'd', s: 1, d: 'a' });
    expect(s.receive({ t: 'd', s: 3, d: 'c' })).toBe(Receipt.Gap);
    expect(s.receive({ t: 'd', s: 2, d: 'b' })).toBe(Receipt.Deliver);
    expect(s.receive({ t: 'd', s: 3, d: 'c' })).toBe(Receipt.Deliver);
  });

  it('delivers each sequence number exactly once, in order, whatever arrives (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 100 }), (arrivals) => {
        const s = new Session(big);
        const delivered: number[] = [];
        for (const n of arrivals) {
          const before = s.receivedSeq;
          const r = s.receive({ t: 'd', s: n, d: '' });
          if (n <= before) expect(r).toBe(Receipt.Duplicate);
          else if (n === before + 1) expect(r).toBe(Receipt.Deliver);
          else expect(r).toBe(Receipt.Gap);
          if (r === Receipt.Deliver) delivered.push(n);
        }
        expect(delivered).toEqual(delivered.map((_, i) => i + 1));
        expect(s.receivedSeq).toBe(delivered.length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('binary payloads (native binary messages where the transport has them)', () => {
  const text = (s: number, u: Uint8Array): string => encodeFrame({ t: 'd', s, d: Buffer.from(u).toString('base64'), b: 1 });

  it('count as their text form, computed without encoding, for every size and sequence number', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 1e12 }), (u, s) => {
        expect(binaryLineLength(s, u.length)).toBe(utf8Length(text(s, u)));
      }),
      { numRuns: 300 },
    );
  });

  it('a text transport gets them as base64 in the batch; a binary one gets each alone as a binary message', () => {
    const u = new Uint8Array([0, 10, 255, 10]);
    const mk = (): Session => {
      const s = new Session(big);
      s.push('a');
      s.push(u);
      s.push('b');
      return s;
    };
    const t = mk();
    expect(t.take()).toBe(encodeFrame({ t: 'd', s: 1, d: 'a' }) + '\n' + text(2, u) + '\n' + encodeFrame({ t: 'd', s: 3, d: 'b' }));
    const b = mk();
    expect(b.take(Infinity, true)).toBe(encodeFrame({ t: 'd', s: 1, d: 'a' }));
    const m = b.take(Infinity, true);
    expect(m).toBeInstanceOf(Uint8Array);
    const [seq, bytes] = decodeBinary(m as Uint8Array);
    expect(seq).toBe(2);
    expect(Array.from(bytes)).toEqual([0, 10, 255, 10]);
    expect(b.take(Infinity, true)).toBe(encodeFrame({ t: 'd', s: 3, d: 'b' }));
    expect(b.hasOutput()).toBe(false);
  });

  it('an owed ack goes as text before a binary message, never inside it', () => {
    const s = new Session(big);
    s.receive({ t: 'd', s: 1, d: 'x' });
    s.push(new Uint8Array([1]));
    expect(s.take(Infinity, true)).toBe(encodeFrame({ t: 'a', a: 1 }));
    expect(s.take(Infinity, true)).toBeInstanceOf(Uint8Array);
  });

  it('a resume on a text transport replays bytes first sent as a binary message, and the reverse', () => {
    const u = new Uint8Array([7, 7, 7]);
    const s = new Session(big);
    s.push(u);
    expect(s.take(Infinity, true)).toEqual(encodeBinary(1, u));
    expect(s.resume(0)).toBe(true);
    expect(s.take()).toBe(text(1, u));
    expect(s.resume(0)).toBe(true);
    expect(s.take(Infinity, true)).toEqual(encodeBinary(1, u));
  });

  it('a binary message header is the data frame without d, one LF, then the bytes', () => {
    const m = encodeBinary(42, new Uint8Array([10, 10]));
    expect(Buffer.from(m).toString('latin1')).toBe('{"t":"d","s":42,"b":1}\n\n\n');
    expect(decodeBinary(m)[0]).toBe(42);
    expect(Array.from(decodeBinary(m)[1])).toEqual([10, 10]);
    expect(decodeBinary(encodeBinary(1, new Uint8Array(0)))[1].length).toBe(0);
  });

  for (const [name, m] of [
    ['no LF', '{"t":"d","s":1,"b":1}'],
    ['a header longer than 64 bytes', '{"t":"d","s":1,"b":1,"x":"' + 'y'.repeat(60) + '"}\n'],
    ['not JSON', '{"t":"d",\n'],
    ['an ack header', '{"t":"a","a":1}\n'],
    ['sequence 0', '{"t":"d","s":0,"b":1}\n'],
    ['no b', '{"t":"d","s":1}\n'],
    ['a d as well', '{"t":"d","s":1,"b":1,"d":"x"}\n'],
    ['empty', ''],
  ] as const) {
    it(`a binary message with ${name} is a FrameError`, () => {
      expect(() => decodeBinary(new Uint8Array(Buffer.from(m + 'payload', 'latin1')))).toThrow(FrameError);
    });
  }
});

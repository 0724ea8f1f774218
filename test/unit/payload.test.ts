import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toBase64 } from '../../src/frame';
import { decodePayload, encodePayload, toArrayBuffer, type Payload } from '../../src/payload';

/** A payload in its text form, as a text transport carries it: [d, binary]. */
function enc(p: Payload): [string, boolean] {
  const x = encodePayload(p);
  return typeof x === 'string' ? [x, false] : [toBase64(x), true];
}


function bytesOf(b: ArrayBuffer): number[] {
  return Array.from(new Uint8Array(b));
}

function randomBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    // xorshift32: deterministic, covers every byte value
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function roundtrip(p: Payload): ArrayBuffer {
  const [d, binary] = enc(p);
  expect(binary).toBe(true);
  const back = decodePayload(d, binary);
  expect(back).toBeInstanceOf(ArrayBuffer);
  return back as ArrayBuffer;
}

describe('strings', () => {
  it('pass through unchanged and are not marked binary', () => {
    for (const s of ['', 'hello', 'é€😀', '\n\u0000', 'AAEC']) {
      expect(enc(s)).toEqual([s, false]);
      expect(decodePayload(s, false)).toBe(s);
      expect(decodePayload(s, undefined)).toBe(s);
    }
  });

  it('a string that looks like base64 stays a string when not flagged binary', () => {
    expect(decodePayload('aGVsbG8=', false)).toBe('aGVsbG8=');
  });
});

describe('binary', () => {
  it('an ArrayBuffer of every byte value roundtrips exactly, as standard base64', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const [d, binary] = enc(all.buffer);
    expect(binary).toBe(true);
    expect(d).toBe(Buffer.from(all).toString('base64'));
    const back = decodePayload(d, true) as ArrayBuffer;
    expect(back).toBeInstanceOf(ArrayBuffer);
    expect(back.byteLength).toBe(256);
    expect(bytesOf(back)).toEqual(Array.from(all));
  });

  it('an empty ArrayBuffer roundtrips to an empty ArrayBuffer', () => {
    expect(enc(new ArrayBuffer(0))).toEqual(['', true]);
    const back = decodePayload('', true);
    expect(back).toBeInstanceOf(ArrayBuffer);
    expect((back as ArrayBuffer).byteLength).toBe(0);
  });

  it('known vectors', () => {
    const b64 = (s: string): string => enc(new TextEncoder().encode(s))[0];
    expect(b64('f')).toBe('Zg==');
    expect(b64('fo')).toBe('Zm8=');
    expect(b64('foo')).toBe('Zm9v');
    expect(b64('hello')).toBe('aGVsbG8=');
  });

  it('a Uint8Array encodes only its own bytes (byteOffset and byteLength respected)', () => {
    const buf = Uint8Array.from([9, 9, 9, 1, 2, 3, 4, 5, 9, 9]).buffer;
    const view = new Uint8Array(buf, 3, 5);
    const [d] = enc(view);
    expect(d).toBe(Buffer.from([1, 2, 3, 4, 5]).toString('base64'));
    expect(bytesOf(roundtrip(view))).toEqual([1, 2, 3, 4, 5]);
  });

  it('a subarray encodes only its own bytes', () => {
    const all = Uint8Array.from({ length: 20 }, (_, i) => i);
    expect(bytesOf(roundtrip(all.subarray(7, 11)))).toEqual([7, 8, 9, 10]);
  });

  it('a DataView with a byteOffset encodes only its own bytes', () => {
    const buf = Uint8Array.from([0xaa, 0xbb, 0x10, 0x20, 0x30, 0x40, 0xcc]).buffer;
    const dv = new DataView(buf, 2, 4);
    expect(bytesOf(roundtrip(dv))).toEqual([0x10, 0x20, 0x30, 0x40]);
  });

  it('wider typed arrays are sent as their raw bytes', () => {
    const buf = new ArrayBuffer(16);
    const u16 = new Uint16Array(buf, 4, 3);
    u16.set([0x0102, 0x0304, 0xfffe]);
    const back = roundtrip(u16);
    expect(back.byteLength).toBe(6);
    expect(Array.from(new Uint16Array(back))).toEqual([0x0102, 0x0304, 0xfffe]);
    const f64 = Float64Array.from([Math.PI, -0, Infinity]);
    expect(Array.from(new Float64Array(roundtrip(f64)))).toEqual([Math.PI, -0, Infinity]);
  });

  it('a Node Buffer from the shared pool (non-zero byteOffset) encodes only its bytes', () => {
    const b = Buffer.from('hello');
    expect(enc(b)).toEqual(['aGVsbG8=', true]);
  });

  it('the decoded ArrayBuffer is exactly the payload, not a larger backing store', () => {
    const back = roundtrip(new Uint8Array([1, 2, 3]));
    expect(back.byteLength).toBe(3);
  });

  it('200 KB of random bytes roundtrip exactly', () => {
    const src = randomBytes(200 * 1024, 42);
    const [d, binary] = enc(src);
    expect(binary).toBe(true);
    expect(d).toBe(Buffer.from(src).toString('base64'));
    const back = decodePayload(d, true) as ArrayBuffer;
    expect(back.byteLength).toBe(src.length);
    expect(Buffer.from(back).equals(Buffer.from(src))).toBe(true);
  });

  it('sizes around the 32 KB chunk boundary roundtrip exactly', () => {
    for (const n of [0x7fff, 0x8000, 0x8001, 0xffff, 0x10000, 0x10001, 3 * 0x8000 + 7]) {
      const src = randomBytes(n, n);
      const [d] = enc(src);
      expect(d).toBe(Buffer.from(src).toString('base64'));
      expect(Buffer.from(decodePayload(d, true) as ArrayBuffer).equals(Buffer.from(src))).toBe(true);
    }
  });

  it('any bytes roundtrip exactly through any view (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 16 }), fc.nat({ max: 16 }), (bytes, pre, post) => {
        const buf = new ArrayBuffer(pre + bytes.length + post);
        new Uint8Array(buf).fill(0xee);
        new Uint8Array(buf, pre, bytes.length).set(bytes);
        const views: Payload[] = [new Uint8Array(buf, pre, bytes.length), new DataView(buf, pre, bytes.length)];
        if (!pre && !post) views.push(buf);
        for (const v of views) {
          const [d] = enc(v);
          expect(d).toBe(Buffer.from(bytes).toString('base64'));
          expect(bytesOf(decodePayload(d, true) as ArrayBuffer)).toEqual(Array.from(bytes));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('what the session keeps', () => {
  it('bytes are a copy: changing the sent buffer afterwards changes nothing kept', () => {
    const src = new Uint8Array([1, 2, 3, 4]);
    const kept = encodePayload(src.subarray(1, 3)) as Uint8Array;
    src.fill(0);
    expect(Array.from(kept)).toEqual([2, 3]);
    const ab = new Uint8Array([5, 6]).buffer;
    const kept2 = encodePayload(ab) as Uint8Array;
    new Uint8Array(ab).fill(0);
    expect(Array.from(kept2)).toEqual([5, 6]);
  });

  it('toArrayBuffer gives exactly the bytes of a view', () => {
    const whole = new Uint8Array([7, 8, 9]);
    expect(bytesOf(toArrayBuffer(whole))).toEqual([7, 8, 9]);
    const part = new Uint8Array([1, 2, 3, 4, 5]).subarray(1, 4);
    expect(bytesOf(toArrayBuffer(part))).toEqual([2, 3, 4]);
  });
});

describe('anything else', () => {
  const bad: Array<[string, unknown]> = [
    ['a number', 42],
    ['NaN', NaN],
    ['a boolean', true],
    ['null', null],
    ['undefined', undefined],
    ['a plain object', { a: 1 }],
    ['an array of numbers', [1, 2, 3]],
    ['a Date', new Date(0)],
    ['a function', () => 'x'],
  ];
  for (const [name, v] of bad) {
    it(`throws TypeError for ${name}`, () => {
      expect(() => encodePayload(v as Payload)).toThrow(TypeError);
    });
  }
});

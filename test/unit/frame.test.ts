import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decodeBatch,
  decodeFrame,
  encodeBatch,
  encodeFrame,
  FrameError,
  PROTOCOL_VERSION,
  type AckFrame,
  type CloseFrame,
  type DataFrame,
  type Frame,
  type OpenFrame,
} from '../../src/frame';

const open: OpenFrame = {
  t: 'o',
  v: PROTOCOL_VERSION,
  sid: 'AAECAwQFBgcICQoLDA0ODw',
  tok: 'EBESExQVFhcYGRobHB0eHw',
  hb: 25000,
  hto: 20000,
  ack: 0,
  lim: { payload: 1 << 20, batch: 4 << 20, buffer: 1000 },
};

const samples: Array<[string, Frame]> = [
  ['open (new session)', open],
  ['open (resumed)', { ...open, ack: 42, r: 1 }],
  ['data (text)', { t: 'd', s: 1, d: 'hello' }],
  ['data (binary)', { t: 'd', s: 7, d: 'AAEC/w==', b: 1 }],
  ['data (empty payload)', { t: 'd', s: 3, d: '' }],
  ['data (max safe seq)', { t: 'd', s: Number.MAX_SAFE_INTEGER, d: 'x' }],
  ['ack', { t: 'a', a: 12 }],
  ['ack 0', { t: 'a', a: 0 }],
  ['ping', { t: 'p' }],
  ['pong', { t: 'P' }],
  ['close', { t: 'c', c: 1000, r: 'bye' }],
  ['close (retry-after)', { t: 'c', c: 4429, r: 'overloaded', ra: 3000 }],
  ['close (code 4999)', { t: 'c', c: 4999, r: '' }],
];

function expectFrameError(fn: () => unknown): FrameError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FrameError);
  const fe = caught as FrameError;
  expect(fe.code).toBe(4400);
  expect(fe.name).toBe('FrameError');
  expect(fe).toBeInstanceOf(Error);
  return fe;
}

describe('encodeFrame / decodeFrame', () => {
  for (const [name, frame] of samples) {
    it(`roundtrips ${name}`, () => {
      const line = encodeFrame(frame);
      expect(line).not.toContain('\n');
      expect(decodeFrame(line)).toEqual(frame);
    });
  }

  it('encodes exactly as JSON (the wire format is one JSON object)', () => {
    expect(encodeFrame({ t: 'd', s: 1, d: 'x' })).toBe('{"t":"d","s":1,"d":"x"}');
    expect(encodeFrame({ t: 'a', a: 5 })).toBe('{"t":"a","a":5}');
  });

  it('roundtrips arbitrary data frames (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.string({ unit: 'binary', maxLength: 50 }),
        fc.uint8Array({ maxLength: 50 }),
        fc.boolean(),
        (s, text, bytes, b) => {
          const f: DataFrame = b ? { t: 'd', s, d: Buffer.from(bytes).toString('base64'), b: 1 } : { t: 'd', s, d: text };
          const line = encodeFrame(f);
          expect(line).not.toContain('\n');
          expect(decodeFrame(line)).toEqual(f);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('encodeBatch / decodeBatch', () => {
  it('decodes an empty string to no frames', () => {
    expect(decodeBatch('')).toEqual([]);
  });

  it('encodes no frames to an empty string', () => {
    expect(encodeBatch([])).toBe('');
  });

  it('skips empty lines (blank lines and a trailing newline)', () => {
    expect(decodeBatch('\n\n')).toEqual([]);
    expect(decodeBatch('{"t":"p"}\n')).toEqual([{ t: 'p' }]);
    expect(decodeBatch('{"t":"p"}\n\n{"t":"P"}')).toEqual([{ t: 'p' }, { t: 'P' }]);
  });

  it('roundtrips a batch of every frame type, in order', () => {
    const frames = samples.map(([, f]) => f);
    const text = encodeBatch(frames);
    expect(text.split('\n')).toHaveLength(frames.length);
    expect(decodeBatch(text)).toEqual(frames);
  });

  it('roundtrips payloads containing newlines and carriage returns (JSON escapes them)', () => {
    const frames: Frame[] = [
      { t: 'd', s: 1, d: 'line1\nline2\n' },
      { t: 'd', s: 2, d: '\n' },
      { t: 'd', s: 3, d: '\r\n\u2028\u2029' },
      { t: 'c', c: 1000, r: 'multi\nline' },
    ];
    const text = encodeBatch(frames);
    expect(text.split('\n')).toHaveLength(frames.length);
    expect(decodeBatch(text)).toEqual(frames);
  });

  it('roundtrips arbitrary batches of data frames (property)', () => {
    const dataFrame = fc
      .record({
        s: fc.integer({ min: 1, max: 1e9 }),
        d: fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), fc.constantFrom('\n', 'a\nb', '\\n', '"\n"')),
        bytes: fc.uint8Array({ maxLength: 20 }),
        b: fc.boolean(),
      })
      .map(({ s, d, bytes, b }): DataFrame => (b ? { t: 'd', s, d: Buffer.from(bytes).toString('base64'), b: 1 } : { t: 'd', s, d }));
    const ack = fc.nat().map((a): AckFrame => ({ t: 'a', a }));
    const close = fc
      .record({ c: fc.integer({ min: 0, max: 4999 }), r: fc.string({ maxLength: 20 }) })
      .map(({ c, r }): CloseFrame => ({ t: 'c', c, r }));
    fc.assert(
      fc.property(fc.array(fc.oneof(dataFrame, ack, close), { maxLength: 20 }), (frames) => {
        const text = encodeBatch(frames);
        expect(decodeBatch(text)).toEqual(frames);
      }),
      { numRuns: 300 },
    );
  });

  it('throws FrameError when any line of a batch is malformed', () => {
    expectFrameError(() => decodeBatch('{"t":"p"}\nnot json\n{"t":"P"}'));
    expectFrameError(() => decodeBatch('{"t":"d","s":1,"d":"a"}\n{"t":"d","s":0,"d":"b"}'));
  });
});

describe('decodeFrame rejects malformed input with FrameError (code 4400)', () => {
  const bad: Array<[string, string]> = [
    // not JSON
    ['empty string', ''],
    ['garbage', 'not json'],
    ['truncated object', '{"t":"p"'],
    ['single quotes', "{'t':'p'}"],
    // not an object
    ['null', 'null'],
    ['number', '42'],
    ['string', '"p"'],
    ['boolean', 'true'],
    ['array', '[{"t":"p"}]'],
    ['empty array', '[]'],
    // unknown or missing type
    ['no type', '{}'],
    ['unknown type', '{"t":"x"}'],
    ['type is a number', '{"t":1}'],
    ['type is case-sensitive ("D")', '{"t":"D","s":1,"d":"x"}'],
    // data frames
    ['data s=0', '{"t":"d","s":0,"d":"x"}'],
    ['data negative s', '{"t":"d","s":-1,"d":"x"}'],
    ['data float s', '{"t":"d","s":1.5,"d":"x"}'],
    ['data s as string', '{"t":"d","s":"1","d":"x"}'],
    ['data s missing', '{"t":"d","d":"x"}'],
    ['data s null', '{"t":"d","s":null,"d":"x"}'],
    ['data s beyond MAX_SAFE_INTEGER', '{"t":"d","s":9007199254740992,"d":"x"}'],
    ['data s overflowing to Infinity', '{"t":"d","s":1e400,"d":"x"}'],
    ['data missing d', '{"t":"d","s":1}'],
    ['data numeric d', '{"t":"d","s":1,"d":5}'],
    ['data null d', '{"t":"d","s":1,"d":null}'],
    ['data b=2', '{"t":"d","s":1,"d":"x","b":2}'],
    ['data b=0', '{"t":"d","s":1,"d":"x","b":0}'],
    ['data b=true', '{"t":"d","s":1,"d":"x","b":true}'],
    ['data b="1"', '{"t":"d","s":1,"d":"x","b":"1"}'],
    ['data b=null', '{"t":"d","s":1,"d":"x","b":null}'],
    ['binary data whose d is not base64', '{"t":"d","s":1,"d":"!!","b":1}'],
    ['binary data whose d is unpadded base64', '{"t":"d","s":1,"d":"AAE","b":1}'],
    ['binary data whose d has a line break', '{"t":"d","s":1,"d":"AAEC\\n/w==","b":1}'],
    // ack frames
    ['ack without a', '{"t":"a"}'],
    ['ack negative', '{"t":"a","a":-1}'],
    ['ack float', '{"t":"a","a":2.5}'],
    ['ack as string', '{"t":"a","a":"3"}'],
    // close frames
    ['close code 5000', '{"t":"c","c":5000,"r":""}'],
    ['close code 65535', '{"t":"c","c":65535,"r":"x"}'],
    ['close negative code', '{"t":"c","c":-1,"r":"x"}'],
    ['close float code', '{"t":"c","c":1000.5,"r":"x"}'],
    ['close missing code', '{"t":"c","r":"x"}'],
    ['close code as string', '{"t":"c","c":"1000","r":"x"}'],
    ['close missing reason', '{"t":"c","c":1000}'],
    ['close numeric reason', '{"t":"c","c":1000,"r":1}'],
    ['close retry-after as string', '{"t":"c","c":4429,"r":"","ra":"soon"}'],
    ['close negative retry-after', '{"t":"c","c":4429,"r":"","ra":-5}'],
    ['close float retry-after', '{"t":"c","c":4429,"r":"","ra":1.5}'],
  ];
  for (const [name, line] of bad) {
    it(name, () => {
      expectFrameError(() => decodeFrame(line));
    });
  }

  const required = ['v', 'sid', 'tok', 'hb', 'hto', 'ack', 'lim'] as const;
  for (const k of required) {
    it(`open frame missing ${k}`, () => {
      const o: Record<string, unknown> = { ...open };
      delete o[k];
      expectFrameError(() => decodeFrame(JSON.stringify(o)));
    });
  }
  for (const k of ['payload', 'batch', 'buffer'] as const) {
    it(`open frame with lim missing ${k}`, () => {
      const lim: Record<string, unknown> = { ...open.lim };
      delete lim[k];
      expectFrameError(() => decodeFrame(JSON.stringify({ ...open, lim })));
    });
    it(`open frame with negative lim.${k}`, () => {
      expectFrameError(() => decodeFrame(JSON.stringify({ ...open, lim: { ...open.lim, [k]: -1 } })));
    });
  }
  const wrongTypes: Array<[string, unknown]> = [
    ['v', '1'],
    ['sid', 1],
    ['sid', ''],
    ['hb', 0],
    ['tok', null],
    ['hb', -1],
    ['hto', 1.5],
    ['ack', '0'],
    ['lim', null],
    ['lim', 5],
  ];
  for (const [k, v] of wrongTypes) {
    it(`open frame with ${k}=${JSON.stringify(v)}`, () => {
      expectFrameError(() => decodeFrame(JSON.stringify({ ...open, [k]: v })));
    });
  }

  it('rejects arbitrary non-object JSON (property)', () => {
    const nonObject = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.integer()));
    fc.assert(
      fc.property(nonObject, (v) => {
        expectFrameError(() => decodeFrame(JSON.stringify(v)));
      }),
    );
  });

  it('rejects data frames whose s is not a positive safe integer (property)', () => {
    const badSeq = fc.oneof(
      fc.integer({ max: 0 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)),
      fc.integer({ min: 2 ** 53, max: 2 ** 60 }),
      fc.string(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(badSeq, (s) => {
        expectFrameError(() => decodeFrame(JSON.stringify({ t: 'd', s, d: 'x' })));
      }),
    );
  });
});

import { describe, expect, it } from 'vitest';
import { httpClose } from '../../transports/http';

const close = (status: number, retryAfter: string | null = null) => httpClose({ status, body: '', retryAfter }, 'poll');

describe('HTTP status → close code (PROTOCOL.md, "HTTP status codes")', () => {
  it('maps every status of the table, and anything else to 1006', () => {
    const table: Array<[number, number]> = [
      [400, 4400],
      [405, 4400],
      [403, 4403],
      [404, 4404],
      [409, 4409],
      [413, 4413],
      [429, 4429],
      [503, 4429],
      [501, 4501],
      [507, 4507],
      [0, 1006],
      [500, 1006],
      [502, 1006],
      [401, 1006],
      [418, 1006],
    ];
    expect(table.map(([s]) => [s, close(s).code])).toEqual(table);
  });

  it('says what failed and how; Retry-After (seconds) becomes retryAfter in ms, a bad one is ignored', () => {
    expect(close(0)).toEqual({ code: 1006, reason: 'poll failed' });
    expect(close(503, '2.5')).toEqual({ code: 4429, reason: 'poll answered HTTP 503', retryAfter: 2500 });
    expect(close(429, 'soon').retryAfter).toBeUndefined();
    expect(close(429, '-1').retryAfter).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { httpClose } from '../../transports/http';

/** A refusal as the reference server answers it: the status, and the close frame as the body. */
const close = (status: number, retryAfter: string | null = null) => httpClose({ status, body: '{"t":"c","c":' + (4000 + status) + ',"r":"x"}', retryAfter }, 'poll');

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

  it('a 404 whose body is not the close frame 4404 (a proxy without the route, an HTML page) is a failed transport, not a lost session', () => {
    expect(httpClose({ status: 404, body: '<html><body>404 Not Found</body></html>', retryAfter: null }, 'poll').code).toBe(1006);
    expect(httpClose({ status: 404, body: '', retryAfter: null }, 'poll').code).toBe(1006);
    expect(httpClose({ status: 404, body: '{"t":"c","c":4404,"r":"unknown session"}', retryAfter: null }, 'poll').code).toBe(4404);
  });

  it('says what failed and how; Retry-After (seconds) becomes retryAfter in ms, a bad one is ignored', () => {
    expect(close(0)).toEqual({ code: 1006, reason: 'poll failed' });
    expect(close(503, '2.5')).toEqual({ code: 4429, reason: 'poll answered HTTP 503', retryAfter: 2500 });
    expect(close(429, 'soon').retryAfter).toBeUndefined();
    expect(close(429, '-1').retryAfter).toBeUndefined();
  });
});

/**
 * The cometsocket protocol conformance suite: named checks that talk to a server over the wire
 * only (HTTP and WebSocket), so a server written in any language can be checked against
 * PROTOCOL.md. The server under test must echo every message it receives on the same session
 * and send nothing else (PROTOCOL.md, "Conformance suite").
 *
 * Run it with `npm run conformance -- <url>` (cli.ts) or from vitest (conformance.test.ts).
 */
import { randomBytes } from 'node:crypto';
import {
  checkHeaders,
  checkNoStore,
  expectServing,
  expectSessionGone,
  HttpSession,
  IFRAME_ID,
  isId128,
  notOffered,
  withIo,
  WsSession,
  type Io,
  type Payload,
  type Target,
} from './session';
import {
  binaryMessage,
  CheckFailed,
  CheckSkipped,
  CONTENT_TYPE,
  ensure,
  equal,
  expectRefusal,
  fail,
  HTTP_TRANSPORTS,
  httpUnfinished,
  mediaType,
  parseBatch,
  parseBody,
  show,
  sleep,
  STREAMS,
  waitUntil,
  type CloseFrame,
  type HttpResponse,
  type HttpTransport,
  type OpenFrame,
  type WsClient,
} from './wire';

export type { Target } from './session';
export { CheckFailed, CheckSkipped } from './wire';

export interface Check {
  /** What the check verifies. */
  name: string;
  /** The PROTOCOL.md section it verifies. */
  section: string;
  /** Waits on the server's heartbeat timings (`hb`, `hto`): minutes against a default server. */
  slow?: boolean;
  /** Throws CheckFailed (or another Error) on failure, CheckSkipped when it cannot run. */
  run(t: Target): Promise<Report>;
}

/** What a check that passed has to say. */
export interface Report {
  /** Something worth printing (timings, which form the server chose). */
  note?: string;
}

const SEQ = 'Sessions, sequence numbers and acknowledgements';
const HTTP = 'HTTP transports';

function check(section: string, name: string, body: (io: Io) => Promise<void | string>, opts: { slow?: boolean } = {}): Check {
  return {
    name,
    section,
    slow: opts.slow,
    run: (t) =>
      withIo(t, async (io) => {
        const note = await body(io);
        return { note: note || undefined };
      }),
  };
}

// ---- helpers -------------------------------------------------------------------------------------

/** Learn the server's open frame (hb, hto, lim) from a throwaway long-polling session. */
async function serverParams(io: Io): Promise<OpenFrame> {
  const s = await HttpSession.handshake(io, 'long-polling');
  const open = s.open;
  await s.close();
  return open;
}

/**
 * Expect a refused WebSocket handshake as PROTOCOL.md "websocket" describes it: the upgrade
 * succeeds, the socket carries one close frame, then closes with its code.
 */
async function expectWsRefusal(io: Io, c: WsClient, code: number, what: string, section: string): Promise<void> {
  await waitUntil(() => c.openedAt > 0 || c.closed !== null, io.ms, what + ': the upgrade');
  if (c.status !== 101) fail(what, 'the upgrade to succeed (101), then one close frame ' + code + ' and close code ' + code, 'HTTP ' + c.status, 'websocket');
  await expectWsClosedWith(io, c, 0, code, what, section);
}

/**
 * Expect the server to end the socket with close frame `code` as the last frame (one close frame,
 * nothing after it) and the WebSocket close code `code`. `from` is the index of the first message
 * that may carry it.
 */
async function expectWsClosedWith(io: Io, c: WsClient, from: number, code: number, what: string, section: string): Promise<void> {
  const closed = await c.waitClose(io.ms, what + ': the server to close the socket with ' + code);
  const frames = c.frames().filter((f) => f.msg >= from);
  const closes = frames.filter((f) => f.frame.t === 'c');
  if (!closes.length) fail(what + ': the frames before the socket closed', 'a close frame {"t":"c","c":' + code + '}', frames.map((f) => f.frame), section);
  const cf = closes[0].frame as CloseFrame;
  if (cf.c !== code) fail(what + ': the close frame', 'c=' + code, cf, section);
  if (closes.length > 1 || frames[frames.length - 1].frame.t !== 'c') {
    fail(what + ': frames after the close frame (the session\'s last frame)', 'none', frames.slice(frames.indexOf(closes[0])).map((f) => f.frame), 'Close');
  }
  if (closed.code !== code) fail(what + ': the WebSocket close code', code + ' (the close frame\'s code)', closed.code + (closed.reason ? ' ' + JSON.stringify(closed.reason) : ''), 'Close');
}

/** How sse and iframe-streaming end a stream (PROTOCOL.md "Transports"). */
const END_MARKER = { sse: 'an "event: end" event', 'iframe-streaming': '<script>p(null)</script>' } as const;

/**
 * An iframe-streaming document's prelude (PROTOCOL.md "iframe-streaming"): it defines p() with
 * postMessage aimed at exactly `po` (never "*"), carries the stream id and 2,048 bytes of padding.
 */
function checkIframePrelude(pre: string, po: string, what: string): void {
  ensure(pre.indexOf('postMessage') >= 0, what + ': the iframe-streaming prelude does not call postMessage: ' + show(pre.slice(0, 300)), 'Transports');
  ensure(pre.indexOf(po) >= 0, what + ': the iframe-streaming prelude does not name po (' + po + ') as the postMessage target: ' + show(pre.slice(0, 300)), 'Transports');
  if (/postMessage\s*\([^;]*,\s*(["'])\*\1\s*\)/.test(pre)) fail(what + ': the postMessage target of the iframe-streaming prelude', 'exactly po (' + po + ')', '"*"', 'Transports');
  ensure(pre.indexOf(IFRAME_ID) >= 0, what + ': the iframe-streaming prelude does not carry the stream id i (' + IFRAME_ID + ')', 'Transports');
  if (Buffer.byteLength(pre) < 2048) fail(what + ': the iframe-streaming prelude', 'at least 2,048 bytes (padding)', Buffer.byteLength(pre) + ' bytes', 'Transports');
}

/**
 * Expect a refusal of a GET on `transport` (PROTOCOL.md "Close"), with `Cache-Control: no-store,
 * ...` as on every response. The polling transports and xhr-streaming: the HTTP status of the
 * table and a body that is one close frame `code`. sse and iframe-streaming, whose page cannot
 * read the status of a GET: 200 and their usual framing (text/event-stream; a text/html document
 * whose prelude posts to `po`), the close frame as the stream's only batch, then the end marker.
 */
function expectGetRefusal(io: Io, transport: HttpTransport, r: HttpResponse, status: number, code: number, what: string, section: string, po = io.pageOrigin): void {
  checkNoStore(r.headers, what);
  if (transport !== 'sse' && transport !== 'iframe-streaming') {
    expectRefusal(r, status, code, what, section);
    return;
  }
  const end = END_MARKER[transport];
  const form = transport === 'sse' ? 'a text/event-stream' : 'a text/html document';
  if (r.status !== 200) {
    fail(what, 'HTTP 200 and ' + form + ' whose only batch is close frame ' + code + ', then ' + end + ' (the page cannot read the status of this GET, so not HTTP ' + status + ')', { status: r.status, body: r.body.slice(0, 300) }, 'Close');
  }
  equal(what + ': Content-Type of a refusal in the stream', mediaType(r.headers['content-type']), CONTENT_TYPE[transport], 'Transports');
  const body = parseBody(transport, r.body, true);
  if (transport === 'iframe-streaming') checkIframePrelude(body.prelude, po, what);
  const frames = body.batches.flatMap((b) => parseBatch(b.text, 'Close'));
  if (body.batches.length !== 1 || frames.length !== 1 || frames[0].t !== 'c') {
    fail(what + ': the batches of a refusal in the stream', 'exactly one, the close frame ' + code, body.batches.map((b) => b.text), 'Close');
  }
  if (frames[0].c !== code) fail(what + ': the close code in the stream', String(code), frames[0], section);
  if (!body.endMarker) fail(what + ': the end of the refused stream', end + ' after the close frame', r.body.slice(-200), 'Close');
  if (body.endAfter !== 1) fail(what + ': ' + end, 'right after the close frame', 'before it: ' + show(r.body.slice(-300)), 'Close');
}

/** A data frame line of exactly `n` UTF-8 bytes, more bytes than characters. */
function lineOfBytes(s: number, n: number): string {
  const head = '{"t":"d","s":' + s + ',"d":"';
  const room = n - Buffer.byteLength(head + '"}');
  ensure(room >= 2, 'lim.payload ' + n + ' is too small to test', 'Limits');
  const twos = Math.floor(room / 2);
  return head + 'é'.repeat(twos) + 'a'.repeat(room - 2 * twos) + '"}';
}

function randomId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * Whether the server offers `transport`: its handshake is not answered 501 (PROTOCOL.md "Close";
 * 404 from servers that predate it); the probe session is closed.
 */
async function offered(io: Io, transport: HttpTransport): Promise<boolean> {
  try {
    const s = await HttpSession.handshake(io, transport);
    await s.close();
    return true;
  } catch (e) {
    if (e instanceof CheckSkipped) return false;
    throw e;
  }
}

async function offeredStreams(io: Io): Promise<HttpTransport[]> {
  const out: HttpTransport[] = [];
  for (const t of STREAMS) if (await offered(io, t)) out.push(t);
  return out;
}

const VARIED: Payload[] = ['plain', '', 'é€😀 multi-byte', 'line\nbreak and "quotes" \\ backslash', '\u2028\u2029', '{"t":"d","s":99,"d":"not a frame"}', ' '.repeat(3)];

function payloads(n: number, label: string): Payload[] {
  const out: Payload[] = [];
  for (let i = 0; i < n; i++) out.push(i < VARIED.length ? VARIED[i] : label + ' #' + (i + 1));
  return out;
}

// ---- handshakes ----------------------------------------------------------------------------------

const handshakes: Check[] = [
  check('Handshake', 'websocket: 101, the open frame as the first message, every field valid', async (io) => {
    const s = await WsSession.handshake(io);
    ensure(s.data.length === 0, 'a new session carries no data frames before the client sends', 'Handshake');
  }),
  check('Handshake', 'long-polling: 200, text/plain, no-store, X-Accel-Buffering: no, the open frame', async (io) => {
    await HttpSession.handshake(io, 'long-polling');
  }),
  check('Handshake', 'short-polling: 200, text/plain, no-store, X-Accel-Buffering: no, the open frame', async (io) => {
    await HttpSession.handshake(io, 'short-polling');
  }),
  check('Handshake', 'xhr-streaming: text/plain, a prelude of 2,048 spaces and LF, then the open frame, held open', async (io) => {
    const s = await HttpSession.handshake(io, 'xhr-streaming');
    await sleep(200);
    ensure(!s.stream!.done, 'the xhr-streaming response ended after the open frame; expected it kept open', 'Transports');
  }),
  check('Handshake', 'sse: text/event-stream, a comment prelude of 2,048 spaces, an event with id and data, held open', async (io) => {
    const s = await HttpSession.handshake(io, 'sse');
    const first = parseBody('sse', s.stream!.text, false).batches[0];
    if (first.id === undefined || !/^\d+$/.test(first.id)) fail('the id of the event carrying the open frame', 'id: <seq>', first.id, 'Transports');
    await sleep(200);
    ensure(!s.stream!.done, 'the sse response ended after the open frame; expected it kept open', 'Transports');
  }),
  check('Handshake', 'iframe-streaming: text/html, a prelude defining p() with postMessage to po and 2,048 bytes of padding, then <script>p("...")</script>', async (io) => {
    const s = await HttpSession.handshake(io, 'iframe-streaming');
    checkIframePrelude(parseBody('iframe-streaming', s.stream!.text, false).prelude, io.pageOrigin, 'the iframe-streaming handshake');
    await sleep(200);
    ensure(!s.stream!.done, 'the iframe-streaming response ended after the open frame; expected it kept open', 'Transports');
  }),
  check('Frames', 'session ids and resume tokens: 128 bits as base64url, all distinct, no shared structure, balanced bits', async (io) => {
    const ids: string[] = [];
    for (let i = 0; i < 16; i++) {
      const s = await HttpSession.handshake(io, 'long-polling');
      ids.push(s.sid, s.tok);
    }
    for (const id of ids) ensure(isId128(id), 'not 128 bits as base64url: ' + id, 'Frames');
    equal('distinct ids among 16 sids and 16 toks', new Set(ids).size, ids.length, 'Frames');
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        let p = 0;
        while (ids[i][p] === ids[j][p]) p++;
        // Random ids share a 6-character prefix with odds of 1 in 2^36 per pair.
        if (p >= 6) fail('ids ' + ids[i] + ' and ' + ids[j], 'no common prefix of 6 characters (random bits)', p + ' characters in common', 'Frames');
      }
    }
    let ones = 0;
    for (const id of ids) for (const byte of Buffer.from(id, 'base64url')) for (let b = byte; b; b >>= 1) ones += b & 1;
    // 4,096 random bits: 2,048 ones expected, standard deviation 32.
    if (Math.abs(ones - 2048) > 200) fail('the bits of 32 ids', 'about half of 4,096 bits set (random)', ones + ' set', 'Frames');
  }),
];

// ---- refusals ------------------------------------------------------------------------------------

const MALFORMED: Array<[string, string]> = [
  ['not JSON', '{"t":"d",'],
  ['a JSON array', '[{"t":"d","s":1,"d":"x"}]'],
  ['a JSON number', '7'],
  ['an unknown frame type', '{"t":"x"}'],
  ['no frame type', '{"s":1,"d":"x"}'],
  ['a data frame without s', '{"t":"d","d":"x"}'],
  ['a data frame with a string s', '{"t":"d","s":"1","d":"x"}'],
  ['a data frame with a fractional s', '{"t":"d","s":1.5,"d":"x"}'],
  ['a data frame with a negative s', '{"t":"d","s":-1,"d":"x"}'],
  ['a data frame without d', '{"t":"d","s":1}'],
  ['a data frame with a number as d', '{"t":"d","s":1,"d":7}'],
  ['an ack frame without a', '{"t":"a"}'],
  ['a close frame without r', '{"t":"c","c":1000}'],
  ['a binary data frame whose d is not base64', '{"t":"d","s":1,"d":"!!","b":1}'],
  ['a binary data frame whose d is unpadded base64', '{"t":"d","s":1,"d":"AAE","b":1}'],
];

const refusals: Check[] = [
  check('Versioning', 'an unsupported version gets 400/4400 (sse, iframe-streaming: 200, close frame 4400 in the stream), websocket close frame + code 4400; a path naming no transport gets 501/4501, an upgrade there or on an HTTP transport 501', async (io) => {
    for (const t of HTTP_TRANSPORTS) {
      if (!(await offered(io, t))) continue;
      for (const v of ['2', '1.0', '']) expectGetRefusal(io, t, await io.http('GET', io.url(t, 'v=' + v + io.getExtra(t))), 400, 4400, 'GET ' + t + '?v=' + v, 'Versioning');
    }
    await expectWsRefusal(io, io.ws('v=2'), 4400, 'websocket?v=2', 'Versioning');
    // A path that names no transport: 501 / 4501, not 404, which a resuming client would take for a lost session.
    const get = await io.http('GET', io.url('no-such-transport', 'v=1'));
    expectRefusal(get, 501, 4501, 'GET {endpoint}/no-such-transport?v=1', 'Close');
    checkNoStore(get.headers, 'GET {endpoint}/no-such-transport?v=1');
    const post = await io.http('POST', io.url('no-such-transport', 'sid=' + randomId() + '&tok=' + randomId()), { body: '{"t":"d","s":1,"d":"x"}' });
    expectRefusal(post, 501, 4501, 'POST {endpoint}/no-such-transport', 'Close');
    checkNoStore(post.headers, 'POST {endpoint}/no-such-transport');
    for (const path of ['no-such-transport', 'long-polling']) {
      const c = io.ws('v=1', { transport: path });
      await waitUntil(() => c.closed !== null || c.openedAt > 0, io.ms, 'the answer to a WebSocket upgrade on {endpoint}/' + path);
      equal('the status of a WebSocket upgrade on {endpoint}/' + path + ' (a path that offers no websocket)', c.status, 501, 'websocket');
    }
    await expectServing(io, 'unsupported versions and paths naming no transport');
  }),
  check('Frames', 'malformed frames POSTed get 400/4400 and end the session (' + MALFORMED.length + ' kinds)', async (io) => {
    for (const [what, line] of MALFORMED) {
      const s = await HttpSession.handshake(io, 'long-polling');
      const r = await s.post(line, null);
      expectRefusal(r, 400, 4400, 'POST of ' + what + ' ' + line, 'Frames');
      await expectSessionGone(io, s, 4400, 'a POST of ' + what);
    }
    await expectServing(io, 'malformed frames');
  }),
  check('Frames', 'a malformed frame on websocket (also a text message that is not UTF-8) gets one close frame 4400 as the last frame, close code 4400, and ends the session', async (io) => {
    // The last: a text message that is not UTF-8 (PROTOCOL.md, "Frames": malformed).
    for (const line of ['{"t":"x"}', 'not json', '{"t":"d","s":1}', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])]) {
      const s = await WsSession.handshake(io);
      const from = s.client.messages.length;
      s.client.send(line, true);
      await expectWsClosedWith(io, s.client, from, 4400, 'websocket message ' + line, 'Frames');
      await expectSessionGone(io, s, null, 'a malformed websocket frame');
    }
    await expectServing(io, 'malformed websocket frames');
  }),
  check('Binary messages', 'malformed binary messages get 4400 (no LF within 65 bytes, a header with d, without b, not a data frame)', async (io) => {
    const bad: Array<[string, Buffer]> = [
      ['no LF at all', Buffer.from('x'.repeat(100))],
      ['a 70-byte header', Buffer.concat([Buffer.from('{"t":"d","s":1,"b":1' + ' '.repeat(49) + '}\n'), Buffer.from([1, 2])])],
      ['a header with d', Buffer.from('{"t":"d","s":1,"d":"AQ==","b":1}\n\u0001')],
      ['a header without b', Buffer.from('{"t":"d","s":1}\n\u0001')],
      ['a header that is an ack', Buffer.from('{"t":"a","a":0}\n')],
      ['a header that is not JSON', Buffer.from('{"t":"d",\n\u0001')],
    ];
    for (const [what, msg] of bad) {
      const s = await WsSession.handshake(io);
      const from = s.client.messages.length;
      s.client.send(msg);
      await expectWsClosedWith(io, s.client, from, 4400, 'a binary message with ' + what, 'Binary messages');
    }
    await expectServing(io, 'malformed binary messages');
  }),
  check('Close codes', 'an unknown session id or a wrong token gets 404/4404 on every transport\'s GET (sse, iframe-streaming: 200, close frame 4404 in the stream) and POST, and on resume (websocket: close 4404); the owner keeps the session', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    const wrongTok = randomId();
    const cases: Array<[string, string]> = [
      ['an unknown sid', 'sid=' + randomId() + '&tok=' + randomId()],
      ['a wrong tok', 'sid=' + encodeURIComponent(s.sid) + '&tok=' + wrongTok],
      ['no tok', 'sid=' + encodeURIComponent(s.sid)],
      ['the sid as tok', 'sid=' + encodeURIComponent(s.sid) + '&tok=' + encodeURIComponent(s.sid)],
    ];
    const transports: HttpTransport[] = [];
    for (const t of HTTP_TRANSPORTS) if (await offered(io, t)) transports.push(t);
    for (const [what, q] of cases) {
      for (const t of transports) {
        const g = await io.http('GET', io.url(t, q + '&ack=0' + io.getExtra(t)));
        expectGetRefusal(io, t, g, 404, 4404, 'a continuing ' + t + ' GET with ' + what, 'Close codes');
        // POSTs are refused with the status on every transport, sse and iframe-streaming included.
        const p = await io.http('POST', io.url(t, q), { body: '{"t":"d","s":1,"d":"x"}' });
        expectRefusal(p, 404, 4404, 'a ' + t + ' POST with ' + what, 'Close codes');
        checkNoStore(p.headers, 'a ' + t + ' POST with ' + what);
      }
      expectRefusal(await io.http('GET', io.url('long-polling', 'v=1&' + q + '&ack=0')), 404, 4404, 'a resume handshake with ' + what, 'Resume');
    }
    await expectWsRefusal(io, io.ws('v=1&sid=' + encodeURIComponent(s.sid) + '&tok=' + wrongTok + '&ack=0'), 4404, 'a websocket resume with a wrong tok', 'Resume');
    await expectWsRefusal(io, io.ws('v=1&sid=' + randomId() + '&tok=' + randomId() + '&ack=0'), 4404, 'a websocket resume of an unknown sid', 'Resume');
    await s.send(['still mine']);
    await s.until(() => s.received >= 1, 'the echo on the session whose token was guessed wrong');
    s.expectEchoes(['still mine'], 'the owner, after wrong tokens');
  }),
  check(HTTP, 'a second GET while one is held gets 409/4409, the held one is answered at once, the session goes on', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    let firstDone = 0;
    let first: Promise<{ status: number; body: string }> | null = null;
    for (let attempt = 0; attempt < 4 && !first; attempt++) {
      // A held poll may end early by itself (a ping): then hold another.
      firstDone = 0;
      const p = io.http('GET', s.getUrl(0), { timeoutMs: s.pollMs });
      p.then(
        () => (firstDone = Date.now()),
        () => (firstDone = Date.now()),
      );
      await sleep(150);
      if (!firstDone) first = p;
      else await p;
    }
    if (!first) throw new CheckFailed('could not hold a poll: every GET was answered within 150 ms with nothing to send', HTTP);
    const second = await io.http('GET', s.getUrl(0), { timeoutMs: s.pollMs });
    const at = Date.now();
    expectRefusal(second, 409, 4409, 'a second GET while one is held', HTTP);
    const r = await first;
    equal('the status of the held GET', r.status, 200, HTTP);
    parseBatch(r.body, HTTP);
    if (firstDone - at > 1000) fail('the held GET after the conflicting one', 'answered at once', 'answered ' + (firstDone - at) + ' ms later', HTTP);
    await s.send(['after the conflict']);
    await s.until(() => s.received >= 1, 'the echo after the conflict');
    s.expectEchoes(['after the conflict'], 'after a 409');
  }),
  check(HTTP, 'a second POST while one is still being read: the one being read is cut (409/4409 or closed), the second is read (204), the session goes on', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    // A POST whose body never ends: the server is still reading it when the second one arrives.
    const first = httpUnfinished(io.scope, 'POST', s.postUrl, io.headers(undefined, { 'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': '1000' }));
    first.req.write('{"t":"P"}\n');
    await sleep(200);
    const second = await io.http('POST', s.postUrl, { body: '{"t":"P"}' });
    if (second.status !== 204) fail('a second POST while one is being read', '204 (the client gave up on the first)', 'HTTP ' + second.status + ' ' + second.body.slice(0, 200), HTTP);
    const got = await Promise.race([first.answered, sleep(2000).then(() => -1)]);
    if (got === -1) fail('the POST being read when a second one arrived', 'answered (409) or closed at once', 'still open 2 s later', HTTP);
    if (got !== 0 && got !== 409) fail('the POST being read when a second one arrived', '409 or its connection closed', 'HTTP ' + got, HTTP);
    await s.send(['after the conflicting POSTs']);
    await s.until(() => s.received >= 1, 'the echo after the conflicting POSTs');
    s.expectEchoes(['after the conflicting POSTs'], 'after a 409 on a POST');
  }),
  check('Limits', 'lim.payload over POST: a frame of exactly lim.payload UTF-8 bytes is accepted, one byte more gets 413/4413 and ends the session', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    const P = s.open.lim.payload;
    const exact = lineOfBytes(1, P);
    s.outSeq = 1;
    await s.post(exact);
    await s.until(() => s.received >= 1, 'the echo of a frame of exactly lim.payload bytes');
    s.expectEchoes([(JSON.parse(exact) as { d: string }).d], 'a frame of exactly lim.payload bytes');
    const over = lineOfBytes(2, P + 1);
    expectRefusal(await s.post(over, null), 413, 4413, 'a POSTed data frame of lim.payload + 1 bytes (' + (over.length) + ' characters)', 'Limits');
    await expectSessionGone(io, s, 4413, 'a frame over lim.payload');
    await expectServing(io, 'a frame over lim.payload');
  }),
  check('Limits', 'lim.payload over websocket: text frames by UTF-8 bytes, binary messages by their text form (27 + digits(s) + 4·ceil(n/3)); one over gets 4413', async (io) => {
    const a = await WsSession.handshake(io);
    const P = a.open.lim.payload;
    const note: string[] = [];
    const exact = lineOfBytes(1, P);
    a.outSeq = 1;
    a.client.send(exact);
    await a.until(() => a.received >= 1, 'the echo of a text frame of exactly lim.payload bytes');
    if (P + 1 <= a.open.lim.batch) {
      const from = a.client.messages.length;
      a.client.send(lineOfBytes(2, P + 1));
      await expectWsClosedWith(io, a.client, from, 4413, 'a websocket text frame of lim.payload + 1 bytes', 'Limits');
    } else note.push('text frame over lim.payload not sent: it would also be over lim.batch');
    const b = await WsSession.handshake(io);
    const k = Math.floor((P - 28) / 4);
    ensure(k > 0, 'lim.payload too small to test binary messages');
    const fits = randomBytes(3 * k);
    b.outSeq = 1;
    b.client.send(binaryMessage(1, fits));
    await b.until(() => b.received >= 1, 'the echo of a binary message whose text form is ' + (28 + 4 * k) + ' <= lim.payload bytes');
    b.expectEchoes([fits], 'a binary message at the limit');
    const from = b.client.messages.length;
    const over = randomBytes(3 * k + 1);
    b.client.send(binaryMessage(2, over));
    await expectWsClosedWith(io, b.client, from, 4413, 'a binary message of ' + over.length + ' bytes whose text form is ' + (28 + 4 * (k + 1)) + ' > lim.payload = ' + P + ' bytes', 'Binary messages');
    await expectServing(io, 'frames over lim.payload on websocket');
    return note.join('; ') || undefined;
  }),
  check('Limits', 'lim.batch: a POST body over it gets 413/4413 and ends the session; a websocket message over it is closed with 1009', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    const B = s.open.lim.batch;
    // Empty lines only: a valid batch, so nothing but its size is wrong.
    expectRefusal(await s.post('\n'.repeat(B + 1), null), 413, 4413, 'a POST body of lim.batch + 1 bytes', 'Limits');
    await expectSessionGone(io, s, 4413, 'a POST over lim.batch');
    const w = await WsSession.handshake(io);
    w.client.send('\n'.repeat(B + 1));
    const closed = await w.client.waitClose(io.ms + 5000, 'the socket to close after a message over lim.batch');
    equal('the close code after a websocket message of lim.batch + 1 bytes', closed.code, 1009, 'websocket');
    await expectServing(io, 'batches over lim.batch');
  }),
];

// ---- sequence numbers, acks, data --------------------------------------------------------------------

const sessions: Check[] = [
  check(SEQ, 'a sequence gap POSTed gets 409/4409; the session goes on and takes the right frame', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    expectRefusal(await s.post('{"t":"d","s":2,"d":"two"}', null), 409, 4409, 'a POST whose first data frame has s=2', SEQ);
    await s.send(['one', 'two']);
    await s.until(() => s.received >= 2, 'the echoes after the gap');
    s.expectEchoes(['one', 'two'], 'after a gap');
    equal('server data frames after a gap', s.data.map((f) => f.s), [1, 2], SEQ);
  }),
  check(SEQ, 'a sequence gap on websocket gets close frame and code 4409; the session resumes from the last frame received', async (io) => {
    const w = await WsSession.handshake(io);
    w.send(['one']);
    await w.until(() => w.received >= 1, 'the echo of the first message');
    const from = w.client.messages.length;
    w.client.send('{"t":"d","s":3,"d":"three"}');
    await expectWsClosedWith(io, w.client, from, 4409, 'a websocket data frame with s=3 after s=1', SEQ);
    const lp = await HttpSession.handshake(io, 'long-polling', { sid: w.sid, tok: w.tok, ack: 1, outSeq: 1 });
    equal('the resumed open frame\'s ack after a gap (the gap frame is dropped)', lp.open.ack, 1, 'Resume');
    await lp.send(['two']);
    await lp.until(() => lp.received >= 2, 'the echo of s=2 after the resume');
    lp.expectEchoes(['two'], 'after a websocket gap', 2);
  }),
  check(SEQ, 'an ack beyond the last data frame sent gets 400/4400 (ack frame, resume query); a bad ack query too', async (io) => {
    const a = await HttpSession.handshake(io, 'long-polling');
    expectRefusal(await a.post('{"t":"a","a":3}', null), 400, 4400, 'an ack frame a=3 when the server sent nothing', SEQ);
    const b = await HttpSession.handshake(io, 'long-polling');
    const q = 'v=1&sid=' + encodeURIComponent(b.sid) + '&tok=' + encodeURIComponent(b.tok);
    expectRefusal(await io.http('GET', io.url('long-polling', q + '&ack=3')), 400, 4400, 'a resume with ack=3 when the server sent nothing', 'Resume');
    expectRefusal(await io.http('GET', io.url('long-polling', q + '&ack=x')), 400, 4400, 'a resume with ack=x', 'Close codes');
    await expectServing(io, 'impossible acks');
  }),
  check(SEQ, 'long-polling: 40 messages in one POST are echoed once each, in order, s=1..40, each acknowledged no later than its echo', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    const sent = payloads(40, 'lp');
    await s.send(sent);
    await s.until(() => s.received >= 40, '40 echoes');
    s.expectEchoes(sent, 'long-polling');
    equal('the highest ack from the server', s.highestAck, 40, SEQ);
    await s.send(['marker']);
    await s.until(() => s.received >= 41, 'the echo of the marker');
    s.expectEchoes([...sent, 'marker'], 'long-polling, after acknowledging by poll');
  }),
  check(SEQ, 'websocket: 40 messages (one batch of 20, then 20 alone) are echoed once each, in order, each acknowledged no later than its echo', async (io) => {
    const w = await WsSession.handshake(io);
    const sent = payloads(40, 'ws');
    w.send(sent.slice(0, 20));
    for (const p of sent.slice(20)) w.send([p]);
    await w.until(() => w.received >= 40, '40 echoes');
    w.expectEchoes(sent, 'websocket');
    equal('the highest ack from the server', w.highestAck, 40, SEQ);
    w.ack();
    w.send(['marker']);
    await w.until(() => w.received >= 41, 'the echo of the marker');
    w.expectEchoes([...sent, 'marker'], 'websocket, after an ack frame');
  }),
  check(SEQ, 'replayed data frames are dropped, not delivered twice (long-polling and websocket, text and binary)', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    const lines = s.dataLines(['one', 'two']);
    await s.post(lines.join('\n'));
    await s.post(lines.join('\n'));
    await s.post(lines[0]);
    await s.send(['three']);
    await s.until(() => s.received >= 3, 'the echo of the third message');
    s.expectEchoes(['one', 'two', 'three'], 'long-polling with replays');
    const w = await WsSession.handshake(io);
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
    const first = w.dataLines(['one'])[0];
    w.client.send(first);
    w.client.send(first);
    w.outSeq = 2;
    w.client.send(binaryMessage(2, bytes));
    w.client.send(binaryMessage(2, bytes));
    w.client.send(JSON.stringify({ t: 'd', s: 2, d: bytes.toString('base64'), b: 1 }));
    w.send(['three']);
    await w.until(() => w.received >= 3, 'the echo of the third message');
    w.expectEchoes(['one', bytes, 'three'], 'websocket with replays');
    await sleep(50);
    w.read();
    equal('server data frames on websocket', w.data.map((f) => f.s), [1, 2, 3], SEQ);
  }),
  check('Binary messages', 'websocket: a binary message is echoed with the same bytes; also a base64 text frame (b:1), an empty payload, a 64-byte header', async (io) => {
    const w = await WsSession.handshake(io);
    const all = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(1000)]);
    w.outSeq = 1;
    w.client.send(binaryMessage(1, all));
    const viaText = randomBytes(77);
    w.send([viaText]);
    w.outSeq = 3;
    w.client.send(binaryMessage(3, Buffer.alloc(0)));
    // A header of exactly 64 bytes (JSON whitespace) is the largest allowed.
    const head64 = '{' + ' '.repeat(43) + '"t":"d","s":4,"b":1}\n';
    ensure(Buffer.byteLength(head64) === 65, 'a 64-byte header and LF');
    const last = Buffer.from([10, 13, 0, 10]);
    w.outSeq = 4;
    w.client.send(Buffer.concat([Buffer.from(head64), last]));
    await w.until(() => w.received >= 4, 'four echoes');
    w.expectEchoes([all, viaText, Buffer.alloc(0), last], 'binary on websocket');
    const forms = w.client.frames().filter((f) => f.frame.t === 'd').map((f) => (f.binary ? 'binary message' : 'base64 text frame'));
    return 'echoes came as: ' + forms.join(', ');
  }),
  check('Frames', 'long-polling: a base64 payload (b:1) is echoed as b:1 with the same bytes', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    const bytes = [Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)), randomBytes(31), Buffer.alloc(0)];
    await s.send(bytes);
    await s.until(() => s.received >= 3, 'three echoes');
    s.expectEchoes(bytes, 'binary on long-polling');
    for (const f of s.data) equal('b of the echo of a binary message s=' + f.s, f.b, 1, 'Frames');
  }),
];

// ---- resume ----------------------------------------------------------------------------------------

const resume: Check[] = [
  check('Resume', 'websocket dropped abruptly, resumed on long-polling with ack=2: open frame r:1 ack:5, then exactly echoes 3..5, in order, once', async (io) => {
    const w = await WsSession.handshake(io);
    const sent = ['r1', 'r2', 'r3', 'r4', 'r5'];
    w.send(sent);
    await w.until(() => w.received >= 5 && w.highestAck >= 5, 'the five echoes and the ack of all five');
    w.client.terminate();
    const lp = await HttpSession.handshake(io, 'long-polling', { sid: w.sid, tok: w.tok, ack: 2, outSeq: 5 });
    equal('the resumed open frame\'s ack (what the server received)', lp.open.ack, 5, 'Resume');
    await lp.send(['r6']);
    await lp.until(() => lp.received >= 6, 'the replays and the echo of r6');
    equal('server data frames after the resume', lp.data.map((f) => f.s), [3, 4, 5, 6], 'Resume');
    lp.expectEchoes(['r3', 'r4', 'r5', 'r6'], 'the replays after a resume', 3);
  }),
  check('Resume', 'a resume takes the session from its previous transport: the old websocket is ended, a held poll is answered, a GET on the old transport gets 409/4409', async (io) => {
    const a = await WsSession.handshake(io);
    const b = await WsSession.handshake(io, { sid: a.sid, tok: a.tok, ack: 0, outSeq: 0 });
    await a.client.waitClose(io.ms, 'the first websocket to be ended by the resume on another');
    b.send(['via the second socket']);
    await b.until(() => b.received >= 1, 'the echo on the second socket');
    const lp = await HttpSession.handshake(io, 'long-polling');
    const held = io.http('GET', lp.getUrl(0), { timeoutMs: lp.pollMs });
    await sleep(100);
    const w = await WsSession.handshake(io, { sid: lp.sid, tok: lp.tok, ack: 0, outSeq: 0 });
    const t0 = Date.now();
    const r = await held;
    equal('the held poll when the session moved to websocket', r.status, 200, 'Resume');
    if (Date.now() - t0 > 1000) fail('the held poll when the session moved', 'ended at once', 'ended ' + (Date.now() - t0) + ' ms later', 'Resume');
    expectRefusal(await io.http('GET', lp.getUrl(0)), 409, 4409, 'a GET on long-polling for a session now carried by websocket', HTTP);
    w.send(['moved']);
    await w.until(() => w.received >= 1, 'the echo after the move');
    w.expectEchoes(['moved'], 'after the move to websocket');
  }),
  check(HTTP, 'a continuing GET whose ack is lower than what was sent gets those frames again (a lost response)', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    await s.send(['a', 'b', 'c']);
    await s.until(() => s.received >= 3, 'three echoes');
    const before = s.data.length;
    await s.poll(0);
    const again = s.data.slice(before).map((f) => f.s);
    equal('data frames in the response to a GET with ack=0 after s=1..3 were written', again, [1, 2, 3], HTTP);
    s.replays = 0;
    await s.send(['d']);
    const mark = s.data.length;
    await s.until(() => s.data.some((f, i) => i >= mark && f.s === 4), 'the echo of d');
    equal('data frames after acknowledging 3', s.data.slice(mark).map((f) => f.s), [4], HTTP);
  }),
];

// ---- probes ----------------------------------------------------------------------------------------

const probes: Check[] = [
  check('Upgrade probes', 'websocket probe: exactly one ping, no open frame, held open; a client frame on it gets 4400', async (io) => {
    const c = io.ws('v=1&probe=1', { autoPong: false });
    await c.waitOpen(io.ms, 'the websocket probe upgrade');
    await waitUntil(() => c.messages.length > 0 || c.closed !== null, io.ms, 'the probe\'s ping');
    const frames = c.frames('Upgrade probes').map((f) => f.frame);
    equal('the first message of a websocket probe', frames, [{ t: 'p' }], 'Upgrade probes');
    await sleep(250);
    ensure(c.isOpen, 'the websocket probe was closed ' + show(c.closed) + ' right after its ping; expected it held open', 'Upgrade probes');
    equal('messages on a websocket probe after 250 ms', c.messages.length, 1, 'Upgrade probes');
    c.send('{"t":"d","s":1,"d":"x"}');
    await expectWsClosedWith(io, c, 1, 4400, 'a data frame sent on a probe', 'Upgrade probes');
  }),
  check('Upgrade probes', 'HTTP probes: the first batch is one ping, no open frame; streams are held open', async (io) => {
    const seen: string[] = [];
    for (const t of HTTP_TRANSPORTS) {
      const st = io.stream(io.url(t, 'v=1&probe=1' + io.getExtra(t)));
      await st.responded(io.ms);
      if (notOffered(st.status)) {
        st.abort();
        continue;
      }
      equal(t + ' probe status', st.status, 200, 'Upgrade probes');
      equal(t + ' probe Content-Type', mediaType(st.headers['content-type']), CONTENT_TYPE[t], 'Transports');
      let body = parseBody(t, st.text, st.ended);
      const end = Date.now() + io.ms;
      while (!body.batches.length) {
        if (Date.now() > end || (st.done && !body.batches.length && st.ended)) fail(t + ' probe', 'a ping as the first batch', st.text.slice(0, 300), 'Upgrade probes');
        await sleep(5);
        body = parseBody(t, st.text, st.ended);
      }
      equal(t + ' probe: its first batch', parseBatch(body.batches[0].text, 'Upgrade probes'), [{ t: 'p' }], 'Upgrade probes');
      if ((STREAMS as readonly string[]).indexOf(t) >= 0) {
        await sleep(200);
        ensure(!st.done, t + ' probe response ended right after its ping; expected it held open', 'Upgrade probes');
        equal(t + ' probe: batches after 200 ms', parseBody(t, st.text, false).batches.length, 1, 'Upgrade probes');
      }
      st.abort();
      seen.push(t);
    }
    return 'probed ' + seen.join(', ');
  }),
  check(
    'Upgrade probes',
    'a probe is held until hb + hto, then ended: websocket close 1000, a stream\'s normal end',
    async (io) => {
      const p = await serverParams(io);
      const hold = p.hb + p.hto;
      const c = io.ws('v=1&probe=1', { autoPong: false });
      await c.waitOpen(io.ms, 'the websocket probe upgrade');
      const streams = await offeredStreams(io);
      const st = streams.indexOf('xhr-streaming') >= 0 ? io.stream(io.url('xhr-streaming', 'v=1&probe=1')) : null;
      const closed = await c.waitClose(hold + 2000, 'the server to end the websocket probe after hb + hto = ' + hold + ' ms');
      const after = closed.at - c.openedAt;
      equal('the close code of a probe the server ended', closed.code, 1000, 'Upgrade probes');
      if (after < hold - 250) fail('the websocket probe', 'held open for hb + hto = ' + hold + ' ms', 'closed after ' + after + ' ms', 'Upgrade probes');
      if (st) {
        await waitUntil(() => st.done, 2000, 'the xhr-streaming probe to end');
        ensure(st.ended && !st.broken, 'the xhr-streaming probe was cut instead of ended normally', 'Upgrade probes');
      }
      return 'websocket probe ended after ' + after + ' ms (hb + hto = ' + hold + ')';
    },
    { slow: true },
  ),
];

// ---- heartbeat ---------------------------------------------------------------------------------------

const heartbeat: Check[] = [
  check(
    'Heartbeat',
    'the server pings within hb on websocket (twice, the client answering with pongs) and on a held poll',
    async (io) => {
      const w = await WsSession.handshake(io);
      const lp = await HttpSession.handshake(io, 'long-polling');
      const hb = w.open.hb;
      const bound = hb + w.open.hto + 2000;
      const pings = (): number[] => w.client.messages.filter((m) => !m.binary && m.data.toString().split('\n').indexOf('{"t":"p"}') >= 0).map((m) => m.at);
      const lpPing = (async (): Promise<number> => {
        const t0 = Date.now();
        while (!lp.log.some((f) => f.t === 'p')) {
          if (Date.now() - t0 > bound) fail('a ping on long-polling', 'within hb + hto + 2 s = ' + bound + ' ms', 'none', 'Heartbeat');
          await lp.poll();
        }
        return Date.now() - t0;
      })();
      lpPing.catch(() => undefined); // awaited below; not unhandled if the websocket part fails first
      await waitUntil(() => pings().length >= 2, 2 * bound, 'two pings on websocket');
      const first = pings()[0] - w.client.openedAt;
      const gap = pings()[1] - pings()[0];
      const lpMs = await lpPing;
      ensure(w.client.isOpen, 'the websocket closed although the client answered every ping', 'Heartbeat');
      const late = Math.max(first, gap) - hb;
      if (first > hb + w.open.hto || gap > hb + w.open.hto) fail('the interval between pings', 'at most hb = ' + hb + ' ms (hb + hto at the very most)', 'first after ' + first + ' ms, then ' + gap + ' ms', 'Heartbeat');
      // "The server pings at least this often", with 100 ms for timers and the network.
      if (late > 100) fail('the interval between pings', 'at most hb = ' + hb + ' ms (+ 100 ms)', 'first after ' + first + ' ms, then ' + gap + ' ms', 'Heartbeat');
      return 'websocket: first ping after ' + first + ' ms, next ' + gap + ' ms later (hb ' + hb + ')' + (late > 0 ? ', ' + late + ' ms later than hb' : '') + '; long-polling: ping after ' + lpMs + ' ms';
    },
    { slow: true },
  ),
  check(
    'Heartbeat',
    'a silent websocket client loses its transport after hb + hto, not before, and keeps its session',
    async (io) => {
      const w = await WsSession.handshake(io, undefined, { autoPong: false });
      const dead = w.open.hb + w.open.hto;
      const closed = await w.client.waitClose(dead + 2000, 'the server to drop a client silent for hb + hto = ' + dead + ' ms');
      const after = closed.at - w.client.openedAt;
      if (after < dead - 250) fail('a silent websocket client', 'dropped no sooner than hb + hto = ' + dead + ' ms', 'dropped after ' + after + ' ms', 'Heartbeat');
      const lp = await HttpSession.handshake(io, 'long-polling', { sid: w.sid, tok: w.tok, ack: 0, outSeq: 0 });
      equal('the resumed open frame\'s r after the transport was dropped', lp.open.r, 1, 'Heartbeat');
      return 'dropped after ' + after + ' ms (hb + hto = ' + dead + ')';
    },
    { slow: true },
  ),
];

// ---- close -------------------------------------------------------------------------------------------

const close: Check[] = [
  check('Close', 'a close frame POSTed ends the session at once: the held poll is answered, then 404/4404 for GET, POST and resume', async (io) => {
    const s = await HttpSession.handshake(io, 'long-polling');
    await s.send(['before close']);
    await s.until(() => s.received >= 1, 'the echo');
    const held = io.http('GET', s.getUrl(s.received), { timeoutMs: s.pollMs });
    await sleep(100);
    await s.post('{"t":"c","c":1000,"r":"done"}');
    const t0 = Date.now();
    const r = await held;
    equal('the held poll when the client closed the session', r.status, 200, 'Close');
    const frames = parseBatch(r.body, 'Close');
    ensure(!frames.some((f) => f.t === 'd'), 'the held poll carried data after the client closed: ' + r.body, 'Close');
    if (Date.now() - t0 > 1000) fail('the held poll after the close frame', 'answered at once', (Date.now() - t0) + ' ms later', 'Close');
    await expectSessionGone(io, s, 1000, 'the client\'s close frame');
    expectRefusal(await s.post('{"t":"d","s":2,"d":"x"}', null), 404, 4404, 'a POST after the close frame', 'Close');
  }),
  check('Close', 'a close frame on websocket ends the session: afterwards its resume gets 404/4404', async (io) => {
    const w = await WsSession.handshake(io);
    w.send(['bye soon']);
    await w.until(() => w.received >= 1, 'the echo');
    w.client.send('{"t":"c","c":3001,"r":"application done"}');
    w.client.ws.close(1000);
    await w.client.waitClose(io.ms);
    await expectSessionGone(io, w, 3001, 'a close frame on websocket');
    await expectWsRefusal(io, io.ws('v=1&sid=' + encodeURIComponent(w.sid) + '&tok=' + encodeURIComponent(w.tok) + '&ack=1'), 4404, 'a websocket resume after the close frame', 'Close');
  }),
];

// ---- transports ----------------------------------------------------------------------------------------

const transports: Check[] = [
  check('Transports', 'short-polling: every GET is answered at once, even when empty; echoes arrive by polling', async (io) => {
    const s = await HttpSession.handshake(io, 'short-polling');
    for (let i = 0; i < 3; i++) {
      const r = await s.poll();
      if (r.ms > 1000) fail('an empty short poll', 'answered at once', 'answered after ' + r.ms + ' ms', 'Transports');
    }
    await s.send(['sp']);
    await s.until(() => s.received >= 1, 'the echo by short polling', s.open.hb + io.ms);
    s.expectEchoes(['sp'], 'short-polling');
  }),
  check('Transports', 'sse: one event per batch with id = its highest data sequence number and one data line per frame; Last-Event-ID acts as ack', async (io) => {
    if (!(await offered(io, 'sse'))) throw new CheckSkipped('sse is not offered');
    const s = await HttpSession.handshake(io, 'sse');
    const sent = ['e1', 'e2', 'e3'];
    await s.send(sent);
    await s.until(() => s.received >= 3, 'three echoes on the stream');
    s.expectEchoes(sent, 'sse');
    const checkIds = (text: string): void => {
      for (const ev of parseBody('sse', text, false).batches) {
        const seqs = parseBatch(ev.text, 'Transports').flatMap((f) => (f.t === 'd' ? [f.s] : []));
        if (seqs.length && ev.id !== String(Math.max(...seqs))) fail('the id of an sse event carrying data frames ' + seqs.join(','), 'id: ' + Math.max(...seqs), ev.id, 'Transports');
      }
    };
    checkIds(s.stream!.text);
    s.stream!.abort();
    let st = null;
    for (let i = 0; i < 20 && !st; i++) {
      const r = io.stream(s.getUrl(null), { headers: { 'Last-Event-ID': '1' } });
      await r.responded(io.ms);
      if (r.status === 409) {
        // The server had not yet seen the first stream go.
        r.abort();
        await sleep(50);
      } else st = r;
    }
    if (!st) throw new CheckFailed('every continuing sse GET got 409 after the first stream was closed', 'HTTP transports');
    equal('a continuing sse GET without ack, with Last-Event-ID: 1', st.status, 200, HTTP);
    const before = s.data.length;
    s.adopt(st, 1);
    await s.until(() => s.data.length >= before + 2, 'the frames after Last-Event-ID 1 again');
    equal('data frames after Last-Event-ID: 1', s.data.slice(before).map((f) => f.s), [2, 3], 'Transports');
    checkIds(st.text);
  }),
  check('Transports', 'xhr-streaming: after the prelude, every batch is followed by LF; echoes arrive on the open response', async (io) => {
    if (!(await offered(io, 'xhr-streaming'))) throw new CheckSkipped('xhr-streaming is not offered');
    const s = await HttpSession.handshake(io, 'xhr-streaming');
    await s.send(['x1', 'x2', 'x3']);
    await s.send(['x4']);
    await s.send(['x5']);
    await s.until(() => s.received >= 5, 'five echoes on the stream');
    s.expectEchoes(['x1', 'x2', 'x3', 'x4', 'x5'], 'xhr-streaming');
    ensure(s.stream!.text.endsWith('\n'), 'the xhr-streaming body does not end with LF after its last batch: ' + show(s.stream!.text.slice(-80)), 'Transports');
    ensure(!s.stream!.done, 'the xhr-streaming response ended after carrying data; expected it kept open', 'Transports');
  }),
  check('Transports', 'iframe-streaming: payloads such as </script><script>alert(1)</script> are escaped (no raw <, >, &, U+2028, U+2029 in the bytes) and arrive intact', async (io) => {
    if (!(await offered(io, 'iframe-streaming'))) throw new CheckSkipped('iframe-streaming is not offered');
    const s = await HttpSession.handshake(io, 'iframe-streaming');
    const evil = ['</script><script>alert(1)</script>', '<!-- comment -->', '</SCRIPT >', '&amp;&lt;&#x3c;', 'line\u2028separator\u2029paragraph', '"); alert(2); ("', '\\u003c/script>'];
    await s.send(evil);
    await s.until(() => s.received >= evil.length, 'the echoes on the document');
    s.expectEchoes(evil, 'iframe-streaming');
    const text = s.stream!.text;
    const body = parseBody('iframe-streaming', text, false);
    const raw = s.stream!.bytes;
    const after = raw.subarray(Buffer.byteLength(body.prelude));
    for (const bad of ['<script>alert', '<!--', '&amp;', '\u2028', '\u2029', '</SCRIPT']) {
      const at = after.indexOf(Buffer.from(bad));
      if (at >= 0) fail('the iframe-streaming document', 'no raw ' + JSON.stringify(bad) + ' from a payload', after.subarray(Math.max(0, at - 30), at + 40).toString(), 'Transports');
    }
    const opens = after.toString().split('<script>').length - 1;
    const closes = after.toString().split('</script>').length - 1;
    const units = after.toString().split('<script>p(').length - 1;
    if (opens !== units || closes !== units) fail('the script elements after the prelude', units + ' <script>p(...)</script> and nothing else', opens + ' <script> and ' + closes + ' </script>', 'Transports');
  }),
  check('Transports', 'stream recycling: a stream the server ends (sse event: end, iframe p(null), xhr end) is continued by a GET with ack and nothing is lost', async (io) => {
    const streams = await offeredStreams(io);
    if (!streams.length) throw new CheckSkipped('no streaming transport offered');
    const observed: string[] = [];
    const unobserved: string[] = [];
    for (const t of streams) {
      const s = await HttpSession.handshake(io, t);
      const size = Math.max(16, Math.min(16384, s.open.lim.payload - 64));
      let total = 0;
      let ended = false;
      while (total <= 1 << 20) {
        const line = s.dataLines(['r'.repeat(size - 8) + '#' + s.outSeq])[0];
        await s.post(JSON.stringify({ t: 'a', a: s.received }) + '\n' + line);
        const want = s.outSeq;
        await waitUntil(() => (s.readStream(), s.received >= want || s.stream!.done), s.pollMs, 'the echo of ' + want + ' on ' + t);
        total += size;
        if (s.stream!.done) {
          ended = true;
          break;
        }
      }
      if (!ended) {
        unobserved.push(t);
        continue;
      }
      const st = s.stream!;
      ensure(st.ended && !st.broken, t + ': the recycled stream was cut instead of ended', 'Transports');
      const body = s.readStream();
      if (t !== 'xhr-streaming' && !body.endMarker) fail(t + ': the end of a recycled stream', t === 'sse' ? 'an "event: end" event' : '<script>p(null)</script>', st.text.slice(-120), 'Transports');
      await s.reopen(s.received);
      await s.send(['after recycling']);
      await s.until(() => s.received >= s.outSeq, 'every echo after recycling');
      const seqs = s.data.map((f) => f.s);
      equal(t + ': data frames across the recycled stream', seqs, seqs.map((_, i) => i + 1), 'Transports');
      observed.push(t + ' after ~' + Math.round(total / 1024) + ' KiB');
    }
    if (!observed.length) throw new CheckSkipped('no stream was recycled within 1 MiB of echoes (streamLimit is not announced)');
    return 'recycled: ' + observed.join(', ') + (unobserved.length ? '; not within 1 MiB: ' + unobserved.join(', ') : '');
  }),
  check('Transports', 'Origin: a foreign Origin is refused on every transport (403/4403; sse and iframe-streaming GETs: 200 with close frame 4403 in the stream; websocket: close frame and code 4403); iframe-streaming checks po (200, close frame 4403 in a document posting to po)', async (io) => {
    const foreign = io.target.foreignOrigin;
    if (!foreign) throw new CheckSkipped('no foreign origin given (--foreign-origin)');
    for (const t of HTTP_TRANSPORTS) {
      if (!(await offered(io, t))) continue;
      const hs = await io.http('GET', io.url(t, 'v=1' + io.getExtra(t)), { origin: foreign, timeoutMs: io.ms });
      // sse and iframe-streaming: 200 with the close frame in the stream (PROTOCOL.md "Close").
      expectGetRefusal(io, t, hs, 403, 4403, t + ' handshake with Origin: ' + foreign, 'Transports');
      checkNoStore(hs.headers, 'a refusal');
    }
    const s = await HttpSession.handshake(io, 'long-polling');
    expectRefusal(await io.http('POST', s.postUrl, { body: '{"t":"d","s":1,"d":"x"}', origin: foreign }), 403, 4403, 'a POST with a foreign Origin', 'Transports');
    expectRefusal(await io.http('GET', s.getUrl(0), { origin: foreign }), 403, 4403, 'a continuing GET with a foreign Origin', 'Transports');
    expectRefusal(await io.http('OPTIONS', io.url('long-polling', ''), { origin: foreign }), 403, 4403, 'an OPTIONS request with a foreign Origin', 'Transports');
    await expectWsRefusal(io, io.ws('v=1', { origin: foreign }), 4403, 'a websocket upgrade with Origin: ' + foreign, 'websocket');
    if (await offered(io, 'iframe-streaming')) {
      // The iframe cannot read a status: 200 and a document carrying close frame 4403, posted to po
      // ("postMessage targets exactly po"), so the page that named it learns the code.
      const r = await io.http('GET', io.url('iframe-streaming', 'v=1' + io.getExtra('iframe-streaming', foreign)), { origin: null });
      expectGetRefusal(io, 'iframe-streaming', r, 403, 4403, 'iframe-streaming with po=' + foreign + ' and no Origin header', 'Transports', foreign);
    }
    await s.send(['still fine']);
    await s.until(() => s.received >= 1, 'the echo after foreign requests on the session');
  }),
  check('Transports', 'CORS: an accepted Origin gets Access-Control-Allow-Origin, -Credentials: true and Vary: Origin; OPTIONS is answered 204', async (io) => {
    const origin = io.target.origin;
    if (!origin) throw new CheckSkipped('no accepted origin given (--origin)');
    const s = await HttpSession.handshake(io, 'long-polling');
    const post = await s.post('{"t":"P"}', 204);
    const get = await io.http('GET', io.url('long-polling', 'v=1'));
    const opt = await io.http('OPTIONS', s.postUrl, { headers: { 'Access-Control-Request-Method': 'POST' } });
    equal('OPTIONS status', opt.status, 204, 'Transports');
    for (const [what, r] of [
      ['a handshake GET', get],
      ['a POST', post],
    ] as const) {
      equal(what + ': Access-Control-Allow-Origin', r.headers['access-control-allow-origin'], origin, 'Transports');
      equal(what + ': Access-Control-Allow-Credentials', r.headers['access-control-allow-credentials'], 'true', 'Transports');
      const vary = String(r.headers.vary ?? '').toLowerCase().split(',').map((x) => x.trim());
      ensure(vary.indexOf('origin') >= 0 || vary.indexOf('*') >= 0, what + ': Vary does not name Origin: ' + show(r.headers.vary), 'Transports');
      checkNoStore(r.headers, what);
    }
    checkNoStore(opt.headers, 'an OPTIONS answer');
    const lp = parseBatch(get.body, 'Transports')[0];
    if (lp && lp.t === 'o') {
      await io.http('POST', io.url('long-polling', 'sid=' + encodeURIComponent(lp.sid) + '&tok=' + encodeURIComponent(lp.tok)), { body: '{"t":"c","c":1000,"r":""}' });
    }
    checkHeaders(get.headers, 'long-polling', 'a handshake GET');
  }),
];

/** Every check, in the order the CLI runs them. */
export const checks: Check[] = [...handshakes, ...refusals, ...sessions, ...resume, ...probes, ...heartbeat, ...close, ...transports];

// ---- running -------------------------------------------------------------------------------------------

export interface Result {
  check: Check;
  status: 'ok' | 'fail' | 'skip';
  /** The failure, the reason for skipping, or a note on success. */
  message: string;
  ms: number;
}

/** Run one check against `target`, bounded by `capMs`. Slow checks are skipped unless `slow`. */
export async function runCheck(c: Check, target: Target, opts: { slow?: boolean; capMs?: number } = {}): Promise<Result> {
  const t0 = Date.now();
  if (c.slow && !opts.slow) return { check: c, status: 'skip', message: 'slow (waits on the server\'s hb and hto): run with --slow', ms: 0 };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const cap = opts.capMs ?? 180000;
  try {
    const report = await Promise.race([
      c.run(target),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new CheckFailed('the check did not finish within ' + cap + ' ms')), cap))),
    ]);
    return { check: c, status: 'ok', message: report.note || '', ms: Date.now() - t0 };
  } catch (e) {
    if (e instanceof CheckSkipped) return { check: c, status: 'skip', message: e.message, ms: Date.now() - t0 };
    const err = e instanceof Error ? e : new Error(String(e));
    let message = err instanceof CheckFailed ? err.message : 'error: ' + err.message;
    if (message.indexOf('PROTOCOL.md') < 0) message += ' (PROTOCOL.md "' + c.section + '")';
    return { check: c, status: 'fail', message, ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}


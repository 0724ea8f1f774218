/**
 * Upgrade probes (PROTOCOL.md, "Upgrade probes"): a handshake with probe=1 gets one ping on its
 * transport, held open, and creates or touches no session; probes count against maxSessions with sessions.
 */
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerOptions } from '../../server/options';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, http, lpHandshake, rawWs, serve, sleep } from '../helpers/raw';

afterEach(cleanupAll);

const FAST: ServerOptions = { pingInterval: 300, pingTimeout: 300, sessionTimeout: 2000, pollTimeout: 300, allowedOrigins: '*' };

/** A streaming GET, its body as it arrives, and whether it ended. */
function streamGet(url: string): { body: () => string; ended: () => boolean; status: Promise<number> } {
  let body = '';
  let ended = false;
  const status = new Promise<number>((resolve, reject) => {
    const req = httpRequest(url, (res) => {
      resolve(res.statusCode || 0);
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (ended = true));
      res.on('close', () => (ended = true));
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end();
    defer(() => req.destroy());
  });
  return { body: () => body, ended: () => ended, status };
}

describe('upgrade probes', () => {
  it('websocket probe: one ping, held open, no session, no connection event', async () => {
    const s = await serve(FAST);
    let connections = 0;
    s.rt.on('connection', () => connections++);
    const raw = rawWs(s.url + '/websocket?v=1&probe=1');
    await waitFor(() => raw.messages.length > 0, 3000, 'the ping');
    expect(raw.messages).toEqual(['{"t":"p"}']);
    await sleep(100);
    expect(raw.ws.readyState).toBe(raw.ws.OPEN);
    expect(connections).toBe(0);
    expect(s.rt.clientsCount).toBe(0);
  });

  it('a probe held past pingInterval + pingTimeout is ended by the server', async () => {
    const s = await serve(FAST);
    const raw = rawWs(s.url + '/websocket?v=1&probe=1');
    expect((await raw.closed).code).toBe(1000);
    expect(raw.messages).toEqual(['{"t":"p"}']);
  });

  it('a frame sent on a websocket probe is refused with 4400', async () => {
    const s = await serve(FAST);
    const raw = rawWs(s.url + '/websocket?v=1&probe=1');
    await waitFor(() => raw.messages.length > 0, 3000, 'the ping');
    raw.ws.send('{"t":"d","s":1,"d":"x"}');
    expect((await raw.closeFrame()).c).toBe(4400);
  });

  it('xhr-streaming probe: the ping arrives while the response stays open (a buffering proxy would hold it)', async () => {
    const s = await serve(FAST);
    const g = streamGet(s.url + '/xhr-streaming?v=1&probe=1');
    expect(await g.status).toBe(200);
    await waitFor(() => g.body().includes('{"t":"p"}'), 3000, 'the ping');
    await sleep(150);
    expect(g.ended()).toBe(false);
    expect(s.rt.clientsCount).toBe(0);
  });

  it('long-polling probe: answered at once with the ping', async () => {
    const s = await serve(FAST);
    const r = await http('GET', s.url + '/long-polling?v=1&probe=1');
    expect(r.status).toBe(200);
    expect(r.body).toBe('{"t":"p"}');
    expect(s.rt.clientsCount).toBe(0);
  });

  it('a probe leaves the session it does not name alone: the session keeps its poll', async () => {
    const s = await serve(FAST);
    const lp = await lpHandshake(s.url);
    const poll = http('GET', lp.base + '&ack=0');
    const raw = rawWs(s.url + '/websocket?v=1&probe=1&sid=' + encodeURIComponent(lp.sid) + '&tok=' + encodeURIComponent(lp.tok));
    await waitFor(() => raw.messages.length > 0, 3000, 'the ping');
    expect(raw.messages).toEqual(['{"t":"p"}']);
    // The held poll is answered by its own timeout (empty, 200), not a 409 takeover.
    const r = await poll;
    expect(r.status).toBe(200);
    expect(s.rt.connections()[0].transport).toBe('long-polling');
  });

  it('probes are bounded by maxSessions: one more is refused 503 with Retry-After', async () => {
    const s = await serve({ ...FAST, maxSessions: 2 });
    const a = rawWs(s.url + '/websocket?v=1&probe=1');
    const b = rawWs(s.url + '/websocket?v=1&probe=1');
    await waitFor(() => a.messages.length > 0 && b.messages.length > 0, 3000, 'two pings');
    const r = await http('GET', s.url + '/long-polling?v=1&probe=1');
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    // Once one lets go, a probe is accepted again.
    a.ws.close();
    await a.closed;
    await waitFor(() => s.rt.clientsCount === 0, 100, 'nothing else');
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = (await http('GET', s.url + '/long-polling?v=1&probe=1')).status;
      if (status !== 200) await sleep(50);
    }
    expect(status).toBe(200);
  });
});

/**
 * Racing handshakes (w=1, PROTOCOL.md "Handshake"): a client that races two transports for a new
 * session opens two sessions; the server announces one only when its client keeps it, so the
 * application never sees (nor sends into) the race loser. Each cell fails on a server that
 * announces every session at its handshake.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../server/index';
import { cleanupAll, http, serve, sleep } from '../helpers/raw';

afterEach(cleanupAll);

async function racing(url: string): Promise<{ sid: string; tok: string; post: string; get: string }> {
  const r = await http('GET', url + '/long-polling?v=1&w=1');
  expect(r.status).toBe(200);
  const open = JSON.parse(r.body.split('\n')[0]) as { t: string; sid: string; tok: string };
  expect(open.t).toBe('o');
  const q = '?sid=' + encodeURIComponent(open.sid) + '&tok=' + encodeURIComponent(open.tok);
  return { sid: open.sid, tok: open.tok, post: url + '/long-polling' + q, get: url + '/long-polling' + q };
}

describe('racing handshakes (w=1)', () => {
  it('the session is announced when its client sends a first frame (a pong), not at the handshake; then it is in connections() and broadcast reaches it', async () => {
    const s = await serve({ allowedOrigins: '*' });
    const seen: Connection[] = [];
    s.rt.on('connection', (c) => seen.push(c));
    const a = await racing(s.url);
    await sleep(50);
    expect(seen, 'announced before its client kept it').toEqual([]);
    expect(s.rt.connections()).toEqual([]);
    expect(s.rt.broadcast('to everyone')).toBe(0);
    expect(s.rt.clientsCount).toBe(1);
    expect((await http('POST', a.post, { body: '{"t":"P"}' })).status).toBe(204);
    expect(seen.map((c) => c.id)).toEqual([a.sid]);
    expect(s.rt.connections().map((c) => c.id)).toEqual([a.sid]);
    expect(s.rt.broadcast('to everyone')).toBe(1);
  });

  it("a data frame keeps it too, and the application gets 'connection' before that frame's 'message'", async () => {
    const s = await serve({ allowedOrigins: '*' });
    const order: string[] = [];
    s.rt.on('connection', (c) => {
      order.push('connection');
      c.on('message', (d) => order.push('message ' + String(d)));
    });
    const a = await racing(s.url);
    expect((await http('POST', a.post, { body: '{"t":"d","s":1,"d":"hello"}' })).status).toBe(204);
    expect(order).toEqual(['connection', 'message hello']);
  });

  it("an application that closes it in its 'connection' handler gets no 'message' from the frame that kept it", async () => {
    const s = await serve({ allowedOrigins: '*' });
    const events: string[] = [];
    s.rt.on('connection', (c) => {
      c.on('message', (d) => events.push('message ' + String(d)));
      c.on('close', (code) => events.push('close ' + code));
      events.push('connection');
      c.close(4000, 'not allowed');
    });
    const a = await racing(s.url);
    await http('POST', a.post, { body: '{"t":"d","s":1,"d":"hello"}\n{"t":"d","s":2,"d":"again"}' });
    expect(events).toEqual(['connection', 'close 4000']);
  });

  it('one whose client keeps polling but never sends a frame is dropped unseen after hb + hto', async () => {
    const s = await serve({ allowedOrigins: '*', pingInterval: 200, pingTimeout: 200, pollTimeout: 100, sessionTimeout: 60000 });
    const seen: string[] = [];
    s.rt.on('connection', (c) => seen.push(c.id));
    const a = await racing(s.url);
    const until = Date.now() + 3000;
    while (s.rt.clientsCount > 0 && Date.now() < until) await http('GET', a.get + '&ack=0', { timeout: 2000 }).catch(() => undefined);
    expect(s.rt.clientsCount).toBe(0);
    expect(seen).toEqual([]);
  });

  it('a race loser closed by its client (1000 "lost the race") is dropped without any event', async () => {
    const s = await serve({ allowedOrigins: '*' });
    const events: string[] = [];
    s.rt.on('connection', (c) => {
      events.push('connection ' + c.id);
      c.on('close', (code, reason) => events.push('close ' + code + ' ' + reason));
    });
    const a = await racing(s.url);
    expect((await http('POST', a.post, { body: '{"t":"c","c":1000,"r":"lost the race"}' })).status).toBe(204);
    await sleep(50);
    expect(s.rt.clientsCount).toBe(0);
    expect(events).toEqual([]);
  });

  it('a resume of it keeps it (the client kept the session, its pong lost with the first transport)', async () => {
    const s = await serve({ allowedOrigins: '*' });
    const seen: string[] = [];
    s.rt.on('connection', (c) => seen.push(c.id));
    const a = await racing(s.url);
    const r = await http('GET', s.url + '/long-polling?v=1&sid=' + encodeURIComponent(a.sid) + '&tok=' + encodeURIComponent(a.tok) + '&ack=0');
    expect(r.status).toBe(200);
    expect(seen).toEqual([a.sid]);
  });

  it('one never kept expires unseen; a handshake without w is announced at once', async () => {
    const s = await serve({ allowedOrigins: '*', pingInterval: 100, pingTimeout: 100, pollTimeout: 50, sessionTimeout: 200 });
    const seen: string[] = [];
    const closes: string[] = [];
    s.rt.on('connection', (c) => {
      seen.push(c.id);
      c.on('close', (code) => closes.push(c.id + ' ' + code));
    });
    const a = await racing(s.url);
    const plain = await http('GET', s.url + '/long-polling?v=1');
    const b = JSON.parse(plain.body.split('\n')[0]) as { sid: string };
    expect(seen).toEqual([b.sid]);
    const until = Date.now() + 3000;
    while (s.rt.clientsCount > 0 && Date.now() < until) await sleep(20);
    expect(s.rt.clientsCount).toBe(0);
    expect(seen).toEqual([b.sid]);
    expect(closes).toEqual([b.sid + ' 4408']);
    expect(a.sid).not.toBe(b.sid);
  });
});

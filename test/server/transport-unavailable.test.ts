/**
 * A server that leaves a transport out (ServerOptions.transports) answers it 501 / 4501, and the
 * client takes that for "not here": the transport is not probed again, and a resume race that
 * meets it still resumes the session. Before, the answer was 404, which a resuming client reads as
 * 4404 (session lost): it dropped a live session and handed its messages back.
 */
import { createServer as createHttpServer, request as httpRequest, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, longPolling, shortPolling } from '../../src/index';
import { longPollingServer } from '../../server/index';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, echo, serve, sleep, startProxy } from '../helpers/raw';

afterEach(cleanupAll);

describe('a transport the server does not offer', () => {
  it('short polling left out: the session opens on long polling, short polling is not probed, and after the connection is cut the resume race meets 501 and still resumes (no session-lost)', async () => {
    const s = await serve({ transports: [longPollingServer()], pingInterval: 400, pingTimeout: 400, pollTimeout: 600 });
    echo(s.rt);
    const requests: string[] = [];
    let heldPolls = 0;
    s.http.prependListener('request', (req, res) => {
      requests.push(req.method + ' ' + (req.url || ''));
      if (req.method === 'GET' && (req.url || '').startsWith('/rt/long-polling')) {
        heldPolls++;
        res.on('close', () => heldPolls--);
      }
    });
    const proxy = await startProxy(s.port);
    const url = 'http://127.0.0.1:' + proxy.port + '/rt';
    // Short polling first: it is the better candidate, so the socket would probe it to upgrade.
    const sock = connect(url, { transports: [shortPolling, longPolling], backoffBase: 20, backoffCap: 100, rememberFor: 0 });
    defer(() => sock.close());
    const events: string[] = [];
    const got: string[] = [];
    sock.on('open', () => events.push('open'));
    sock.on('resume', () => events.push('resume'));
    sock.on('session-lost', (i) => events.push('session-lost:' + i.code));
    sock.on('reconnecting', (i) => events.push('reconnecting:' + i.code));
    sock.on('close', (i) => events.push('close:' + i.code));
    sock.on('message', (d) => got.push(d as string));
    await waitFor(() => sock.state === 'open', 3000, 'open');
    expect(sock.transport).toBe('long-polling');
    const first = sock.id;

    // Long enough for an upgrade probe (the first comes within 1 s, backoff base 1000 ms).
    await sleep(1500);
    const shortBefore = requests.filter((r) => r.includes('/short-polling')).length;
    expect(requests.filter((r) => r.includes('/short-polling') && r.includes('probe=1')), 'upgrade probes of short polling').toEqual([]);

    for (let i = 0; i < 5; i++) sock.send('a' + i);
    await waitFor(() => got.length === 5, 3000, 'the first echoes');
    // Cut while a poll is held (the next poll may not have arrived yet on a busy machine).
    await waitFor(() => heldPolls > 0, 3000, 'a held poll');
    expect(proxy.cut(), 'connections cut').toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) sock.send('b' + i);
    await waitFor(() => events.includes('resume') || events.some((e) => e.startsWith('session-lost') || e.startsWith('close')), 5000, 'the resume: ' + events.join(', '));
    await waitFor(() => got.length === 10, 3000, 'every echo: ' + got.join(','));

    expect(events.filter((e) => !e.startsWith('reconnecting')), events.join(', ')).toEqual(['open', 'resume']);
    expect(sock.id, 'the same session').toBe(first);
    expect(got).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'b0', 'b1', 'b2', 'b3', 'b4']);
    // The resume race tried short polling (first in the list) and was answered 501.
    expect(requests.filter((r) => r.includes('/short-polling')).length, 'short polling tried again by the resume race').toBeGreaterThan(shortBefore);
  }, 15000);

  it('a proxy in front answers 404 (an HTML page, no close frame) for short polling: the client takes it for a failed transport, not a lost session, and resumes on long polling after a cut', async () => {
    const s = await serve({ pingInterval: 400, pingTimeout: 400, pollTimeout: 600 });
    echo(s.rt);
    // A proxy without a route for /rt/short-polling: its own 404 page. Everything else is forwarded.
    /** Responses in flight, with the request they answer. */
    const open = new Map<ServerResponse, string>();
    let notFound = 0;
    const front = createHttpServer((req, res) => {
      if ((req.url || '').startsWith('/rt/short-polling')) {
        notFound++;
        req.resume();
        res.writeHead(404, { 'Content-Type': 'text/html' });
        return res.end('<html><body><h1>404 Not Found</h1></body></html>');
      }
      open.set(res, req.method + ' ' + (req.url || ''));
      res.on('close', () => open.delete(res));
      const up = httpRequest({ host: '127.0.0.1', port: s.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode || 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
    defer(() => new Promise<void>((r) => (front.closeAllConnections(), front.close(() => r()))));
    const url = 'http://127.0.0.1:' + (front.address() as AddressInfo).port + '/rt';
    const sock = connect(url, { transports: [shortPolling, longPolling], backoffBase: 20, backoffCap: 100, rememberFor: 0, upgrade: false });
    defer(() => sock.close());
    const events: string[] = [];
    const got: string[] = [];
    sock.on('resume', () => events.push('resume'));
    sock.on('session-lost', (i) => events.push('session-lost:' + i.code));
    sock.on('close', (i) => events.push('close:' + i.code));
    sock.on('message', (d) => got.push(d as string));
    await waitFor(() => sock.state === 'open', 3000, 'open');
    const first = sock.id;
    const before = notFound;
    sock.send('a');
    await waitFor(() => got.length === 1, 3000, 'the first echo');
    // Cut while a poll is held (the next poll may not have reached the proxy yet on a busy machine).
    await waitFor(() => [...open.values()].some((r) => r.startsWith('GET /rt/long-polling')), 3000, 'a held poll');
    for (const res of open.keys()) res.destroy();
    sock.send('b');
    await waitFor(() => events.length > 0, 5000, 'the resume');
    await waitFor(() => got.length === 2, 3000, 'the second echo');
    expect(events, events.join(', ')).toEqual(['resume']);
    expect(sock.id).toBe(first);
    expect(notFound, 'the resume race met the proxy 404').toBeGreaterThan(before);
  }, 15000);
});

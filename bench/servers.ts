/**
 * The benchmark's server process (forked by run.ts): a raw `ws` server, a cometsocket server and a
 * socket.io server, each on 127.0.0.1 with a port of its own. Every one sends "hello" to a new
 * connection, then echoes every message. The parent talks to this process over IPC:
 *   child → parent  { ports }          once all three listen
 *   parent → child  'cpu'              answered with { cpu }: this process's CPU time so far, µs
 *   parent → child  'count'            answered with { open }: connections still open per server
 *   parent → child  'stop'             close everything and exit
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as IoServer } from 'socket.io';
import { WebSocketServer } from 'ws';
import { createServer } from '../server/index';

export interface Ports {
  ws: number;
  comet: number;
  io: number;
}

export type OpenCounts = Ports;

export type ChildMessage = { ports: Ports } | { cpu: number } | { open: OpenCounts };

/** What the cases get from run.ts: where the servers listen, and what they have cost so far. */
export interface Servers {
  ports: Ports;
  /** CPU time (user + system) of the server process so far, µs. */
  cpuTime(): Promise<number>;
}

function listening(server: HttpServer): Promise<number> {
  return new Promise((resolve) => server.once('listening', () => resolve((server.address() as AddressInfo).port)));
}

async function main(): Promise<void> {
  const wsHttp = createHttpServer();
  const wss = new WebSocketServer({ server: wsHttp });
  wss.on('connection', (ws) => {
    ws.send('hello');
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  wsHttp.listen(0, '127.0.0.1');

  const rt = createServer({ path: '/rt', allowedOrigins: '*' });
  rt.on('connection', (conn) => {
    conn.send('hello');
    conn.on('message', (d) => conn.send(d));
  });
  const rtHttp = rt.listen(0, '127.0.0.1');

  const ioHttp = createHttpServer();
  const io = new IoServer(ioHttp, { serveClient: false });
  io.on('connection', (socket) => {
    socket.send('hello');
    socket.on('message', (d) => socket.send(d));
  });
  ioHttp.listen(0, '127.0.0.1');

  const [ws, comet, ioPort] = await Promise.all([listening(wsHttp), listening(rtHttp), listening(ioHttp)]);
  const send = (m: ChildMessage): void => void process.send!(m);
  send({ ports: { ws, comet, io: ioPort } });

  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      send({ cpu: u.user + u.system });
    } else if (m === 'count') send({ open: { ws: wss.clients.size, comet: rt.clientsCount, io: io.engine.clientsCount } });
    else if (m === 'stop') process.disconnect!();
  });
  // On 'stop', or when the parent went away without saying it: close everything and exit.
  process.once('disconnect', () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    wsHttp.close();
    wsHttp.closeAllConnections();
    rt.close();
    io.close();
    ioHttp.closeAllConnections();
    // Should anything still hold the event loop, exit anyway.
    setTimeout(() => process.exit(0), 2000).unref();
  });
}

void main();

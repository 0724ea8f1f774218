/**
 * The clients under test, behind one shape: `dial` opens a connection to the matching server in
 * servers.ts and resolves once the server's "hello" arrived; later messages go to `onmessage`.
 * Each library runs its own Node path: cometsocket gets the `ws` constructor for WebSocket and
 * long-polls with Node's global fetch; socket.io-client uses `ws` and its XHR shim.
 */
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { connect, longPolling, webSocket } from '../src/index';
import type { WebSocketConstructor } from '../src/env';
import type { Transport } from '../transports/types';
import type { Ports } from './servers';

export interface Conn {
  send(data: string | Uint8Array): void;
  close(): void;
  onmessage: (data: string) => void;
}

export interface Client {
  name: string;
  dial(ports: Ports): Promise<Conn>;
}

interface Wire {
  send(data: string | Uint8Array): void;
  close(): void;
}

/**
 * Adapt a client library: `open` starts connecting and returns the wire; it calls `deliver` with
 * each message and `fail` when the connection breaks. The first message is the server's hello.
 */
function dialWith(open: (deliver: (data: string) => void, fail: (why: string) => void) => Wire): Promise<Conn> {
  return new Promise((resolve, reject) => {
    let conn: Conn | null = null;
    // Messages arrive asynchronously, so `wire` is assigned before `deliver` first runs.
    const wire: Wire = open(
      (data) => {
        if (conn) return conn.onmessage(data);
        conn = { send: wire.send, close: wire.close, onmessage: () => {} };
        resolve(conn);
      },
      (why) => {
        if (!conn) reject(new Error(why));
      },
    );
  });
}

const rawWs: Client = {
  name: 'ws',
  dial: (p) =>
    dialWith((deliver, fail) => {
      const ws = new WebSocket('ws://127.0.0.1:' + p.ws + '/');
      ws.on('message', (data) => deliver(data.toString()));
      ws.on('error', (e) => fail('ws: ' + e.message));
      ws.on('close', (code) => fail('ws closed: ' + code));
      return { send: (d) => ws.send(d), close: () => ws.close() };
    }),
};

function cometsocket(name: string, transports?: readonly Transport[]): Client {
  return {
    name,
    dial: (p) =>
      dialWith((deliver, fail) => {
        const url = 'http://127.0.0.1:' + p.comet + '/rt';
        const s = connect(url, { transports, WebSocket: WebSocket as unknown as WebSocketConstructor });
        s.on('message', (d) => deliver(d as string));
        s.on('reconnecting', (i) => fail('cometsocket reconnecting: ' + i.code + ' ' + i.reason));
        s.on('close', (i) => fail('cometsocket closed: ' + i.code + ' ' + i.reason));
        return {
          send: (d) => {
            if (!s.send(d)) throw new Error('cometsocket: send buffer full');
          },
          close: () => s.close(),
        };
      }),
  };
}

function socketIo(name: string, transports?: Array<'websocket' | 'polling'>): Client {
  return {
    name,
    dial: (p) =>
      dialWith((deliver, fail) => {
        const s = io('http://127.0.0.1:' + p.io, { transports, forceNew: true, reconnection: false });
        s.on('message', deliver);
        s.on('connect_error', (e) => fail('socket.io: ' + e.message));
        s.on('disconnect', (why) => fail('socket.io disconnected: ' + why));
        return { send: (d) => void s.send(d), close: () => void s.disconnect() };
      }),
  };
}

export const clients = {
  rawWs,
  cometWs: cometsocket('cometsocket', [webSocket]),
  cometLp: cometsocket('cometsocket long-polling', [longPolling]),
  cometDefault: cometsocket('cometsocket default'),
  ioWs: socketIo('socket.io', ['websocket']),
  ioPolling: socketIo('socket.io polling', ['polling']),
  ioDefault: socketIo('socket.io default'),
};

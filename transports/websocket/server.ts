/** WebSocket transport, server side (the `ws` package): one text message per batch. */
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeFrame } from '../../src/frame';
import { isRefusal, type LinkedConnection, type Refusal, type ServerLink, type ServerTransport } from '../server-types';

/** Stop writing while this much waits in the socket; the session buffer (bounded) holds the rest. */
const HIGH_WATER = 1 << 20;

class WsLink implements ServerLink {
  readonly name = 'websocket';
  conn: LinkedConnection | null = null;
  private waiting: ReturnType<typeof setTimeout> | undefined;
  constructor(private readonly ws: WebSocket) {}

  notify(): void {
    const c = this.conn;
    const ws = this.ws;
    while (c && c.link === this && c.hasOutput && ws.readyState === ws.OPEN) {
      if (ws.bufferedAmount >= HIGH_WATER) {
        if (!this.waiting) this.waiting = setTimeout(() => ((this.waiting = undefined), this.notify()), 20);
        return;
      }
      const b = c.take();
      if (b) ws.send(b);
    }
  }

  end(abort?: boolean): void {
    if (this.waiting) clearTimeout(this.waiting);
    if (abort) this.ws.terminate();
    else this.ws.close(1000);
  }

  refuse(r: Refusal): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(encodeFrame({ t: 'c', c: r.code, r: r.reason }));
    this.ws.close(r.code >= 4000 ? r.code : 1008, r.reason.slice(0, 120));
  }
}

/** The WebSocket transport's server half. */
export function webSocketServer(): ServerTransport {
  let wss: WebSocketServer | null = null;
  return {
    name: 'websocket',
    upgrade(req, socket, head, query, hub) {
      if (!wss) wss = new WebSocketServer({ noServer: true, maxPayload: hub.maxBatch, perMessageDeflate: false, clientTracking: true });
      wss.handleUpgrade(req, socket, head, (ws) => {
        const link = new WsLink(ws);
        ws.on('error', () => {
          /* 'close' follows */
        });
        const conn = hub.handshake(query, req, link);
        if (isRefusal(conn)) return link.refuse(conn);
        link.conn = conn;
        ws.on('message', (data, isBinary) => {
          if (isBinary) return link.refuse(conn.fail({ status: 400, code: 4400, reason: 'binary message on a text protocol' }));
          const r = conn.receive(data.toString());
          if (r) link.refuse(r);
        });
        ws.on('close', () => conn.detach(link));
        link.notify();
      });
    },
    close() {
      if (wss) for (const ws of wss.clients) ws.terminate();
      wss = null;
    },
  };
}

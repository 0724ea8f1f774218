/** WebSocket transport, server side (the `ws` package): one text message per batch, one binary message per payload of bytes. */
import { WebSocketServer, type WebSocket } from 'ws';
import { closeFrame, decodeUtf8, truncate } from '../http-server';
import { isRefusal, type LinkedConnection, type Refusal, type ServerLink, type ServerTransport } from '../server-types';

/** A close code `ws` accepts for ws.close(): ours (1000, 1001, 3000–4999) as they are, others as 1008. */
function wsCode(code: number): number {
  return code === 1000 || code === 1001 || (code >= 3000 && code <= 4999) ? code : 1008;
}

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
      const b = c.take(true);
      if (b.length) ws.send(b);
    }
  }

  end(code = 1000, reason = ''): void {
    if (this.waiting) clearTimeout(this.waiting);
    if (code < 0) this.ws.terminate();
    else this.ws.close(wsCode(code), truncate(reason));
  }

  refuse(r: Refusal): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(closeFrame(r));
    this.ws.close(wsCode(r.code), truncate(r.reason));
  }
}

/** The WebSocket transport's server half. */
export function webSocketServer(): ServerTransport {
  let wss: WebSocketServer | null = null;
  const server = (maxBatch: number): WebSocketServer => (wss ||= new WebSocketServer({ noServer: true, maxPayload: maxBatch, perMessageDeflate: false, clientTracking: true, skipUTF8Validation: true }));
  return {
    name: 'websocket',
    refuseUpgrade(req, socket, head, r) {
      // Only the close frame is ever written: no client frame is read (a 1-byte message limit).
      new WebSocketServer({ noServer: true, maxPayload: 1, perMessageDeflate: false, clientTracking: false }).handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => {});
        new WsLink(ws).refuse(r);
      });
    },
    upgrade(req, socket, head, query, hub) {
      server(hub.maxBatch).handleUpgrade(req, socket, head, (ws) => {
        const link = new WsLink(ws);
        ws.on('error', () => {
          /* 'close' follows */
        });
        const conn = hub.handshake(query, req, link);
        if (isRefusal(conn)) return link.refuse(conn);
        link.conn = conn;
        ws.on('message', (data, isBinary) => {
          // binaryType 'nodebuffer' (the default): one Buffer per message. A text message is checked
          // here, not by `ws` (skipUTF8Validation): one that is not UTF-8 is malformed, 4400.
          const text = isBinary ? '' : decodeUtf8(data as Buffer);
          const r = text === null ? conn.fail({ status: 400, code: 4400, reason: 'a text message that is not UTF-8' }) : conn.receive(isBinary ? (data as Buffer) : text);
          // A refusal that ended the session (Connection.fail) has its close frame written through
          // the session's transport already; one that did not (a sequence gap: resume) ends this
          // socket with its close frame.
          if (r && !r.ended) link.refuse(r);
        });
        ws.on('close', () => conn.detach(link));
        link.notify();
      });
    },
    close() {
      // The sessions were closed first (close frame, then ws.close): give the close handshakes a
      // moment to finish, so the last frames and acks get through, then drop what is left.
      const left = wss;
      wss = null;
      if (left && left.clients.size) setTimeout(() => left.clients.forEach((ws) => ws.terminate()), 1000).unref();
    },
  };
}

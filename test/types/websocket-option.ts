/**
 * Compiled by `npm run typecheck` (tsc -p . includes test/), never run: the README's Node example
 * and a page's own WebSocket must fit the `WebSocket` option without a cast. It failed to compile
 * while WebSocketLike's handlers were plain function types (strict function types reject
 * `(ev: Event) => void` against `(ev: unknown) => void`).
 */
import NodeWebSocket from 'ws';
import { connect, type WebSocketConstructor } from '../../src/index';

export function fromNode(url: string): void {
  connect(url, { WebSocket: NodeWebSocket });
}

export function fromPage(url: string): void {
  connect(url, { WebSocket: globalThis.WebSocket });
}

export const asConstructor: WebSocketConstructor = NodeWebSocket;

/**
 * cometsocket: one socket that works through any network.
 *
 * `connect(url)` tries every transport; `new Socket(url, { transports: [webSocket] })` bundles
 * only the transports it names.
 */
import { Socket } from './socket';
import type { SocketOptions } from './options';
import { webSocket } from '../transports/websocket/client';
import { sse } from '../transports/sse/client';
import { xhrStreaming } from '../transports/xhr-streaming/client';
import { iframeStreaming } from '../transports/iframe-streaming/client';
import { longPolling } from '../transports/long-polling/client';
import { shortPolling } from '../transports/short-polling/client';

/**
 * Every transport, best first: the default of `connect()`. Negotiation keeps only the first
 * streaming transport the browser supports.
 */
export const allTransports = [webSocket, sse, xhrStreaming, iframeStreaming, longPolling, shortPolling] as const;

/** Open a socket. Without `options.transports`, every transport is tried, WebSocket first. */
export function connect(url: string, options?: SocketOptions): Socket {
  return new Socket(url, options, allTransports);
}

export { Socket, webSocket, sse, xhrStreaming, iframeStreaming, longPolling, shortPolling };
export { CloseCode, isRetryable } from './close-codes';
export { PROTOCOL_VERSION } from './frame';
export type { CloseCodeValue } from './close-codes';
export type {
  CloseInfo,
  ReconnectingInfo,
  SessionLostInfo,
  SocketEvents,
  SocketOptions,
  SocketState,
} from './options';
export type { Env, EventSourceLike, HttpRequest, HttpResult, PageLike, WebSocketConstructor, WebSocketLike, XhrLike } from './env';
export type { StorageLike } from './negotiate';
export type { Payload } from './payload';
export type { ClientTransport, Transport, TransportClose, TransportHooks, TransportSettings } from '../transports/types';
export type { Frame, OpenFrame, DataFrame, AckFrame, PingFrame, PongFrame, CloseFrame, Limits } from './frame';

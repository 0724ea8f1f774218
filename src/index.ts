/**
 * cometsocket: one socket that works through any network.
 *
 * `connect(url)` tries every transport; `new Socket(url, { transports: [webSocket] })` bundles
 * only the transports it names.
 */
import { Socket } from './socket';
import type { SocketOptions } from './options';
import { webSocket } from '../transports/websocket/client';
import { longPolling } from '../transports/long-polling/client';

/** Every transport, best first: the default of `connect()`. */
export const allTransports = [webSocket, longPolling] as const;

/** Open a socket. Without `options.transports`, every transport is tried, WebSocket first. */
export function connect(url: string, options?: SocketOptions): Socket {
  return new Socket(url, options, allTransports);
}

export { Socket, webSocket, longPolling };
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
export type { Env, HttpRequest, HttpResult, WebSocketConstructor, WebSocketLike } from './env';
export type { Payload } from './payload';
export type { ClientTransport, Transport, TransportClose, TransportHooks, TransportSettings } from '../transports/types';
export type { Frame, OpenFrame, DataFrame, AckFrame, PingFrame, PongFrame, CloseFrame, Limits } from './frame';

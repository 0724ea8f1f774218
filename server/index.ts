/** cometsocket/server: the reference server (Node). */
export { createServer, RtServer } from './server';
export { Connection } from './connection';
export { MemoryStore } from './store';
export { webSocketServer } from '../transports/websocket/server';
export { longPollingServer } from '../transports/long-polling/server';
export { shortPollingServer } from '../transports/short-polling/server';
export { sseServer } from '../transports/sse/server';
export { xhrStreamingServer } from '../transports/xhr-streaming/server';
export { iframeStreamingServer } from '../transports/iframe-streaming/server';
export { httpTransport, plainFormat } from '../transports/http-link';
export type { HttpFormat, HttpMode } from '../transports/http-link';
export { CloseCode } from '../src/close-codes';
export type { ServerEvents } from './server';
export type { ConnectionEvents, ConnectionState } from './connection';
export type { ServerOptions } from './options';
export type { SessionStore } from './store';
export type { ServerTransport, ServerLink, LinkedConnection, TransportHub, Refusal } from '../transports/server-types';

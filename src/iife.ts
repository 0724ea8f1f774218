/** The script-tag build: `window.CometSocket`, with every transport included. */
export { connect, Socket, allTransports, webSocket, sse, xhrStreaming, iframeStreaming, longPolling, shortPolling, CloseCode, isRetryable, PROTOCOL_VERSION } from './index';

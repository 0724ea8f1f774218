/** The script-tag build: `window.CometSocket`, with every transport included. */
export { connect, Socket, allTransports, webSocket, longPolling, CloseCode, isRetryable, PROTOCOL_VERSION } from './index';

/**
 * Every close code cometsocket uses, in one place (PROTOCOL.md, "Close codes").
 * 1000–1011 keep their WebSocket meaning; 4xxx mirror the HTTP status they go with.
 * Codes marked "local" never travel on the wire: the client reports them in `close`.
 */
export const CloseCode = {
  /** The application closed the socket. */
  Normal: 1000,
  /** The server is shutting down; reconnect later. */
  GoingAway: 1001,
  /** A batch was larger than the server's limit (WebSocket only, sent by `ws`). */
  MessageTooBig: 1009,
  /** Local: the server broke the protocol (malformed frame, sequence gap, impossible ack). */
  ProtocolError: 1002,
  /** Local: the connection failed or dropped without a close frame. */
  Abnormal: 1006,
  /** The server hit an unexpected error. */
  InternalError: 1011,
  /** A frame could not be decoded or broke the protocol. */
  BadFrame: 4400,
  /** The `Origin` header is not allowed. */
  ForbiddenOrigin: 4403,
  /** The session id or resume token is unknown: the session is gone. */
  UnknownSession: 4404,
  /** No frame arrived within the heartbeat deadline. */
  HeartbeatTimeout: 4408,
  /** A second poll while one is pending, a sequence gap, or a poll on a session another transport carries. */
  Conflict: 4409,
  /** A payload was larger than the server's limit. */
  PayloadTooLarge: 4413,
  /** The server is overloaded or at its session limit; retry after the delay it gives. */
  Overloaded: 4429,
  /** The peer stopped reading and its buffer passed the limit. */
  BufferOverflow: 4507,
  /** The server does not offer this transport (HTTP 501): the client tries another. */
  TransportUnavailable: 4501,
  /** Local: the protocol version is not supported by the server. */
  UnsupportedVersion: 4505,
  /** Local: reconnection gave up (max attempts reached or `shouldRetry` said no). */
  RetriesExhausted: 4100,
  /** Local: no transport in the list is supported by this environment. */
  NoTransport: 4101,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * The one retry decision: may a session or transport that ended with `code` be retried?
 * Codes that mean "this client is wrong" (bad frames, oversize payloads, a forbidden origin)
 * are fatal: retrying would fail the same way.
 */
export function isRetryable(code: number): boolean {
  return FATAL.indexOf(code) < 0;
}

/**
 * The codes a server's close frame may carry without ending the session: the client reconnects
 * and resumes (going away, internal error, heartbeat, conflict, overload). Any other code in a
 * close frame ends the session: a close frame is the server's decision, not a broken transport.
 */
export function isTransient(code: number): boolean {
  return TRANSIENT.indexOf(code) >= 0;
}

// Literal codes (smaller once minified than CloseCode.X); the names are in the comments.
// GoingAway, InternalError, HeartbeatTimeout, Conflict, Overloaded.
const TRANSIENT: number[] = [1001, 1011, 4408, 4409, 4429];

// Normal, MessageTooBig, BadFrame, ForbiddenOrigin, PayloadTooLarge, BufferOverflow,
// UnsupportedVersion, RetriesExhausted, NoTransport.
const FATAL: number[] = [1000, 1009, 4400, 4403, 4413, 4507, 4505, 4100, 4101];

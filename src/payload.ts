/** Application payloads ↔ what the session keeps: strings as they are, bytes as a copy. */

export type Payload = string | ArrayBuffer | ArrayBufferView;

declare function atob(s: string): string;

/** A payload as the session keeps it. Bytes are copied: the caller may reuse its buffer. Throws TypeError on anything else. */
export function encodePayload(data: Payload): string | Uint8Array {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (data && data.buffer instanceof ArrayBuffer) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  throw new TypeError('send() takes a string, an ArrayBuffer or a typed array');
}

/** Bytes as an ArrayBuffer of exactly their length (a copy: the application may keep it). */
export function toArrayBuffer(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** Decode a text data frame's payload back to a string or an ArrayBuffer (`binary`: base64). */
export function decodePayload(d: string, binary: boolean | undefined): string | ArrayBuffer {
  if (!binary) return d;
  const s = atob(d);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes.buffer;
}

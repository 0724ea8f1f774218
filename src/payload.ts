/** Application payloads ↔ data frame payloads: strings travel as they are, bytes as base64. */

export type Payload = string | ArrayBuffer | ArrayBufferView;

declare function btoa(s: string): string;
declare function atob(s: string): string;

/** Encode a payload for a data frame: [d, binary]. Throws TypeError on anything else. */
export function encodePayload(data: Payload): [string, boolean] {
  if (typeof data === 'string') return [data, false];
  let bytes: Uint8Array;
  if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else if (data && data.buffer instanceof ArrayBuffer) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else throw new TypeError('send() takes a string, an ArrayBuffer or a typed array');
  let s = '';
  // Chunks keep String.fromCharCode's argument list short.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  }
  return [btoa(s), true];
}

/** Decode a data frame payload back to a string or an ArrayBuffer. */
export function decodePayload(d: string, binary: boolean | undefined): string | ArrayBuffer {
  if (!binary) return d;
  const s = atob(d);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes.buffer;
}

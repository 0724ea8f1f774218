/** xhr-streaming, client side: one XMLHttpRequest read as it grows, a line per frame. */
import type { XhrLike } from '../../src/env';
import { streamTransport, type StreamOpener } from '../stream';

const open: StreamOpener = (url, h, env) => {
  const x: XhrLike = new env.XMLHttpRequest!();
  // `seen`: how much of responseText is consumed; -1 until the prelude (padding, one line) is.
  let seen = -1;
  const read = (): void => {
    const text = x.responseText || '';
    if (seen < 0) {
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      seen = nl + 1;
    }
    // Only whole lines: the last one may still be arriving.
    const cut = text.lastIndexOf('\n');
    if (cut < seen) return;
    const lines = text.slice(seen, cut);
    seen = cut + 1;
    if (lines) h.data(lines);
  };
  x.onprogress = read;
  x.onreadystatechange = () => {
    if (x.readyState === 3) read();
    else if (x.readyState === 4) {
      if (x.status === 200) read();
      let ra: string | null = null;
      try {
        ra = x.getResponseHeader('Retry-After');
      } catch {
        /* some engines throw on cross-origin headers */
      }
      h.end(x.status, ra, x.responseText);
    }
  };
  x.open('GET', url);
  // Frames are UTF-8 whatever charset a server or proxy labels them with.
  if (x.overrideMimeType) x.overrideMimeType('text/plain; charset=utf-8');
  x.send(null);
  return () => {
    x.onreadystatechange = x.onprogress = null;
    x.abort();
  };
};

/** xhr-streaming: `connect(url, { transports: [xhrStreaming] })`. */
export const xhrStreaming = streamTransport('xhr-streaming', (env) => !!env.XMLHttpRequest && !!env.request, open);

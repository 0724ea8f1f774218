/** xhr-streaming, client side: one XMLHttpRequest read as it grows, a line per frame. */
import type { XhrLike } from '../../src/env';
import { streamTransport, type StreamOpener } from '../stream';

const open: StreamOpener = (url, h, env) => {
  const x: XhrLike = new env.XMLHttpRequest!();
  let seen = 0;
  let partial = '';
  const read = (): void => {
    const text = x.responseText || '';
    if (text.length <= seen) return;
    const chunk = partial + text.slice(seen);
    seen = text.length;
    const cut = chunk.lastIndexOf('\n');
    partial = chunk.slice(cut + 1);
    const lines = chunk.slice(0, cut);
    // The prelude is padding: only lines with a frame count as data.
    if (cut >= 0 && /[^\s]/.test(lines)) h.data(lines);
  };
  x.onprogress = read;
  x.onreadystatechange = () => {
    if (x.readyState === 3) read();
    else if (x.readyState === 4) {
      if (x.status === 200) read();
      h.end(x.status);
    }
  };
  x.open('GET', url);
  x.send(null);
  return () => {
    x.onreadystatechange = x.onprogress = null;
    x.abort();
  };
};

/** xhr-streaming: `connect(url, { transports: [xhrStreaming] })`. */
export const xhrStreaming = streamTransport('xhr-streaming', (env) => !!env.XMLHttpRequest && !!env.request, open);

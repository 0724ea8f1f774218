/**
 * iframe-streaming ("forever frame"), client side: a hidden iframe loads a document the server
 * keeps open; each <script> in it hands a batch to this page by postMessage. Only messages from
 * that iframe's window, from the endpoint's origin, with this stream's id are taken.
 */
import { streamTransport, type StreamOpener } from '../stream';

interface StreamMessage {
  cometsocket?: unknown;
  b?: unknown;
}

const open: StreamOpener = (url, h, env) => {
  const page = env.page!;
  // The endpoint's origin as the browser writes it in `ev.origin` (127.1, default ports, IDN,
  // case, user@): a link element parses the URL the way the browser does.
  const a = page.document.createElement('a');
  a.href = url;
  // (Old engines keep a default port in `host`; origins never have one.)
  const origin = (a.protocol + '//' + a.host).replace(a.protocol === 'https:' ? /:443$/ : /:80$/, '');
  const id = Math.floor(env.random() * 0x7fffffff).toString(36) + env.now().toString(36);
  const frame = page.document.createElement('iframe');
  frame.style.display = 'none';
  frame.src = url + '&i=' + id + '&po=' + encodeURIComponent(page.location.protocol + '//' + page.location.host);
  let ended = false;
  const end = (status: number): void => {
    if (ended) return;
    stop();
    h.end(status);
  };
  const onMessage = (ev: { data: unknown; origin: string; source: unknown }): void => {
    const m = ev.data as StreamMessage | null;
    if (ev.source !== frame.contentWindow || ev.origin !== origin || !m || m.cometsocket !== id) return;
    if (typeof m.b === 'string') h.data(m.b);
    else end(200);
  };
  // The document loaded completely, so the stream ended; without the end message it was cut.
  // (A tick later: the end message, posted just before, is delivered first.)
  frame.onload = () => void env.setTimeout(() => end(0), 0);
  // A never-ending iframe added before the page's load event would hold that event back.
  const attach = (): void => {
    page.removeEventListener('load', attach);
    if (!ended) page.document.body!.appendChild(frame);
  };
  const stop = (): void => {
    ended = true;
    frame.onload = null;
    page.removeEventListener('message', onMessage);
    page.removeEventListener('load', attach);
    frame.src = 'about:blank';
    if (frame.parentNode) frame.parentNode.removeChild(frame);
  };
  page.addEventListener('message', onMessage);
  if (page.document.readyState === 'complete') attach();
  else page.addEventListener('load', attach);
  return stop;
};

/** iframe-streaming: `connect(url, { transports: [iframeStreaming] })`. */
export const iframeStreaming = streamTransport('iframe-streaming', (env) => !!env.page && !!env.page.document.body && !!env.request, open);

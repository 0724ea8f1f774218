/**
 * sse, client side: EventSource for server frames (one event per batch). EventSource's own
 * reconnection is not used: its URL cannot carry our ack, so an error ends the stream and the
 * stream transport reopens it (recycling) or the socket resumes the session.
 */
import { streamTransport, type StreamOpener } from '../stream';

const open: StreamOpener = (url, h, env) => {
  const es = new env.EventSource!(url);
  const stop = (): void => {
    es.onmessage = es.onerror = null;
    es.close();
  };
  es.onmessage = (ev) => h.data(ev.data);
  es.addEventListener('end', () => {
    stop();
    h.end(200);
  });
  es.onerror = () => {
    stop();
    h.end(0);
  };
  return stop;
};

/** Server-Sent Events: `connect(url, { transports: [sse] })`. */
export const sse = streamTransport('sse', (env) => !!env.EventSource && !!env.request, open);

/**
 * sse, server side: text/event-stream, one event per batch with a `data:` line per frame; the event
 * id is the highest sequence number the event carries, so `Last-Event-ID` is the client's ack.
 * The server ends the stream with an `end` event when it recycles it.
 */
import { httpTransport, PAD, type HttpFormat } from '../http-link';
import type { ServerTransport } from '../server-types';

export const sseFormat: HttpFormat = {
  contentType: 'text/event-stream; charset=UTF-8',
  prelude: () => ':' + PAD + '\n\n',
  batch: (b, seq) => 'id: ' + seq + '\ndata: ' + b.split('\n').join('\ndata: ') + '\n\n',
  end: 'event: end\ndata: \n\n',
  refuseInBody: true,
};

export const sseServer = (): ServerTransport => httpTransport('sse', sseFormat, 'stream');

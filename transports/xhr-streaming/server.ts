/** xhr-streaming, server side: one long text/plain response, a line per frame, after a padding prelude. */
import { httpTransport, PAD, type HttpFormat } from '../http-link';
import type { ServerTransport } from '../server-types';

export const xhrStreamFormat: HttpFormat = {
  contentType: 'text/plain; charset=UTF-8',
  prelude: () => PAD + '\n',
  batch: (b) => b + '\n',
  end: '',
};

export const xhrStreamingServer = (): ServerTransport => httpTransport('xhr-streaming', xhrStreamFormat, 'stream');

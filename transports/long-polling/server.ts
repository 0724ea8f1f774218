/**
 * Long polling, server side: a poll is held until the session has output or the poll timeout.
 * One poll per session: a second gets 409 and the first is answered at once.
 */
import { httpTransport, plainFormat } from '../http-link';
import type { ServerTransport } from '../server-types';

export const longPollingServer = (): ServerTransport => httpTransport('long-polling', plainFormat, 'poll');

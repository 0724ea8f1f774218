/** Short polling, server side: every poll is answered at once, empty when nothing waits. */
import { httpTransport, plainFormat } from '../http-link';
import type { ServerTransport } from '../server-types';

export const shortPollingServer = (): ServerTransport => httpTransport('short-polling', plainFormat, 'now');

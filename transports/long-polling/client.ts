/** Long polling, client side: the server holds each poll until it has frames. */
import { farewell } from '../http';
import { canRequest, polling } from '../polling';
import type { Transport } from '../types';

/** Long polling: `connect(url, { transports: [longPolling] })`. */
export const longPolling: Transport = { name: 'long-polling', supported: canRequest, open: polling('long-polling', false), farewell: farewell('long-polling') };

/** Short polling, client side: a poll every `pollInterval`, for networks that cut held requests. */
import { farewell } from '../http';
import { canRequest, polling } from '../polling';
import type { Transport } from '../types';

/** Short polling: `connect(url, { transports: [shortPolling] })`. */
export const shortPolling: Transport = { name: 'short-polling', supported: canRequest, open: polling('short-polling', true), farewell: farewell('short-polling') };

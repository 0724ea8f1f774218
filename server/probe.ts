/**
 * An upgrade probe (PROTOCOL.md, "Upgrade probes"): a handshake with `probe=1` gets one ping frame
 * on its transport and nothing else, then the response (or WebSocket) is held open until the
 * client lets go or `holdMs` passes. A client that receives the ping while the response is still
 * open knows the path does not buffer, and only then moves its session there. No session is
 * created or touched.
 */
import { encodeFrame } from '../src/frame';
import type { LinkedConnection, Refusal, ServerLink } from '../transports/server-types';

const PING = encodeFrame({ t: 'p' });

export class Probe implements LinkedConnection {
  link: ServerLink | null;
  readonly written = 0;
  /** An HTTP link detaches a probe when its response ends (transports/http-link.ts). */
  readonly probe = true;
  private pinged = false;
  private readonly timer: ReturnType<typeof setTimeout>;

  constructor(
    link: ServerLink,
    holdMs: number,
    private readonly onGone: () => void,
  ) {
    this.link = link;
    this.timer = setTimeout(() => {
      const l = this.link;
      if (!l) return;
      this.detach(l);
      l.end(1000, 'probe done');
    }, holdMs);
  }

  get hasOutput(): boolean {
    return !this.pinged;
  }

  take(): string {
    if (this.pinged) return '';
    this.pinged = true;
    return PING;
  }

  receive(): Refusal {
    return this.fail({ status: 400, code: 4400, reason: 'a probe carries no client frames' });
  }

  rewind(): Refusal {
    return { status: 404, code: 4404, reason: 'a probe has no session' };
  }

  fail(r: Refusal): Refusal {
    return r;
  }

  touch(): void {}

  detach(link: ServerLink): void {
    if (this.link !== link) return;
    this.link = null;
    clearTimeout(this.timer);
    this.onGone();
  }
}

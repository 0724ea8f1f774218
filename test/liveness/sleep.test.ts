// @vitest-environment jsdom
/**
 * A tab that sleeps. The client runs in a jsdom page (its wake events: visibilitychange on the
 * document; online, focus and pageshow on the window) with its clock and timers replaced by a
 * SleepyClock: while the tab "sleeps" no client timer fires and the wall clock jumps 10 minutes;
 * timers that came due meanwhile stay throttled after the wake (for a minute), so whatever the
 * socket does at once must come from the wake event. The network is real: the reference server
 * on 127.0.0.1 behind a TCP proxy that goes half-open while the laptop sleeps (the connection
 * dies silently, as when the Wi-Fi vanishes), so neither side hears anything.
 *
 *  (a) the server still holds the session → the socket notices within the wake event's task,
 *      resumes, and every message sent by either side into the dead connection arrives once, in
 *      order;
 *  (b) the server dropped it (short sessionTimeout, or a restarted server) → 'session-lost' with
 *      exactly the unacknowledged messages, then a new session;
 *  and a reconnect timer that came due during the sleep fires at once on wake (not before it is
 *  due, and not while the tab stays asleep); a connection attempt that hung through the sleep is
 *  abandoned on wake.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, webSocket, type Socket } from '../../src/index';
import type { Env } from '../../src/env';
import type { SessionLostInfo, SocketOptions } from '../../src/options';
import type { Connection } from '../../server/index';
import type { ServerOptions } from '../../server/options';
import { waitFor } from '../helpers/server';
import { cleanupAll, defer, serve, sleep, WS, type OwnServer } from '../helpers/raw';
import { startSilentProxy, type SilentProxy } from './proxy';
import { SleepyClock } from './sleepy-clock';

afterEach(cleanupAll);

const TEN_MINUTES = 10 * 60 * 1000;

/** The four wake events, each dispatched where a browser fires it. */
const WAKE_EVENTS: Record<string, () => void> = {
  visibilitychange: () => {
    setVisibility('visible');
    document.dispatchEvent(new Event('visibilitychange'));
  },
  online: () => window.dispatchEvent(new Event('online')),
  focus: () => window.dispatchEvent(new FocusEvent('focus')),
  pageshow: () => window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true })),
};

function setVisibility(state: 'visible' | 'hidden'): void {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
}

interface Rig {
  srv: OwnServer;
  proxy: SilentProxy;
  clock: SleepyClock;
  sock: Socket;
  /** Client events with performance.now() times. */
  events: Array<{ e: string; at: number; code?: number; delay?: number }>;
  lost: SessionLostInfo[];
  /** Messages the client application received. */
  got: string[];
  /** Server sessions, in order; messages each received. */
  conns: Connection[];
  serverGot: Map<Connection, string[]>;
  count(e: string): number;
}

function watch(srv: OwnServer, r: Pick<Rig, 'conns' | 'serverGot'>): void {
  srv.rt.on('connection', (c) => {
    r.conns.push(c);
    const mine: string[] = [];
    r.serverGot.set(c, mine);
    c.on('message', (d) => mine.push(String(d)));
  });
}

async function rig(serverOptions: ServerOptions, env: Partial<Env> = {}, client: SocketOptions = {}): Promise<Rig> {
  const srv = await serve({ allowedOrigins: '*', ...serverOptions });
  const proxy = await startSilentProxy(srv.port);
  defer(() => proxy.close());
  const clock = new SleepyClock();
  defer(() => clock.dispose());
  const r = { srv, proxy, clock, events: [], lost: [], got: [], conns: [], serverGot: new Map() } as unknown as Rig;
  watch(srv, r);
  const sock = connect('http://127.0.0.1:' + proxy.port + '/rt', {
    transports: [webSocket],
    WebSocket: WS,
    upgrade: false,
    rememberFor: 0,
    backoffBase: 100,
    ...client,
    env: { ...clock.env(), ...env },
  });
  defer(() => sock.state !== 'closed' && sock.close());
  r.sock = sock;
  const log = (e: string, x: { code?: number; delay?: number } = {}): number => r.events.push({ e, at: performance.now(), ...x });
  sock.on('open', () => log('open'));
  sock.on('resume', () => log('resume'));
  sock.on('reconnecting', (i) => log('reconnecting', { code: i.code, delay: i.delay }));
  sock.on('session-lost', (i) => (log('session-lost', { code: i.code }), r.lost.push(i)));
  sock.on('close', (i) => log('close', { code: i.code }));
  sock.on('message', (d) => r.got.push(String(d)));
  r.count = (e) => r.events.filter((x) => x.e === e).length;
  await waitFor(() => r.count('open') === 1 && r.conns.length === 1, 3000, 'first open');
  return r;
}

/** Both directions quiet and acknowledged. */
async function settle(r: Rig, conn: Connection): Promise<void> {
  await waitFor(() => r.sock.bufferedAmount === 0 && conn.bufferedAmount === 0, 3000, 'both sides acknowledged');
}

/**
 * Exchange a few messages, then the laptop sleeps: the connection goes half-open, each side sends
 * three messages into it, and the page stops running timers.
 */
async function fallAsleep(r: Rig, event: string): Promise<{ conn: Connection; sid: string }> {
  const conn = r.conns[r.conns.length - 1];
  for (let i = 1; i <= 3; i++) r.sock.send('c-before-' + i), conn.send('s-before-' + i);
  await waitFor(() => r.got.length === 3 && r.serverGot.get(conn)!.length === 3, 3000, 'exchange before the sleep');
  await settle(r, conn);
  if (event === 'visibilitychange') {
    setVisibility('hidden');
    document.dispatchEvent(new Event('visibilitychange'));
  }
  expect(r.proxy.silence().length).toBe(1);
  for (let i = 1; i <= 3; i++) r.sock.send('c-void-' + i), conn.send('s-void-' + i);
  await sleep(30); // both writes reach the proxy, which drops them
  r.clock.sleep();
  return { conn, sid: r.sock.id };
}

/**
 * The page wakes 10 minutes later (wall clock) and `event` fires. Returns how long, in real ms,
 * the socket took to notice (a 'reconnecting' event), measured from the event, and whether it
 * noticed inside the event's own task.
 */
async function wakeUp(r: Rig, event: string): Promise<{ ms: number; sync: boolean }> {
  r.clock.jump(TEN_MINUTES);
  r.clock.wake();
  const before = r.count('reconnecting');
  const t = performance.now();
  WAKE_EVENTS[event]();
  const sync = r.count('reconnecting') > before;
  await waitFor(() => r.count('reconnecting') > before, 1000, 'the socket to notice the sleep (< 1 s)');
  const ev = r.events.filter((x) => x.e === 'reconnecting')[before];
  return { ms: ev.at - t, sync };
}

afterEach(() => setVisibility('visible'));

describe('a tab asleep 10 minutes wakes up', () => {
  it('jsdom gives the socket the four wake events (harness check)', () => {
    let n = 0;
    const fn = (): void => void n++;
    window.addEventListener('online', fn);
    window.addEventListener('focus', fn);
    window.addEventListener('pageshow', fn);
    document.addEventListener('visibilitychange', fn);
    for (const k in WAKE_EVENTS) WAKE_EVENTS[k]();
    window.removeEventListener('online', fn);
    window.removeEventListener('focus', fn);
    window.removeEventListener('pageshow', fn);
    document.removeEventListener('visibilitychange', fn);
    expect(n).toBe(4);
  });

  it('without a wake event, the sleeping socket notices nothing for a second (the model: throttled timers, dead network)', async () => {
    const r = await rig({});
    await fallAsleep(r, 'online');
    r.clock.jump(TEN_MINUTES);
    r.clock.wake();
    await sleep(1000);
    expect(r.count('reconnecting')).toBe(0);
    expect(r.sock.state).toBe('open');
    // ...and the event makes it notice.
    WAKE_EVENTS.online();
    expect(r.count('reconnecting')).toBe(1);
  });

  it('a wake event on a healthy connection (a short blur/focus) does not break it', async () => {
    const r = await rig({ pingInterval: 100, pingTimeout: 100, pollTimeout: 150 });
    await sleep(300);
    for (const k in WAKE_EVENTS) WAKE_EVENTS[k]();
    await sleep(50);
    expect(r.count('reconnecting')).toBe(0);
    expect(r.sock.state).toBe('open');
  });

  for (const event of Object.keys(WAKE_EVENTS)) {
    describe('woken by ' + event, () => {
      it('(a) the server still holds the session: noticed at once, resumed, nothing lost, nothing twice', async () => {
        const r = await rig({ sessionTimeout: 60000 });
        const { conn, sid } = await fallAsleep(r, event);
        await sleep(100);
        const notice = await wakeUp(r, event);
        console.log(`[sleep] ${event}: server kept the session; noticed ${notice.sync ? 'inside the event task' : 'later'}, ${notice.ms.toFixed(2)} ms after the event`);
        expect(notice.sync).toBe(true);
        expect(notice.ms).toBeLessThan(1000);
        expect(r.events.find((x) => x.e === 'reconnecting')!.code).toBe(4408);
        await waitFor(() => r.count('resume') === 1, 3000, 'resume');
        await waitFor(() => r.got.length === 6 && r.serverGot.get(conn)!.length === 6, 3000, 'the messages sent into the dead connection');
        await sleep(100); // a late duplicate would show
        expect(r.sock.id).toBe(sid);
        expect(r.conns.length).toBe(1);
        expect(r.got).toEqual(['s-before-1', 's-before-2', 's-before-3', 's-void-1', 's-void-2', 's-void-3']);
        expect(r.serverGot.get(conn)).toEqual(['c-before-1', 'c-before-2', 'c-before-3', 'c-void-1', 'c-void-2', 'c-void-3']);
        expect(r.count('session-lost')).toBe(0);
        expect(r.proxy.accepted).toBe(2);
        expect(r.sock.state).toBe('open');
      });

      it('(b) the server expired the session (short sessionTimeout): session-lost with the unacknowledged messages, then a new session', async () => {
        const r = await rig({ pingInterval: 100, pingTimeout: 100, pollTimeout: 150, sessionTimeout: 300 });
        const { conn, sid } = await fallAsleep(r, event);
        const closed: number[] = [];
        conn.on('close', (code) => closed.push(code));
        await waitFor(() => r.srv.rt.clientsCount === 0, 3000, 'the server to expire the session');
        expect(closed).toEqual([4408]);
        const notice = await wakeUp(r, event);
        console.log(`[sleep] ${event}: server expired the session; noticed ${notice.sync ? 'inside the event task' : 'later'}, ${notice.ms.toFixed(2)} ms after the event`);
        expect(notice.sync).toBe(true);
        expect(notice.ms).toBeLessThan(1000);
        await waitFor(() => r.count('session-lost') === 1, 3000, 'session-lost');
        expect(r.lost[0].code).toBe(4404);
        expect(r.lost[0].unacked.map(String)).toEqual(['c-void-1', 'c-void-2', 'c-void-3']);
        await waitFor(() => r.count('open') === 2 && r.conns.length === 2, 3000, 'a new session');
        expect(r.sock.id).not.toBe(sid);
        expect(r.sock.id).toBe(r.conns[1].id);
        // The new session works both ways.
        r.sock.send('c-new');
        r.conns[1].send('s-new');
        await waitFor(() => r.serverGot.get(r.conns[1])!.length === 1 && r.got.includes('s-new'), 3000, 'the new session');
        expect(r.serverGot.get(r.conns[1])).toEqual(['c-new']);
        expect(r.got).toEqual(['s-before-1', 's-before-2', 's-before-3', 's-new']);
        expect(r.count('resume')).toBe(0);
      });

      it('(b) the server restarted without the session: session-lost with the unacknowledged messages, then a new session', async () => {
        const r = await rig({ sessionTimeout: 60000 });
        const { sid } = await fallAsleep(r, event);
        const fresh = await serve({ allowedOrigins: '*' });
        const fresh_ = { conns: [] as Connection[], serverGot: new Map<Connection, string[]>() };
        watch(fresh, fresh_);
        r.proxy.retarget(fresh.port);
        await r.srv.close();
        const notice = await wakeUp(r, event);
        console.log(`[sleep] ${event}: server restarted; noticed ${notice.sync ? 'inside the event task' : 'later'}, ${notice.ms.toFixed(2)} ms after the event`);
        expect(notice.sync).toBe(true);
        await waitFor(() => r.count('session-lost') === 1, 3000, 'session-lost');
        expect(r.lost[0].code).toBe(4404);
        expect(r.lost[0].unacked.map(String)).toEqual(['c-void-1', 'c-void-2', 'c-void-3']);
        await waitFor(() => r.count('open') === 2 && fresh_.conns.length === 1, 3000, 'a new session on the restarted server');
        expect(r.sock.id).not.toBe(sid);
        expect(r.sock.id).toBe(fresh_.conns[0].id);
        r.sock.send('c-new');
        await waitFor(() => fresh_.serverGot.get(fresh_.conns[0])!.length === 1, 3000, 'the new session');
        expect(fresh_.serverGot.get(fresh_.conns[0])).toEqual(['c-new']);
      });
    });
  }
});

describe('a reconnect timer that came due during the sleep', () => {
  for (const event of Object.keys(WAKE_EVENTS)) {
    it(`fires at once on ${event} (and not before it is due)`, async () => {
      // backoff window 20 s and random 0.5: the first reconnect is due 10 s after the drop.
      const r = await rig({ sessionTimeout: 60000 }, { random: () => 0.5 }, { backoffBase: 20000, backoffCap: 60000 });
      const conn = r.conns[0];
      r.sock.send('c-1');
      await waitFor(() => r.serverGot.get(conn)!.length === 1, 3000, 'first message');
      expect(r.proxy.cut()).toBe(1);
      await waitFor(() => r.count('reconnecting') === 1, 3000, 'the drop');
      expect(r.events.find((x) => x.e === 'reconnecting')!.delay).toBe(10000);
      r.sock.send('c-2'); // queued while reconnecting
      conn.send('s-1');

      // A nap of 2 s: the retry is not due yet, a wake must not bring it forward.
      r.clock.sleep();
      r.clock.jump(2000);
      r.clock.wake();
      WAKE_EVENTS[event]();
      await sleep(300);
      expect(r.proxy.accepted).toBe(1);
      expect(r.sock.state).toBe('reconnecting');

      // A nap of 10 minutes: the retry came due while asleep; its timer stays throttled.
      r.clock.sleep();
      r.clock.jump(TEN_MINUTES);
      await sleep(200);
      expect(r.proxy.accepted).toBe(1); // asleep: nothing runs
      r.clock.wake();
      const t = performance.now();
      WAKE_EVENTS[event]();
      await waitFor(() => r.proxy.accepted === 2, 1000, 'the reconnect attempt to reach the network (< 1 s after the wake)');
      const reached = performance.now() - t;
      console.log(`[sleep] ${event}: overdue reconnect reached the network ${reached.toFixed(1)} ms after the wake event`);
      await waitFor(() => r.count('resume') === 1, 3000, 'resume');
      await waitFor(() => r.serverGot.get(conn)!.length === 2 && r.got.length === 1, 3000, 'queued messages');
      expect(r.serverGot.get(conn)).toEqual(['c-1', 'c-2']);
      expect(r.got).toEqual(['s-1']);
      expect(r.conns.length).toBe(1);
    });
  }
});

describe('a connection attempt that hung through the sleep', () => {
  // Regression guard, src/socket.ts _wake(): only the heartbeat and the retry timer are re-checked on wake; an overdue connect timeout stays throttled.
  it('is abandoned on wake (its connect timeout came due while asleep) and a new attempt goes out at once', async () => {
    const r = await rig({ sessionTimeout: 60000 }, {}, { connectTimeout: 5000 });
    const conn = r.conns[0];
    // The connection drops and the next attempt hangs (accepted, never answered)...
    r.proxy.holdNew = true;
    expect(r.proxy.cut()).toBe(1);
    await waitFor(() => r.proxy.held === 1, 3000, 'the reconnect attempt to hang');
    expect(r.sock.state).toBe('reconnecting');
    // ...the laptop sleeps 10 minutes; meanwhile the network recovers.
    r.clock.sleep();
    r.clock.jump(TEN_MINUTES);
    await sleep(100);
    r.proxy.holdNew = false;
    r.clock.wake();
    const t = performance.now();
    WAKE_EVENTS.visibilitychange();
    const reached = await waitFor(() => r.proxy.accepted === 3, 1000, 'a new attempt (< 1 s after the wake)').then(
      () => performance.now() - t,
      () => -1,
    );
    console.log(`[sleep] hung attempt through the sleep: a new attempt ${reached < 0 ? 'did not go out within 1 s' : 'went out ' + reached.toFixed(0) + ' ms'} after the wake event`);
    expect(reached).toBeGreaterThanOrEqual(0);
    await waitFor(() => r.count('resume') === 1, 3000, 'resume');
    expect(r.sock.id).toBe(conn.id);
  });
});

/**
 * The benchmark's pages: one per library, each loading that library's script-tag bundle from its
 * own server, through whatever network stands in front of it, and connecting with the library's
 * defaults (`CometSocket.connect('/rt')`, `io(location.origin)`).
 *
 * Everything is timed inside the page, in ms since the page's first script ran (`T.t0`, the first
 * inline script of <head>, before the bundle's script tag): so the bundle's download and
 * evaluation are in the first-message time, as a user would see them. `T.tc` is when connect()
 * (or io()) was called, on the same clock.
 *
 * Exchange pages (the reset link) also send 'c0' … 'c(n-1)', one every `period` ms on a steady
 * clock from the first message on, and record the numbers of the server's 's<i>' messages in
 * arrival order.
 */

export type Lib = 'cometsocket' | 'socket.io';
export const LIBS: readonly Lib[] = ['cometsocket', 'socket.io'];

/** The page's own bound on the wait for the first message, ms (cometsocket's connectTimeout is 10 s). */
export const FIRST_LIMIT = 12000;
/** When the page samples the transport a second time, ms after its first script ran. */
export const LATER_MS = 3000;

/** Where each library's page loads its bundle from (served by that library's server). */
export const BUNDLE_PATH: Record<Lib, string> = {
  cometsocket: '/rt/cometsocket.min.js',
  'socket.io': '/socket.io.min.js',
};

export interface PageSpec {
  lib: Lib;
  /** Numbered messages the page sends once the first message arrived (the reset link). */
  exchange?: { n: number; period: number };
}

/** What the page recorded (see READ). */
export interface PageState {
  /** connect() / io() called, ms since the first script (-1: never, e.g. the bundle did not load). */
  tc: number;
  /** First message from the server, ms since the first script (-1: none yet). */
  first: number;
  /** Transport in use when the first message arrived. */
  firstTransport: string | null;
  /** Transport in use LATER_MS after the first script ran (null: not sampled yet). */
  later: string | null;
  /** 'ms name' for every transport the connection moved to. */
  timeline: string[];
  /** 'ms event' for reconnects, disconnects, session losses, closes. */
  events: string[];
  /** Uncaught errors, and 'bundle not loaded'. */
  errors: string[];
  /** Greetings received (one per new connection / session). */
  greetings: number;
  /** Reconnections the page went through (cometsocket 'reconnecting', Socket.IO 'reconnect_attempt'). */
  reconnects: number;
  /** Messages cometsocket handed back with 'session-lost' (never delivered, but not silently). */
  handedBack: number;
}

export const READ = `({ tc: T.tc, first: T.first, firstTransport: T.firstTransport, later: T.later, timeline: T.timeline, events: T.events, errors: T.errors, greetings: T.greetings, reconnects: T.reconnects, handedBack: T.handedBack })`;

/** The exchange's counts in the page. */
export interface PageExchange {
  /** Numbers of the 's<i>' messages, in arrival order (duplicates included). */
  rs: number[];
  /** Messages handed to send() ('c0' … 'c(sent-1)'). */
  sent: number;
  /** Numbers send() refused (cometsocket's buffer full: returned false, kept nothing). */
  refused: number[];
  /** When the page sent its last message, ms since the first script (-1: not yet). */
  pumpEnd: number;
}

export const READ_EXCHANGE = `({ rs: T.rs, sent: T.sent, refused: T.refused, pumpEnd: T.pumpEnd })`;

const CONNECT: Record<Lib, string> = {
  cometsocket: `
  if (typeof CometSocket !== 'object') return T.fail('bundle not loaded');
  T.tc = T.ms();
  var sock = (T.sock = CometSocket.connect('/rt'));
  T.transport = function () { return sock.state === 'open' ? sock.transport : (sock.transport || 'none') + ' (' + sock.state + ')'; };
  T.send = function (s) { return sock.send(s) !== false; };
  sock.on('message', T.onMessage);
  sock.on('transport', function (n) { T.timeline.push(T.ms() + ' ' + n); });
  sock.on('reconnecting', function (i) { T.reconnects++; T.events.push(T.ms() + ' reconnecting ' + i.code + ' ' + i.reason); });
  sock.on('resume', function () { T.events.push(T.ms() + ' resume'); });
  sock.on('session-lost', function (i) { T.handedBack += i.unacked.length; T.events.push(T.ms() + ' session-lost ' + i.code + ' ' + i.reason + ' unacked=' + i.unacked.length); });
  sock.on('close', function (i) { T.events.push(T.ms() + ' close ' + i.code + ' ' + i.reason); });`,
  'socket.io': `
  if (typeof io !== 'function') return T.fail('bundle not loaded');
  T.tc = T.ms();
  var sock = (T.sock = io(location.origin));
  T.transport = function () {
    var e = sock.io && sock.io.engine;
    var n = e && e.transport ? e.transport.name : 'none';
    return sock.connected ? n : n + ' (disconnected)';
  };
  T.send = function (s) { sock.send(s); return true; };
  sock.on('message', T.onMessage);
  sock.io.on('open', function () {
    var e = sock.io.engine;
    T.timeline.push(T.ms() + ' ' + e.transport.name);
    e.on('upgrade', function (t) { T.timeline.push(T.ms() + ' ' + t.name); });
  });
  sock.on('disconnect', function (r) { T.events.push(T.ms() + ' disconnect ' + r); });
  sock.on('connect_error', function (e) { T.events.push(T.ms() + ' connect_error ' + (e && e.message)); });
  sock.io.on('reconnect_attempt', function (n) { T.reconnects++; T.events.push(T.ms() + ' reconnect_attempt ' + n); });
  sock.io.on('reconnect', function (n) { T.events.push(T.ms() + ' reconnect ' + n); });`,
};

/** The page for `spec` (ES5 in the page: nothing here needs more). */
export function benchPage(spec: PageSpec): string {
  const ex = spec.exchange;
  return `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>${spec.lib} first-message bench</title>
<script>
var T = (window.T = { t0: performance.now(), tc: -1, first: -1, firstTransport: null, later: null, timeline: [], events: [], errors: [], greetings: 0, reconnects: 0, handedBack: 0, rs: [], sent: 0, refused: [], pumpEnd: -1 });
T.ms = function () { return Math.round((performance.now() - T.t0) * 10) / 10; };
T.whenFirst = new Promise(function (resolve) { T.firstDone = resolve; setTimeout(resolve, ${FIRST_LIMIT}); });
T.whenLater = new Promise(function (resolve) { T.laterDone = resolve; });
T.fail = function (why) { T.errors.push(why); T.firstDone(); T.laterDone(); };
window.addEventListener('error', function (e) { T.errors.push(String(e.message)); });
</script>
<script src="${BUNDLE_PATH[spec.lib]}"></script>
</head>
<body>
<script>
(function () {
  T.onMessage = function (d) {
    if (T.first < 0) {
      T.first = T.ms();
      T.firstTransport = T.transport();
      T.firstDone();
      ${ex ? 'T.pump();' : ''}
    }
    if (d === 'hello') T.greetings++;
    else if (typeof d === 'string' && d.charAt(0) === 's') T.rs.push(+d.slice(1));
  };
  T.pump = function () {
    var start = performance.now();
    var tick = function () {
      var due = Math.min(${ex ? ex.n : 0}, Math.floor((performance.now() - start) / ${ex ? ex.period : 1}) + 1);
      while (T.sent < due) {
        if (!T.send('c' + T.sent)) T.refused.push(T.sent);
        T.sent++;
      }
      if (T.sent < ${ex ? ex.n : 0}) setTimeout(tick, ${ex ? ex.period : 1});
      else T.pumpEnd = T.ms();
    };
    tick();
  };
  ${CONNECT[spec.lib]}
  setTimeout(function () { T.later = T.transport(); T.laterDone(); }, Math.max(0, ${LATER_MS} - (performance.now() - T.t0)));
})();
</script>
</body>
</html>
`;
}

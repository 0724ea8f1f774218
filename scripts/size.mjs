// `npm run size`: min and gzip sizes of the IIFE and of ESM apps built from dist/, against the
// budget in package.json ("sizeBudget", gzip bytes), then the peers' script-tag builds measured
// the same way in the same run (devDependencies), with the ratio. Exits 1 above budget, or when
// the IIFE is not smaller than every peer client's script-tag build.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { gzipSync, brotliCompressSync } from 'node:zlib';
import { rollup } from 'rollup';
import resolve from '@rollup/plugin-node-resolve';
import terser from '@rollup/plugin-terser';
import commonjs from '@rollup/plugin-commonjs';

const root = resolvePath(import.meta.dirname, '..');
const budget = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).sizeBudget;

async function app(code, dist = join(root, 'dist/index.js')) {
  const dir = mkdtempSync(join(tmpdir(), 'cometsocket-size-'));
  const entry = join(dir, 'app.js');
  writeFileSync(entry, code.replace(/DIST/g, JSON.stringify(dist)));
  try {
    const b = await rollup({ input: entry, plugins: [resolve({ browser: true }), commonjs(), terser({ compress: { passes: 2 } })], onwarn: () => {} });
    const { output } = await b.generate({ format: 'es' });
    return output[0].code;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sizes = (code) => ({ min: Buffer.byteLength(code), gzip: gzipSync(code, { level: 9 }).length, brotli: brotliCompressSync(code).length });

/**
 * The peers as a page loads them: each one's own minified browser build where it ships one
 * (every transport included, as in ours), CometD (ESM only) bundled and minified like our ESM apps.
 */
const PEERS = [
  ['socket.io-client', 'socket.io-client/dist/socket.io.min.js'],
  ['engine.io-client (Socket.IO\'s transport layer alone; not gated)', 'engine.io-client/dist/engine.io.min.js'],
  ['sockjs-client', 'sockjs-client/dist/sockjs.min.js'],
  ['@microsoft/signalr', '@microsoft/signalr/dist/browser/signalr.min.js'],
  ['centrifuge', 'centrifuge/dist/centrifuge.js'],
  ['cometd (ESM app: new CometD(), bundled here)', 'cometd/cometd.js'],
];

export async function peers() {
  const out = [];
  for (const [what, rel] of PEERS) {
    const file = join(root, 'node_modules', rel);
    let code;
    try {
      code = rel.startsWith('cometd/')
        ? await app("import { CometD } from DIST; new CometD().configure({ url: '/cometd' });", file)
        : readFileSync(file, 'utf8');
    } catch {
      out.push({ what, missing: true });
      continue;
    }
    const v = JSON.parse(readFileSync(join(root, 'node_modules', rel.split('/dist/')[0].replace(/\/cometd\.js$/, ''), 'package.json'), 'utf8')).version;
    out.push({ what: what.replace(/^(\S+)/, '$1@' + v), ...sizes(code) });
  }
  return out;
}

export async function measure() {
  const rows = [
    ['iife', 'dist/cometsocket.iife.min.js (every transport, eventemitter3 included)', readFileSync(join(root, 'dist/cometsocket.iife.min.js'), 'utf8')],
    ['esmWebSocketOnly', 'ESM app: new Socket(url, { transports: [webSocket] })', await app("import { Socket, webSocket } from DIST; new Socket('/rt', { transports: [webSocket] }).on('message', console.log);")],
    ['esmConnect', 'ESM app: connect(url) with every transport', await app("import { connect } from DIST; connect('/rt').on('message', console.log);")],
  ];
  return rows.map(([key, what, code]) => ({ key, what, ...sizes(code), budget: budget[key] }));
}

if (import.meta.url === 'file://' + process.argv[1]) {
  const rows = await measure();
  let over = false;
  console.log('bytes'.padEnd(72) + 'min'.padStart(8) + 'gzip'.padStart(8) + 'brotli'.padStart(8) + '  budget(gzip)');
  for (const r of rows) {
    const bad = r.budget !== undefined && r.gzip > r.budget;
    over ||= bad;
    console.log(r.what.padEnd(72) + String(r.min).padStart(8) + String(r.gzip).padStart(8) + String(r.brotli).padStart(8) + '  ' + (r.budget ?? '-') + (bad ? '  OVER' : ''));
  }
  const ours = rows[0].gzip;
  console.log('\npeers (script-tag builds)'.padEnd(73) + 'min'.padStart(8) + 'gzip'.padStart(8) + 'brotli'.padStart(8) + '  ours/theirs (gzip)');
  for (const p of await peers()) {
    if (p.missing) console.log(p.what.padEnd(72) + '  not installed (npm install)');
    else {
      // The script-tag build must stay smaller than every peer client's, measured in this run.
      // engine.io-client is shown for reference: it is a transport layer (no sessions, no
      // delivery guarantees, no streaming fallbacks), not a client users choose instead of ours.
      const bigger = ours >= p.gzip && !/not gated/.test(p.what);
      over ||= bigger;
      console.log(p.what.padEnd(72) + String(p.min).padStart(8) + String(p.gzip).padStart(8) + String(p.brotli).padStart(8) + '  ' + (ours / p.gzip).toFixed(3) + 'x' + (bigger ? '  OURS IS NOT SMALLER' : ''));
    }
  }
  process.exit(over ? 1 : 0);
}

// `npm run size`: min and gzip sizes of the IIFE and of ESM apps built from dist/, against the
// budget in package.json ("sizeBudget", gzip bytes). Exits 1 above budget.
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

async function app(code) {
  const dir = mkdtempSync(join(tmpdir(), 'cometsocket-size-'));
  const entry = join(dir, 'app.js');
  writeFileSync(entry, code.replace(/DIST/g, JSON.stringify(join(root, 'dist/index.js'))));
  try {
    const b = await rollup({ input: entry, plugins: [resolve({ browser: true }), commonjs(), terser({ compress: { passes: 2 } })], onwarn: () => {} });
    const { output } = await b.generate({ format: 'es' });
    return output[0].code;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function measure() {
  const rows = [
    ['iife', 'dist/cometsocket.iife.min.js (every transport, eventemitter3 included)', readFileSync(join(root, 'dist/cometsocket.iife.min.js'), 'utf8')],
    ['esmWebSocketOnly', 'ESM app: new Socket(url, { transports: [webSocket] })', await app("import { Socket, webSocket } from DIST; new Socket('/rt', { transports: [webSocket] }).on('message', console.log);")],
    ['esmConnect', 'ESM app: connect(url) with every transport', await app("import { connect } from DIST; connect('/rt').on('message', console.log);")],
  ];
  return rows.map(([key, what, code]) => ({
    key,
    what,
    min: Buffer.byteLength(code),
    gzip: gzipSync(code, { level: 9 }).length,
    brotli: brotliCompressSync(code).length,
    budget: budget[key],
  }));
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
  process.exit(over ? 1 : 0);
}

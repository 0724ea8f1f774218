/**
 * One config makes every artefact: the client as ESM and CommonJS, the server entry, the ES5
 * minified IIFE for script tags, and bundled type declarations.
 */
import commonjs from '@rollup/plugin-commonjs';
import resolve from '@rollup/plugin-node-resolve';
import terser from '@rollup/plugin-terser';
import typescript from '@rollup/plugin-typescript';
import type { Plugin, RollupOptions } from 'rollup';
import { dts } from 'rollup-plugin-dts';

// The browser builds compile only browser code (tsconfig.browser.json: no Node types).
const ts = (target: string, tsconfig = './tsconfig.browser.json') =>
  typescript({
    tsconfig,
    include: ['src/**/*.ts', 'transports/**/*.ts', 'server/**/*.ts'],
    compilerOptions: { target, noEmit: false, declaration: false, sourceMap: false, lib: ['ES2020', 'DOM'] },
    noEmitOnError: true,
  });

/**
 * Properties the IIFE may rename: every `_`-prefixed (private) member, and the members of the
 * internal Session, Race, Timers, the socket's links and the HTTP transports' helpers, which no
 * page, option or custom transport ever sees (not `unacked`: the session-lost event has a property
 * of that name; not `upgrade`: an option has that name). The Chromium suites run this build.
 */
const IIFE_MANGLED = /^(_[a-zA-Z].*|receivedSeq|writtenSeq|bufferedBytes|bufferedCount|ackOwed|hasOutput|acked|rewind|limits|maxMessages|maxBytes|headStartOver|failures|started|live|lost|later|pending|cancel|cancelAll|wake|dead|loser|own|due|busy|done|ready|fail|last|stop|line|bytes|count|index|probe)$/;

/**
 * Sets build constants of src/build.ts for one artefact (e.g. `{ DEBUG: false }`): rollup and
 * terser then drop the code they switch off.
 */
function buildConstants(values: Record<string, boolean>): Plugin {
  return {
    name: 'build-constants',
    transform(code, id) {
      if (!/[\\/]src[\\/]build\.ts$/.test(id)) return null;
      // The code is already JavaScript here (the TypeScript plugin compiles in its load hook).
      let out = code;
      for (const k in values) {
        const next = out.replace(new RegExp('\\b(' + k + '\\s*=\\s*)true\\b'), '$1' + values[k]);
        if (next === out) this.error('src/build.ts no longer declares ' + k + ' = true');
        out = next;
      }
      return { code: out, map: null };
    },
  };
}

/**
 * The IIFE's `tslib`: the one helper its ES5 code needs (`class ... extends`), without static
 * inheritance, which no class here uses. tslib itself adds that and a SuppressedError shim
 * (0.14 KB gzip). A helper missing here fails the build.
 */
const es5Helpers: Plugin = {
  name: 'es5-helpers',
  resolveId: (id) => (id === 'tslib' ? '\0tslib' : null),
  load: (id) => (id === '\0tslib' ? 'export function __extends(d, b) { function P() { this.constructor = d; } P.prototype = b.prototype; d.prototype = new P(); }' : null),
};

/** eventemitter3 is CommonJS (module.exports = EventEmitter): import it without interop wrappers. */
const cjs = () => commonjs({ strictRequires: false, defaultIsModuleExports: true });

const nodeExternal = (id: string) => id === 'ws' || id === 'eventemitter3' || id.startsWith('node:');

const config: RollupOptions[] = [
  {
    input: 'src/index.ts',
    external: ['eventemitter3'],
    plugins: [ts('ES2018')],
    output: [
      { file: 'dist/index.js', format: 'es' },
      { file: 'dist/index.cjs', format: 'cjs', exports: 'named' },
    ],
  },
  {
    input: 'server/index.ts',
    external: nodeExternal,
    plugins: [ts('ES2022', './tsconfig.json')],
    output: [
      { file: 'dist/server.js', format: 'es' },
      { file: 'dist/server.cjs', format: 'cjs', exports: 'named' },
    ],
  },
  {
    // Development: readable, with the debug messages.
    input: 'src/iife.ts',
    plugins: [buildConstants({ FETCH: false }), es5Helpers, resolve({ browser: true }), cjs(), ts('ES5')],
    output: { file: 'dist/cometsocket.iife.js', format: 'iife', name: 'CometSocket' },
  },
  {
    input: 'src/iife.ts',
    plugins: [buildConstants({ FETCH: false, DEBUG: false }), es5Helpers, resolve({ browser: true }), cjs(), ts('ES5'), terser({ ecma: 5, compress: { passes: 3, pure_getters: true }, mangle: { properties: { regex: IIFE_MANGLED, reserved: ['__proto__'] } }, format: { comments: false } })],
    output: { file: 'dist/cometsocket.iife.min.js', format: 'iife', name: 'CometSocket' },
  },
  ...(['index', 'server'] as const).map(
    (name): RollupOptions => ({
      input: name === 'index' ? 'src/index.ts' : 'server/index.ts',
      external: nodeExternal,
      plugins: [dts({ tsconfig: './tsconfig.json' })],
      output: [
        { file: `dist/${name}.d.ts`, format: 'es' },
        { file: `dist/${name}.d.cts`, format: 'es' },
      ],
    }),
  ),
];

export default config;

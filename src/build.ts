/**
 * Build constants. rollup.config.ts sets them per artefact, and rollup and terser then drop the
 * code they switch off, with its strings.
 */

/**
 * Whether this build carries the debug messages (`debug: true`). Every message is written as
 * `if (DEBUG) log(...)`. False in the production IIFE (dist/cometsocket.iife.min.js), which
 * saves about 0.4 KB gzip; the development IIFE (dist/cometsocket.iife.js) and the ESM and
 * CommonJS builds keep them.
 */
export const DEBUG: boolean = true;

/**
 * Whether HTTP requests may use fetch() where there is no XMLHttpRequest (Node, service
 * workers). False in both IIFEs: a page and a dedicated worker always have XMLHttpRequest
 * (0.14 KB gzip). The ESM and CommonJS builds keep it, so long polling runs under Node.
 */
export const FETCH: boolean = true;

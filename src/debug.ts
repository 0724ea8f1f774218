/**
 * Whether this build carries the debug messages (`debug: true`). Every message is written as
 * `DEBUG && log(...)`, so the production IIFE (dist/cometsocket.iife.min.js), whose build sets
 * this to false, drops them with their strings: about 0.4 KB gzip. The development IIFE
 * (dist/cometsocket.iife.js) and the ESM and CommonJS builds keep them.
 */
export const DEBUG: boolean = true;

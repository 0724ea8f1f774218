/**
 * Serves the browser bundles, so a page needs only a script tag: `cometsocket.min.js` is the
 * production IIFE (dist/cometsocket.iife.min.js), `cometsocket.js` the development one with the
 * debug messages (dist/cometsocket.iife.js).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';

/** Name under the server's path → file in dist/. */
export const CLIENT_FILES: Record<string, string> = {
  'cometsocket.min.js': 'cometsocket.iife.min.js',
  'cometsocket.js': 'cometsocket.iife.js',
};

const cached: Record<string, { body: Buffer; etag: string }> = {};

function load(file: string): { body: Buffer; etag: string } | null {
  if (cached[file]) return cached[file];
  // Built: dist/server.js sits beside the bundle. From source: server/ → ../dist/.
  for (const rel of ['./' + file, '../dist/' + file]) {
    try {
      const body = readFileSync(new URL(rel, import.meta.url));
      return (cached[file] = { body, etag: '"' + createHash('sha1').update(body).digest('base64url') + '"' });
    } catch {
      /* try the next place */
    }
  }
  return null;
}

/** Answer a request for `name`, one of CLIENT_FILES. */
export function serveClient(name: string, req: IncomingMessage, res: ServerResponse): void {
  const f = load(CLIENT_FILES[name]);
  if (!f) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('cometsocket: the browser bundle is not built (npm run build)');
    return;
  }
  if (req.headers['if-none-match'] === f.etag) {
    res.writeHead(304, { ETag: f.etag });
    res.end();
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'application/javascript; charset=utf-8',
    'Content-Length': f.body.length,
    'Cache-Control': 'public, max-age=0, must-revalidate',
    ETag: f.etag,
  });
  res.end(req.method === 'HEAD' ? undefined : f.body);
}

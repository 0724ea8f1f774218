/** Serves the browser bundle (dist/cometsocket.iife.min.js), so a page needs only a script tag. */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';

const FILE = 'cometsocket.iife.min.js';
let cached: { body: Buffer; etag: string } | null = null;

function load(): { body: Buffer; etag: string } | null {
  if (cached) return cached;
  // Built: dist/server.js sits beside the bundle. From source: server/ → ../dist/.
  for (const rel of ['./' + FILE, '../dist/' + FILE]) {
    try {
      const body = readFileSync(new URL(rel, import.meta.url));
      return (cached = { body, etag: '"' + createHash('sha1').update(body).digest('base64url') + '"' });
    } catch {
      /* try the next place */
    }
  }
  return null;
}

export function serveClient(req: IncomingMessage, res: ServerResponse): void {
  const f = load();
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

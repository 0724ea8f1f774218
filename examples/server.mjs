// `npm start`: the reference server with the chat demo on http://localhost:8080 (PORT to change).
// Open two tabs and talk; each page shows the transport carrying its session and can force one.
import { createServer as createHttpServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { createServer } from '../dist/server.js';

const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || '0.0.0.0';
const page = readFileSync(new URL('./chat.html', import.meta.url));

const http = createHttpServer((req, res) => {
  if (req.url === '/' || req.url?.startsWith('/?')) {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    return res.end(page);
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
});

// The demo takes every origin, so it also works behind a proxy that rewrites Host (a default nginx
// does); ALLOWED_ORIGINS=https://a.example,https://b.example narrows it. An application with
// cookies or other ambient credentials should name its origins (README, "Behind a reverse proxy").
const allowedOrigins = process.env.ALLOWED_ORIGINS ? process.env.ALLOWED_ORIGINS.split(',').map((o) => o.trim()) : '*';
const rt = createServer({ path: '/rt', allowedOrigins }).attach(http);
let nextName = 1;
rt.on('connection', (conn) => {
  const name = 'guest-' + nextName++;
  conn.send(JSON.stringify({ type: 'welcome', name, online: rt.clientsCount }));
  rt.broadcast(JSON.stringify({ type: 'joined', name, online: rt.clientsCount }), conn);
  conn.on('message', (data) => {
    if (typeof data !== 'string' || data.length > 2000) return;
    rt.broadcast(JSON.stringify({ type: 'chat', name, text: data }));
  });
  console.log(`${name} is on ${conn.transport}`);
  conn.on('transport', (t) => console.log(`${name} moved to ${t}`));
  conn.on('close', (code, reason) => {
    console.log(`${name} left (${code} ${reason})`);
    rt.broadcast(JSON.stringify({ type: 'left', name, online: rt.connections().length }));
  });
});

// PORT=0 takes a free port: the line below says which.
http.listen(port, host, () => console.log(`cometsocket demo on http://localhost:${http.address().port}  (Ctrl+C to stop)`));
const stop = () => rt.close(() => http.close(() => process.exit(0)));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

/**
 * A real nginx (the Debian package) in the foreground for browser tests and bench/browser: a
 * fresh prefix directory per instance, started on a free 127.0.0.1 port and stopped by its PID.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startDaemon } from './helpers';

export const NGINX = '/usr/sbin/nginx';

export interface Nginx {
  /** http://127.0.0.1:PORT */
  origin: string;
  port: number;
  dir: string;
  child: ChildProcess;
  /** The access log so far, one line a request (written when the request ends). */
  accessLog(): string[];
  /** nginx's error log so far, and what it wrote to stdout/stderr. */
  diagnostics(): string;
  close(): Promise<void>;
}

/** The README's nginx block (README.md, "Behind a reverse proxy"), pointed at `upstream`. */
export function readmeBlock(upstream: number): { http: string; locations: string } {
  return {
    http: `map $http_upgrade $connection_upgrade { default upgrade; '' close; }`,
    locations: `
    location /rt/ {
        proxy_pass http://127.0.0.1:${upstream};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $http_host;
        proxy_read_timeout 75s;
        client_max_body_size 3m;
    }
    location / {
        proxy_pass http://127.0.0.1:${upstream};
    }`,
  };
}

/** The README's block without its Host line: upgrades pass, but the upstream sees nginx's own Host. */
export function readmeWithoutHost(upstream: number): { http: string; locations: string } {
  const r = readmeBlock(upstream);
  return { http: r.http, locations: r.locations.replace(/\n\s*proxy_set_header Host \$http_host;/, '') };
}

/** nginx out of the box in front of `upstream`: proxy_pass and nothing else. */
export function defaultBlock(upstream: number): { http: string; locations: string } {
  return {
    http: '',
    locations: `
    location / {
        proxy_pass http://127.0.0.1:${upstream};
    }`,
  };
}

/**
 * Start /usr/sbin/nginx in the foreground (daemon off) on a free port with `block`, everything it
 * writes (pid, logs, temp files) in a fresh temp directory; resolve once its port accepts TCP
 * connections (within 5 s).
 */
export async function startNginx(block: { http: string; locations: string }): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'cometsocket-nginx-'));
  // Run as root, nginx's workers run as nobody: they must be able to reach the temp paths.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {}
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body_temp;
    proxy_temp_path ${dir}/proxy_temp;
    fastcgi_temp_path ${dir}/fastcgi_temp;
    uwsgi_temp_path ${dir}/uwsgi_temp;
    scgi_temp_path ${dir}/scgi_temp;
    ${block.http}
    server {
        listen 127.0.0.1:${port};
        ${block.locations}
    }
}
`,
  );
  const d = await startDaemon('nginx', NGINX, ['-c', conf, '-p', dir], {
    dir,
    port,
    readyMs: 5000,
    stopMs: 2000,
    diagnostics: (x) => 'error.log: ' + x.read('error.log') + '\noutput: ' + x.output(),
  });
  return {
    origin: 'http://127.0.0.1:' + port,
    port,
    dir,
    child: d.child,
    accessLog: () => d.read('access.log').split('\n').filter(Boolean),
    diagnostics: () => 'error.log: ' + d.read('error.log') + '\noutput: ' + d.output(),
    close: () => d.close(),
  };
}

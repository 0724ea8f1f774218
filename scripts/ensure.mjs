// Before `npm start`: install dependencies and build when a fresh clone has neither.
import { execSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';

const run = (cmd) => execSync(cmd, { stdio: 'inherit' });
if (!existsSync('node_modules/.package-lock.json')) run('npm install --no-audit --no-fund');
const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = dir + '/' + e.name;
    return Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }, 0);
const built = Math.min(...['dist/cometsocket.iife.min.js', 'dist/cometsocket.iife.js'].map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
if (built < Math.max(newest('src'), newest('transports'), newest('server'))) run('npm run build');

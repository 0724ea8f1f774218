/**
 * The README's first command, as a new user meets it: `node examples/server.mjs` (what `npm start`
 * runs after installing and building) serves the chat page, and two Chromium tabs talk through it.
 * The demo runs as its own process on a free port (PORT=0, read back from its first line) on
 * 127.0.0.1, and is stopped by its PID afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, launchBrowser, openPage, ROOT, waitFor, waitUntil, type TestBrowser, type TestPage } from './helpers';

let demo: ChildProcess | null = null;
let origin = '';
let output = '';
let browser: TestBrowser | null = null;

beforeAll(async () => {
  await ensureBuilt();
  const child = spawn(process.execPath, [join(ROOT, 'examples', 'server.mjs')], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo = child;
  origin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo printed no address within 10 s: ' + output)), 10000);
    const read = (b: Buffer): void => {
      output += b.toString();
      const m = /on (http:\/\/localhost:\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace('localhost', '127.0.0.1'));
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error('the demo exited with ' + code + ': ' + output));
    });
  });
  browser = await launchBrowser();
}, 60000);

afterAll(async () => {
  if (browser) await browser.close();
  if (demo && demo.exitCode === null && demo.pid) {
    const exited = new Promise<void>((resolve) => demo!.once('exit', () => resolve()));
    // SIGTERM: the demo closes its sessions and its HTTP server, then exits (examples/server.mjs).
    process.kill(demo.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (demo.exitCode === null) process.kill(demo.pid, 'SIGKILL');
  }
});

/** The chat log's lines. */
const lines = (t: TestPage): Promise<string[]> => t.page.evaluate('Array.prototype.map.call(document.querySelectorAll("#log li"), function (li) { return li.textContent; })') as Promise<string[]>;

describe('the chat demo of npm start, in Chromium', () => {
  it('two tabs talk: each sees its name and the other joining, a message typed in one appears in both, on websocket, with the development bundle', async () => {
    const a = await openPage(browser!, origin + '/');
    await waitFor(a.page, 'document.getElementById("transport").textContent === "websocket"', 'tab A on websocket', 10000, 'document.body.innerText');
    const b = await openPage(browser!, origin + '/');
    await waitFor(b.page, 'document.getElementById("transport").textContent === "websocket"', 'tab B on websocket', 10000, 'document.body.innerText');
    await waitFor(a.page, '/joined/.test(document.getElementById("log").textContent)', 'tab A to see B join', 5000, 'document.body.innerText');
    await a.page.fill('#text', 'hello from A <b>not bold</b>');
    await a.page.click('button');
    for (const t of [a, b]) await waitFor(t.page, '/hello from A/.test(document.getElementById("log").textContent)', 'the message in both tabs', 5000, 'document.body.innerText');
    const la = await lines(a);
    const lb = await lines(b);
    expect(la.filter((l) => /^you are guest-\d+/.test(l)), 'A: ' + la.join(' | ')).toHaveLength(1);
    expect(lb.filter((l) => /^you are guest-\d+/.test(l)), 'B: ' + lb.join(' | ')).toHaveLength(1);
    // Text, not markup: the page shows what was typed.
    expect(lb.filter((l) => /^guest-\d+: hello from A <b>not bold<\/b>$/.test(l)), 'B: ' + lb.join(' | ')).toHaveLength(1);
    expect(await b.page.evaluate('document.querySelectorAll("#log b").length')).toBe(0);
    // The demo loads the development bundle, so its debug: true writes why each transport was chosen.
    expect(await a.page.evaluate('document.querySelector("script[src]").getAttribute("src")')).toBe('/rt/cometsocket.js');
    expect(a.errors.concat(b.errors)).toEqual([]);
    // The demo's console says which transport each guest is on (its stdout may trail the page).
    await waitUntil(() => /guest-\d+ (is on|moved to) websocket/.test(output), 5000, 'the demo to log a guest on websocket: ' + output);
    await a.page.close();
    await b.page.close();
  }, 40000);

  it('?transport=longPolling forces long polling, and the page says so', async () => {
    const t = await openPage(browser!, origin + '/?transport=longPolling');
    await waitFor(t.page, 'document.getElementById("transport").textContent === "long-polling"', 'the forced transport', 10000, 'document.body.innerText');
    await t.page.fill('#text', 'over polling');
    await t.page.click('button');
    await waitFor(t.page, '/: over polling/.test(document.getElementById("log").textContent)', 'the message back', 5000, 'document.body.innerText');
    expect(await t.page.evaluate('document.getElementById("force").value')).toBe('longPolling');
    expect(t.errors).toEqual([]);
    await t.page.close();
  }, 30000);
});

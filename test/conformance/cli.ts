/**
 * Run the conformance suite against a server:
 *
 *   npm run conformance -- http://127.0.0.1:8080/rt [--origin O] [--foreign-origin F] [--slow] [--only TEXT] [--timeout MS]
 *
 * The server must echo every message it receives on the same session and send nothing else
 * (PROTOCOL.md, "Conformance suite"). Prints one line per check and exits 1 on any failure.
 */
import { checks, runCheck, type Result, type Target } from './suite';

const USAGE = `usage: npm run conformance -- <endpoint URL> [options]

  <endpoint URL>          e.g. http://127.0.0.1:8080/rt
  --origin O              an Origin the server accepts (sent on every request; iframe-streaming's po)
  --foreign-origin F      an Origin the server must refuse (the Origin check is skipped without it)
  --slow                  also run the checks that wait on the server's hb and hto
  --only TEXT             run only the checks whose section or name contains TEXT
  --timeout MS            bound of requests and waits that do not depend on the heartbeat (default 5000)
`;

function parse(argv: string[]): { target: Target; slow: boolean; only: string | null } {
  let url: string | null = null;
  const target: Partial<Target> = {};
  let slow = false;
  let only: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(a + ' needs a value');
      return v;
    };
    if (a === '--origin') target.origin = value();
    else if (a === '--foreign-origin') target.foreignOrigin = value();
    else if (a === '--slow') slow = true;
    else if (a === '--only') only = value().toLowerCase();
    else if (a === '--timeout') target.timeoutMs = Number(value());
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) throw new Error('unknown option ' + a);
    else if (url === null) url = a;
    else throw new Error('more than one URL: ' + a);
  }
  if (url === null) throw new Error('no endpoint URL');
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('the endpoint URL must be http: or https:');
  if (target.timeoutMs !== undefined && !(target.timeoutMs > 0)) throw new Error('--timeout must be a positive number of ms');
  return { target: { ...target, url }, slow, only };
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof parse>;
  try {
    opts = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write((e as Error).message + '\n\n' + USAGE);
    return 2;
  }
  const selected = checks.filter((c) => !opts.only || (c.section + ': ' + c.name).toLowerCase().includes(opts.only));
  process.stdout.write('cometsocket conformance: ' + selected.length + ' checks against ' + opts.target.url + '\n\n');
  const results: Result[] = [];
  for (const c of selected) {
    const r = await runCheck(c, opts.target, { slow: opts.slow });
    results.push(r);
    const tag = r.status === 'ok' ? 'ok     ' : r.status === 'fail' ? 'FAIL   ' : 'skipped';
    const time = r.status === 'skip' && r.ms === 0 ? '' : ' (' + r.ms + ' ms)';
    process.stdout.write(tag + ' ' + c.section + ': ' + c.name + time + '\n');
    if (r.message) process.stdout.write('        ' + (r.status === 'ok' ? 'note: ' : '') + r.message + '\n');
  }
  const count = (s: Result['status']): number => results.filter((r) => r.status === s).length;
  process.stdout.write('\n' + count('ok') + ' ok, ' + count('fail') + ' failed, ' + count('skip') + ' skipped\n');
  return count('fail') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n');
    process.exit(1);
  },
);

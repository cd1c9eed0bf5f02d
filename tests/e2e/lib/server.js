// Starts a live daphne for a test file: a temporary SQLite database (migrated),
// a temporary media folder, a free port. `await startServer({ env })` returns
// { url, wsUrl, port, stop }. Extra environment (e.g. JWT_EXPIRATION) via env.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const PYTHON = process.env.E2E_PYTHON || join(ROOT, '.venv/bin/python');

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function waitHealthy(url, child, timeoutMs = 90000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`daphne exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error('daphne did not become healthy in time');
}

/** A migrated SQLite database to copy, made once per set of migrations (each
 * test file runs in its own process; migrating each time costs seconds). */
function migratedTemplate(baseEnv) {
  const hash = createHash('sha256');
  for (const app of ['chat']) {
    const dir = join(ROOT, app, 'migrations');
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.py')).sort()) {
      hash.update(name).update(readFileSync(join(dir, name)));
    }
  }
  hash.update(String(statSync(join(ROOT, 'requirements.txt')).mtimeMs));
  const template = join(tmpdir(), `chat-e2e-template-${hash.digest('hex').slice(0, 16)}.sqlite3`);
  if (existsSync(template)) return template;
  const scratch = mkdtempSync(join(tmpdir(), 'chat-e2e-migrate-'));
  const database = join(scratch, 'db.sqlite3');
  const migrate = spawnSync(PYTHON, ['manage.py', 'migrate', '--noinput', '-v', '0'], {
    cwd: ROOT,
    env: { ...baseEnv, DATABASE_URL: `sqlite:///${database}` },
    encoding: 'utf8',
  });
  if (migrate.status !== 0) throw new Error(`migrate failed: ${migrate.stderr}`);
  // Fold the WAL into the main file so that one file is the whole database.
  spawnSync(PYTHON, ['-c', `import sqlite3; c=sqlite3.connect(${JSON.stringify(database)}); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('PRAGMA journal_mode=DELETE'); c.close()`]);
  renameSync(database, template); // atomic: a concurrent run sees all or nothing
  rmSync(scratch, { recursive: true, force: true });
  return template;
}

export async function startServer({ env = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'chat-e2e-'));
  const port = await freePort();
  const serverEnv = {
    ...process.env,
    DATABASE_URL: `sqlite:///${join(dir, 'db.sqlite3')}`,
    MEDIA_ROOT: join(dir, 'media'),
    DJANGO_DEBUG: 'true',
    LOG_LEVEL: 'WARNING',
    PYTHONUNBUFFERED: '1',
    ...env,
  };
  delete serverEnv.REDIS_URL; // embedded mode: one process, in-memory layer
  if (env.REDIS_URL) serverEnv.REDIS_URL = env.REDIS_URL;
  copyFileSync(migratedTemplate(serverEnv), join(dir, 'db.sqlite3'));
  const log = [];
  const child = spawn(
    join(ROOT, '.venv/bin/daphne'),
    ['-b', '127.0.0.1', '-p', String(port), 'backend.asgi:application'],
    { cwd: ROOT, env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (chunk) => {
    log.push(chunk.toString());
    if (log.length > 400) log.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(url, child);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${error.message}\n${log.join('')}`);
  }
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, wsUrl: `ws://127.0.0.1:${port}/graphql/`, port, dir, env: serverEnv, log, stop };
}

// Runs a manage.py command against the server's database (e.g. seed_demo).
export function manage(server, args) {
  const r = spawnSync(PYTHON, ['manage.py', ...args], { cwd: ROOT, env: server.env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`manage.py ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

// Persisted queries with real clients: Apollo Client's persisted-queries link
// (automatic persisted queries, hashed queries over GET), and a server in
// trusted-documents mode with the manifest that scripts/trusted_documents.py
// writes, where the web chat in chromium still works and anything else is refused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApolloClient, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { launchChromium } from '../lib/browser.js';
import { ROOT, manage, startServer } from '../lib/server.js';

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

let apqServer;
let trustedServer;
let browser;

before(async () => {
  const manifest = join(mkdtempSync(join(tmpdir(), 'chat-e2e-td-')), 'trusted-documents.json');
  const written = spawnSync(join(ROOT, '.venv/bin/python'), ['scripts/trusted_documents.py', manifest], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(written.status, 0, written.stderr);
  [apqServer, trustedServer] = await Promise.all([
    startServer(),
    startServer({ env: { GRAPHQL_TRUSTED_DOCUMENTS: manifest } }),
  ]);
  manage(trustedServer, ['seed_demo']);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await Promise.all([apqServer?.stop(), trustedServer?.stop()]);
});

test('Apollo Client with automatic persisted queries: registers once, then sends the hash over GET', async () => {
  const requests = [];
  const recordingFetch = async (url, init) => {
    const response = await fetch(url, init);
    const body = await response.clone().json();
    requests.push({ method: init.method ?? 'GET', url: String(url), sent: init.body ? JSON.parse(init.body) : null, codes: (body.errors ?? []).map((e) => e.extensions?.code) });
    return response;
  };
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: createPersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
      new HttpLink({ uri: `${apqServer.url}/graphql/`, fetch: recordingFetch }),
    ),
  });
  const TYPENAME = apolloGql`query PersistedTypename { __typename }`;

  const first = await client.query({ query: TYPENAME, fetchPolicy: 'network-only' });
  const second = await client.query({ query: TYPENAME, fetchPolicy: 'network-only' });

  assert.equal(first.data.__typename, 'Query');
  assert.equal(second.data.__typename, 'Query');
  // 1: GET with the hash only -> not found; 2: POST with the document and its hash; 3: GET with the hash only.
  assert.deepEqual(requests.map((r) => [r.method, r.codes]), [
    ['GET', ['PERSISTED_QUERY_NOT_FOUND']],
    ['POST', []],
    ['GET', []],
  ]);
  assert.ok(!new URL(requests[2].url).searchParams.has('query'), requests[2].url);
  assert.match(new URL(requests[2].url).searchParams.get('extensions'), /sha256Hash/);
  assert.equal(requests[1].sent.extensions.persistedQuery.sha256Hash, sha256(requests[1].sent.query));
});

test('trusted documents: the web chat works in chromium; other documents are refused', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${trustedServer.url}/`);
  await page.fill('#auth-form input[name=username]', 'alice');
  await page.fill('#auth-form input[name=password]', 'demo-chat-2026');
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])');
  await page.waitForSelector('#connection.live');
  await page.locator('#my-rooms li', { hasText: '# general' }).click();
  await page.waitForSelector('#message-list li.message');
  assert.deepEqual(errors, []);
  await context.close();

  const response = await fetch(`${trustedServer.url}/graphql/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ query: 'query Snoop { users(first: 100) { edges { node { id username } } } }' }),
  });
  const body = await response.json();
  assert.deepEqual(body.errors.map((e) => e.extensions.code), ['QUERY_NOT_IN_SAFELIST']);
  assert.equal(body.data ?? null, null);
});

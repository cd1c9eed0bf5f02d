// The graphql-http audit suite (GraphQL over HTTP spec) against the live
// server: every audit must be "ok", with no warning and no error.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { auditServer } from 'graphql-http';
import { startServer } from '../lib/server.js';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test('graphql-http audits: all ok, no warnings', async () => {
  const results = await auditServer({ url: `${server.url}/graphql/` });
  const notOk = results.filter((r) => r.status !== 'ok').map((r) => `${r.status} ${r.id} ${r.name}: ${r.reason}`);
  assert.deepEqual(notOk, []);
  assert.ok(results.length >= 61, `expected the full suite, got ${results.length} audits`);
});

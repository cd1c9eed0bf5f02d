// The README's "first subscription in GraphiQL" walk-through, run as written:
// the same operations, the same demo login, and the Authorization header that
// GraphiQL's Headers tab sends (over HTTP, and as the connection_init payload
// of its graphql-ws client); bob, another user, says hello. If README.md
// carries the blocks, they must be these, character for character
// (tests/graphiql.test.js does the same walk-through in GraphiQL itself).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { Inbox, gql, untilLive } from '../lib/api.js';
import { FIRST_SUBSCRIPTION, LOG_IN, MY_ROOMS } from '../lib/readme.js';
import { ROOT, manage, startServer } from '../lib/server.js';

// What bob's web chat sends when he says hello in #general (step 5).
const BOB_SAYS_HELLO = `mutation Send($roomId: ID!) { sendMessage(input: {roomId: $roomId, text: "Hello alice"}) { id text } }`;

let server;
before(async () => {
  server = await startServer();
  manage(server, ['seed_demo']);
});
after(async () => {
  await server?.stop();
});

test('the README operations work as written, in the order the README gives them', async () => {
  const { tokenAuth } = await gql(server, LOG_IN);
  assert.equal(tokenAuth.user.username, 'alice');
  const headers = { Authorization: `JWT ${tokenAuth.token}` }; // what goes in GraphiQL's Headers tab

  const { rooms } = await gql(server, MY_ROOMS, {}, tokenAuth.token);
  const names = rooms.edges.map((e) => e.node.name);
  assert.ok(names.includes('general'), names.join(', '));
  const general = rooms.edges.find((e) => e.node.name === 'general').node;

  const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, connectionParams: headers, retryAttempts: 0 });
  const events = new Inbox();
  const connected = new Promise((resolve) => { const off = client.on('connected', () => { off(); resolve(); }); });
  const dispose = client.subscribe({ query: FIRST_SUBSCRIPTION }, {
    next: (result) => {
      events.push(result.errors ? { errors: result.errors } : result.data.roomEvents); // typing: kept apart
    },
    error: (error) => events.push({ error: String(error?.reason ?? error) }),
    complete: () => {},
  });
  try {
    await connected;
    // The README says: bob says hello from the web chat; the subscription shows it.
    const bob = (await gql(server, LOG_IN.replace('"alice"', '"bob"'))).tokenAuth.token;
    await untilLive(server, events, general.id, bob);
    const sent = (await gql(server, BOB_SAYS_HELLO, { roomId: general.id }, bob)).sendMessage;
    const [event] = await events.waitFor(1);
    assert.equal(event.__typename, 'MessageAdded');
    assert.equal(event.room.name, 'general');
    assert.deepEqual(event.message, { text: 'Hello alice', sender: { username: 'bob' } });
    assert.equal(typeof event.cursor, 'string');
    assert.equal(sent.text, 'Hello alice');
  } finally {
    dispose();
    await client.dispose();
  }
});

test('README.md, when it has the walk-through, shows exactly these operations', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  for (const operation of [LOG_IN, MY_ROOMS, FIRST_SUBSCRIPTION]) {
    assert.ok(blocks.includes(operation.trim()), `README.md lacks, or changed, this block:\n${operation}`);
  }
});

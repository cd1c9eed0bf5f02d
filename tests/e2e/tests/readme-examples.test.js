// The README's "first subscription in GraphiQL" walk-through, run as written:
// the same operations, the same demo login, and the Authorization header that
// GraphiQL's Headers tab sends (over HTTP, and as the connection_init payload
// of its graphql-ws client). If README.md carries the blocks, they must be
// these, character for character.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { Inbox, gql } from '../lib/api.js';
import { ROOT, manage, startServer } from '../lib/server.js';

export const LOG_IN = `mutation LogIn {
  tokenAuth(username: "alice", password: "demo-chat-2026") {
    token
    refreshToken
    user { id username }
  }
}`;

export const MY_ROOMS = `query MyRooms {
  rooms(joined: true, first: 10) {
    edges { node { id name unreadCount } }
  }
}`;

export const FIRST_SUBSCRIPTION = `subscription FirstSubscription {
  roomEvents {
    __typename
    cursor
    room { name }
    ... on MessageAdded { message { text sender { username } } }
    ... on TypingChanged { user { username } typing }
  }
}`;

export const SAY_HELLO = `mutation SayHello($roomId: ID!) {
  sendMessage(input: {roomId: $roomId, text: "Hello from GraphiQL"}) {
    id
    text
  }
}`;

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
      const event = result.errors ? { errors: result.errors } : result.data.roomEvents;
      if (event.__typename !== 'TypingChanged') events.push(event);
    },
    error: (error) => events.push({ error: String(error?.reason ?? error) }),
    complete: () => {},
  });
  try {
    await connected;
    // The README says: run SayHello in another tab; the subscription shows it.
    // Retry until the subscription is registered (it has no "ready" message).
    let sent = null;
    for (let attempt = 0; attempt < 20 && events.items.length === 0; attempt++) {
      if (!sent || attempt % 5 === 0) sent = (await gql(server, SAY_HELLO, { roomId: general.id }, tokenAuth.token)).sendMessage;
      await new Promise((r) => setTimeout(r, 200));
    }
    const [event] = await events.waitFor(1);
    assert.equal(event.__typename, 'MessageAdded');
    assert.equal(event.room.name, 'general');
    assert.deepEqual(event.message, { text: 'Hello from GraphiQL', sender: { username: 'alice' } });
    assert.equal(typeof event.cursor, 'string');
    assert.equal(sent.text, 'Hello from GraphiQL');
  } finally {
    dispose();
    await client.dispose();
  }
});

test('README.md, when it has the walk-through, shows exactly these operations', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1].trim());
  for (const operation of [LOG_IN, MY_ROOMS, FIRST_SUBSCRIPTION, SAY_HELLO]) {
    assert.ok(blocks.includes(operation.trim()), `README.md lacks, or changed, this block:\n${operation}`);
  }
});

// Subscriptions over HTTP with the clients people use: graphql-sse's createClient
// in distinct-connections mode (GraphQL over Server-Sent Events) and Apollo
// Client 4's plain HttpLink (multipart subscriptions, no WebSocket link at all),
// each receiving a MessageAdded that another user sends.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApolloClient, HttpLink, InMemoryCache, gql as apolloGql } from '@apollo/client';
import { createClient } from 'graphql-sse';
import { CREATE_ROOM, Inbox, JOIN_ROOM, ROOM_EVENTS, SEND_MESSAGE, gql, newUser, untilLive } from '../lib/api.js';
import { startServer } from '../lib/server.js';

let server;
let alice;
let bob;
let roomId;
before(async () => {
  server = await startServer();
  alice = await newUser(server, 'alice');
  bob = await newUser(server, 'bob');
  const created = await gql(server, CREATE_ROOM, { input: { name: `http-${Date.now() % 100000}` } }, alice.token);
  roomId = created.createRoom.id;
  await gql(server, JOIN_ROOM, { roomId }, bob.token);
});
after(async () => {
  await server?.stop();
});

test('graphql-sse (distinct connections): a MessageAdded from another user arrives', async () => {
  const client = createClient({
    url: `${server.url}/graphql/`,
    singleConnection: false,
    headers: { Authorization: `JWT ${alice.token}` },
    retryAttempts: 0,
  });
  const inbox = new Inbox();
  const errors = [];
  const dispose = client.subscribe(
    { query: ROOM_EVENTS, variables: { roomId } },
    {
      next: (result) => (result.errors ? errors.push(result.errors) : inbox.push(result.data.roomEvents)),
      error: (error) => errors.push(error),
      complete: () => {},
    },
  );
  try {
    await untilLive(server, inbox, roomId, bob.token);
    await gql(server, SEND_MESSAGE, { input: { roomId, text: 'hello over SSE' } }, bob.token);
    const [event] = await inbox.waitFor(1);
    assert.equal(event.__typename, 'MessageAdded');
    assert.equal(event.message.text, 'hello over SSE');
    assert.equal(event.message.sender.username, bob.user.username);
    assert.equal(event.room.id, roomId);
    assert.deepEqual(errors, []);
  } finally {
    dispose();
    client.dispose();
  }
});

test('graphql-sse: a room the user is not in is NOT_FOUND', async () => {
  const carol = await newUser(server, 'carol');
  const client = createClient({
    url: `${server.url}/graphql/`,
    singleConnection: false,
    headers: { Authorization: `JWT ${carol.token}` },
    retryAttempts: 0,
  });
  const results = [];
  await new Promise((resolve, reject) => {
    client.subscribe({ query: ROOM_EVENTS, variables: { roomId } }, {
      next: (result) => results.push(result),
      error: reject,
      complete: resolve,
    });
  });
  client.dispose();
  assert.equal(results.length, 1);
  assert.equal(results[0].errors[0].extensions.code, 'NOT_FOUND');
});

test("Apollo Client's HttpLink (multipart subscriptions): a MessageAdded from another user arrives", async () => {
  const client = new ApolloClient({
    link: new HttpLink({ uri: `${server.url}/graphql/`, headers: { Authorization: `JWT ${alice.token}` } }),
    cache: new InMemoryCache(),
  });
  const inbox = new Inbox();
  const errors = [];
  const subscription = client
    .subscribe({ query: apolloGql(ROOM_EVENTS), variables: { roomId } })
    .subscribe({
      next: (result) => (result.error ? errors.push(result.error) : inbox.push(result.data.roomEvents)),
      error: (error) => errors.push(error),
    });
  try {
    await untilLive(server, inbox, roomId, bob.token);
    await gql(server, SEND_MESSAGE, { input: { roomId, text: 'hello over multipart' } }, bob.token);
    const [event] = await inbox.waitFor(1);
    assert.equal(event.__typename, 'MessageAdded');
    assert.equal(event.message.text, 'hello over multipart');
    assert.equal(event.message.sender.username, bob.user.username);
    assert.deepEqual(errors, []);
  } finally {
    subscription.unsubscribe();
    client.stop();
  }
});

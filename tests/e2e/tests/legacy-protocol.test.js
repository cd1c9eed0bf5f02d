// The legacy `graphql-ws` subprotocol through the subscriptions-transport-ws
// client (what older Apollo setups use).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';
import { CREATE_ROOM, Inbox, JOIN_ROOM, ROOM_EVENTS, SEND_MESSAGE, gql, newUser, untilLive } from '../lib/api.js';
import { startServer } from '../lib/server.js';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

function legacyClient(connectionParams) {
  return new SubscriptionClient(server.wsUrl, { reconnect: false, lazy: false, connectionParams }, WebSocket);
}

function connected(client) {
  return new Promise((resolve, reject) => {
    client.onConnected(() => resolve());
    client.onError((error) => reject(error));
  });
}

test('subscriptions-transport-ws: subscribe to roomEvents and receive live messages', async () => {
  const alice = await newUser(server, 'alice');
  const bob = await newUser(server, 'bob');
  const { createRoom: room } = await gql(server, CREATE_ROOM, { input: { name: 'legacy' } }, alice.token);
  await gql(server, JOIN_ROOM, { roomId: room.id }, bob.token);

  const client = legacyClient({ authToken: alice.token });
  try {
    await connected(client);
    const events = new Inbox();
    const observable = client.request({ query: ROOM_EVENTS, variables: { roomId: room.id } });
    const subscription = observable.subscribe({
      next: (result) => events.push(result.errors ? { errors: result.errors } : result.data.roomEvents),
      error: (error) => events.push({ error: String(error?.message ?? error) }),
    });
    await untilLive(server, events, room.id, bob.token);

    const first = await gql(server, SEND_MESSAGE, { input: { roomId: room.id, text: 'over the legacy protocol' } }, bob.token);
    const second = await gql(server, SEND_MESSAGE, { input: { roomId: room.id, text: 'and another one' } }, alice.token);
    const received = await events.waitFor(2);
    assert.deepEqual(received.map((e) => e.__typename), ['MessageAdded', 'MessageAdded']);
    assert.deepEqual(received.map((e) => e.message.id), [first.sendMessage.id, second.sendMessage.id]);
    assert.equal(received[0].message.text, 'over the legacy protocol');
    assert.equal(received[0].message.sender.id, bob.user.id);
    assert.equal(received[1].seq, received[0].seq + 1);
    subscription.unsubscribe();
  } finally {
    client.close();
  }
});

test('subscriptions-transport-ws: a bad token closes the connection (4403)', async () => {
  const socket = new WebSocket(server.wsUrl, 'graphql-ws');
  const closed = new Promise((resolve) => socket.on('close', (code) => resolve(code)));
  const messages = [];
  socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve) => socket.on('open', resolve));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authToken: 'not-a-token' } }));
  assert.equal(await closed, 4403);
  assert.equal(messages.some((m) => m.type === 'connection_ack'), false);
});

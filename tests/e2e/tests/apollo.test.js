// Apollo Client 4 as an application would set it up: HttpLink for queries and
// mutations (JWT in the Authorization header), GraphQLWsLink (graphql-ws) for
// subscriptions (JWT in connection_init), split by operation type.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { SetContextLink } from '@apollo/client/link/context';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { Inbox, PASSWORD, untilLive } from '../lib/api.js';
import { startServer } from '../lib/server.js';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const USER = 'id username displayName';
const MESSAGE = `id text isDeleted editedAt sender { ${USER} }`;

const REGISTER = gql`mutation Register($input: RegisterInput!) {
  register(input: $input) { token refreshToken user { ${USER} } } }`;
const TOKEN_AUTH = gql`mutation Login($username: String!, $password: String!) {
  tokenAuth(username: $username, password: $password) { token refreshToken user { ${USER} } } }`;
const ME = gql`query Me { me { ${USER} } }`;
const CREATE_ROOM = gql`mutation CreateRoom($input: CreateRoomInput!) {
  createRoom(input: $input) { id name topic memberCount myRole } }`;
const JOIN_ROOM = gql`mutation JoinRoom($roomId: ID!) { joinRoom(roomId: $roomId) { id memberCount myRole } }`;
const SEND = gql`mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE} } }`;
const EDIT = gql`mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { ${MESSAGE} } }`;
const DELETE = gql`mutation Delete($id: ID!) { deleteMessage(id: $id) { ${MESSAGE} } }`;
const HISTORY = gql`query History($roomId: ID!) {
  messages(roomId: $roomId, first: 10) { totalCount edges { cursor node { ${MESSAGE} } } } }`;
const ROOM_EVENTS = gql`subscription RoomEvents($roomId: ID) {
  roomEvents(roomId: $roomId) {
    __typename cursor seq room { id name }
    ... on MessageAdded { message { ${MESSAGE} } }
    ... on MessageEdited { message { ${MESSAGE} } }
    ... on MessageDeleted { message { ${MESSAGE} } }
    ... on MemberJoined { user { ${USER} } }
  } }`;

/** An Apollo Client whose links read the current token from `auth`. */
function apolloClient(auth) {
  const httpLink = new HttpLink({ uri: `${server.url}/graphql/` });
  const authLink = new SetContextLink((prevContext) => ({
    headers: { ...prevContext.headers, ...(auth.token ? { Authorization: `JWT ${auth.token}` } : {}) },
  }));
  const wsClient = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => (auth.token ? { authToken: auth.token } : {}),
    lazy: true,
    retryAttempts: 0,
  });
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
    },
    new GraphQLWsLink(wsClient),
    authLink.concat(httpLink),
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return { client, wsClient };
}

test('Apollo Client: register, log in, create a room, subscribe, send, edit, delete', async () => {
  const aliceAuth = { token: null };
  const bobAuth = { token: null };
  const alice = apolloClient(aliceAuth);
  const bob = apolloClient(bobAuth);
  const suffix = Date.now() % 100000;
  try {
    // Register (anonymous), then log in with the username.
    const registered = await alice.client.mutate({
      mutation: REGISTER,
      variables: { input: { username: `alice${suffix}`, email: `alice${suffix}@example.com`, password: PASSWORD, displayName: 'Alice' } },
    });
    assert.equal(registered.data.register.user.username, `alice${suffix}`);
    assert.ok(registered.data.register.refreshToken);
    const bobRegistered = await bob.client.mutate({
      mutation: REGISTER,
      variables: { input: { username: `bob${suffix}`, email: `bob${suffix}@example.com`, password: PASSWORD, displayName: 'Bob' } },
    });
    bobAuth.token = bobRegistered.data.register.token;

    const login = await alice.client.mutate({ mutation: TOKEN_AUTH, variables: { username: `alice${suffix}`, password: PASSWORD } });
    aliceAuth.token = login.data.tokenAuth.token;
    const me = await alice.client.query({ query: ME, fetchPolicy: 'network-only' });
    assert.equal(me.data.me.username, `alice${suffix}`);

    // A wrong password is a GraphQL error, surfaced by Apollo as such.
    await assert.rejects(
      alice.client.mutate({ mutation: TOKEN_AUTH, variables: { username: `alice${suffix}`, password: 'wrong password' } }),
      (error) => error.errors?.[0]?.extensions?.code === 'BAD_USER_INPUT',
    );

    const created = await alice.client.mutate({
      mutation: CREATE_ROOM,
      variables: { input: { name: `apollo-${suffix}`, topic: 'Apollo end to end' } },
    });
    const room = created.data.createRoom;
    assert.equal(room.myRole, 'OWNER');
    assert.equal(room.memberCount, 1);

    const joined = await bob.client.mutate({ mutation: JOIN_ROOM, variables: { roomId: room.id } });
    assert.equal(joined.data.joinRoom.memberCount, 2);
    assert.equal(joined.data.joinRoom.myRole, 'MEMBER');

    // Alice subscribes to the room over graphql-ws.
    const events = new Inbox();
    const subscription = alice.client.subscribe({ query: ROOM_EVENTS, variables: { roomId: room.id } }).subscribe({
      next: (result) => {
        if (result.error) events.push({ error: result.error.message });
        else events.push(result.data.roomEvents);
      },
      error: (error) => events.push({ error: error.message }),
    });
    // The subscription is live once the socket acknowledged it: wait for the ack.
    await new Promise((resolve) => {
      const off = alice.wsClient.on('connected', () => { off(); resolve(); });
    });
    await untilLive(server, events, room.id, bobAuth.token);

    // Bob talks; Alice sees everything live, in order.
    const sent = await bob.client.mutate({
      mutation: SEND,
      variables: { input: { roomId: room.id, text: 'Hello Alice, from Apollo', clientId: `apollo-${suffix}-1` } },
    });
    const messageId = sent.data.sendMessage.id;
    assert.equal(sent.data.sendMessage.sender.username, `bob${suffix}`);
    const edited = await bob.client.mutate({ mutation: EDIT, variables: { id: messageId, text: 'Hello Alice (edited)' } });
    assert.equal(edited.data.editMessage.text, 'Hello Alice (edited)');
    assert.ok(edited.data.editMessage.editedAt);
    const deleted = await bob.client.mutate({ mutation: DELETE, variables: { id: messageId } });
    assert.equal(deleted.data.deleteMessage.isDeleted, true);

    const received = await events.waitFor(3);
    subscription.unsubscribe();
    assert.deepEqual(received.map((e) => e.__typename), ['MessageAdded', 'MessageEdited', 'MessageDeleted']);
    assert.deepEqual(received.map((e) => e.room.id), [room.id, room.id, room.id]);
    const seqs = received.map((e) => e.seq);
    assert.deepEqual(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2], 'contiguous per-room sequence');
    assert.equal(received[0].message.id, messageId);
    assert.equal(received[0].message.text, 'Hello Alice, from Apollo');
    assert.equal(received[0].message.sender.username, `bob${suffix}`);
    assert.equal(received[1].message.text, 'Hello Alice (edited)');
    assert.equal(received[2].message.isDeleted, true);
    assert.equal(received[2].message.text, '');
    assert.equal(new Set(received.map((e) => e.cursor)).size, 3);
    assert.equal(events.items.length, 3, 'nothing else arrived');

    // History through HttpLink shows the tombstone.
    const history = await alice.client.query({ query: HISTORY, variables: { roomId: room.id }, fetchPolicy: 'network-only' });
    assert.equal(history.data.messages.totalCount, 1);
    assert.equal(history.data.messages.edges[0].node.isDeleted, true);
  } finally {
    await alice.wsClient.dispose();
    await bob.wsClient.dispose();
    alice.client.stop();
    bob.client.stop();
  }
});

test('Apollo Client: a subscription without a token is refused, not silently empty', async () => {
  const anonymous = apolloClient({ token: null });
  try {
    const outcome = await new Promise((resolve) => {
      anonymous.client.subscribe({ query: ROOM_EVENTS, variables: {} }).subscribe({
        next: (result) => resolve(result.error ? { error: result.error } : { data: result.data }),
        error: (error) => resolve({ error }),
      });
    });
    assert.ok(outcome.error, 'an error, not data');
    assert.match(JSON.stringify(outcome.error.errors ?? outcome.error.message), /UNAUTHENTICATED|signed in|log in|authenticat/i);
  } finally {
    await anonymous.wsClient.dispose();
    anonymous.client.stop();
  }
});

// Plain fetch helpers for test set-up (the clients under test are in the tests).
import assert from 'node:assert/strict';

export const USER_FIELDS = 'id username displayName';
export const MESSAGE_FIELDS = `id text clientId isDeleted editedAt sender { ${USER_FIELDS} }
  attachments { id name contentType size width height downloadUrl thumbnailUrl }`;

export const REGISTER = `mutation Register($input: RegisterInput!) {
  register(input: $input) { token refreshToken refreshExpiresIn payload user { ${USER_FIELDS} } } }`;
export const TOKEN_AUTH = `mutation Login($username: String!, $password: String!) {
  tokenAuth(username: $username, password: $password) { token refreshToken user { ${USER_FIELDS} } } }`;
export const REFRESH_TOKEN = `mutation Refresh($refreshToken: String!) {
  refreshToken(refreshToken: $refreshToken) { token refreshToken } }`;
export const CREATE_ROOM = `mutation CreateRoom($input: CreateRoomInput!) { createRoom(input: $input) { id name } }`;
export const JOIN_ROOM = `mutation JoinRoom($roomId: ID!) { joinRoom(roomId: $roomId) { id memberCount } }`;
export const SEND_MESSAGE = `mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE_FIELDS} } }`;
export const ROOM_EVENTS = `subscription RoomEvents($roomId: ID, $after: String) {
  roomEvents(roomId: $roomId, after: $after) {
    __typename cursor seq room { id }
    ... on MessageAdded { message { ${MESSAGE_FIELDS} } }
    ... on MessageEdited { message { ${MESSAGE_FIELDS} } }
    ... on MessageDeleted { message { ${MESSAGE_FIELDS} } }
  } }`;

export const PASSWORD = 'correct horse battery staple';

export async function gql(server, query, variables = {}, token = null) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json' };
  if (token) headers.Authorization = `JWT ${token}`;
  const response = await fetch(`${server.url}/graphql/`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) {
    const error = new Error(body.errors.map((e) => e.message).join('; '));
    error.code = body.errors[0].extensions?.code;
    throw error;
  }
  return body.data;
}

let counter = 0;
/** A new account (register mutation); returns { token, refreshToken, user }. */
export async function newUser(server, prefix = 'user') {
  counter += 1;
  const username = `${prefix}${counter}${Date.now() % 100000}`;
  const data = await gql(server, REGISTER, {
    input: { username, email: `${username}@example.com`, password: PASSWORD, displayName: prefix },
  });
  assert.equal(data.register.user.username, username);
  return data.register;
}

export const SET_TYPING = `mutation Typing($roomId: ID!, $typing: Boolean!) { setTyping(roomId: $roomId, typing: $typing) }`;

/** Collects the events of a subscription; `waitFor(n)` waits for the n-th.
 * Typing and presence events (ephemeral) are not kept: a TypingChanged only
 * tells `untilLive` that the subscription is registered on the server. */
export class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
    this.live = false;
  }
  push(item) {
    if (item?.__typename === 'TypingChanged' || item?.__typename === 'PresenceChanged') {
      this.live = true;
      return;
    }
    this.items.push(item);
    this.waiters = this.waiters.filter((w) => (this.items.length >= w.n ? (w.resolve(), false) : true));
  }
  async waitFor(n, timeoutMs = 10000) {
    if (this.items.length >= n) return this.items.slice(0, n);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} items, got ${this.items.length}: ${JSON.stringify(this.items)}`)), timeoutMs);
      this.waiters.push({ n, resolve: () => { clearTimeout(timer); resolve(); } });
    });
    return this.items.slice(0, n);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until a subscription is live on the server: another member of the room
 * says "typing" until the inbox sees it (there is no "subscribed" message in
 * either protocol, and events before that moment are not delivered live). */
export async function untilLive(server, inbox, roomId, otherMemberToken) {
  const token = typeof otherMemberToken === 'function' ? otherMemberToken : async () => otherMemberToken;
  for (let attempt = 0; attempt < 40 && !inbox.live; attempt++) {
    await gql(server, SET_TYPING, { roomId, typing: true }, await token()).catch(() => {});
    for (let i = 0; i < 5 && !inbox.live; i++) await sleep(50);
  }
  if (!inbox.live) throw new Error('the subscription did not become live');
  await gql(server, SET_TYPING, { roomId, typing: false }, await token()).catch(() => {});
}

// Access tokens that live 3 seconds (JWT_EXPIRATION=3): a graphql-ws client
// whose token expires while its subscription is open loses its connection,
// is refused (4403) with the expired token, refreshes, reconnects with the new
// token and resumes with `after` = the last cursor it saw, without losing or
// repeating an event.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { CREATE_ROOM, Inbox, JOIN_ROOM, REFRESH_TOKEN, ROOM_EVENTS, SEND_MESSAGE, gql, newUser, sleep, untilLive } from '../lib/api.js';
import { startServer } from '../lib/server.js';

const EXPIRATION_SECONDS = 3;

let server;
before(async () => {
  server = await startServer({ env: { JWT_EXPIRATION: String(EXPIRATION_SECONDS) } });
});
after(async () => {
  await server?.stop();
});

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What a client keeps: the access token and the single-use refresh token. */
class Session {
  constructor({ token, refreshToken }) {
    this.token = token;
    this.refreshToken = refreshToken;
    this.refreshes = 0;
  }

  get expiresAt() {
    return JSON.parse(Buffer.from(this.token.split('.')[1], 'base64url').toString()).exp * 1000;
  }

  async refresh() {
    const { refreshToken } = await gql(server, REFRESH_TOKEN, { refreshToken: this.refreshToken });
    this.token = refreshToken.token;
    this.refreshToken = refreshToken.refreshToken;
    this.refreshes += 1;
  }

  /** A usable access token, refreshed when it is about to expire. */
  async fresh() {
    if (this.expiresAt - Date.now() < 1000) await this.refresh();
    return this.token;
  }
}

test('an expired token is refreshed and the subscription resumes with `after` without loss', async () => {
  const alice = new Session(await newUser(server, 'alice'));
  const bob = new Session(await newUser(server, 'bob'));
  const { createRoom: room } = await gql(server, CREATE_ROOM, { input: { name: 'refresh' } }, await alice.fresh());
  await gql(server, JOIN_ROOM, { roomId: room.id }, await bob.fresh());
  const send = async (text) =>
    (await gql(server, SEND_MESSAGE, { input: { roomId: room.id, text } }, await bob.fresh())).sendMessage;

  // The client's reconnect policy: after a 4403 (expired or revoked token),
  // refresh before the next attempt. The test holds reconnects until it has
  // sent messages into the gap.
  const closeCodes = [];
  let refused = false;
  let terminated = false;
  let releaseReconnect;
  const gapFilled = new Promise((resolve) => { releaseReconnect = resolve; });
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    // The token as stored: after the gap it is expired, and the server says so.
    connectionParams: () => ({ authToken: alice.token }),
    retryAttempts: 5,
    shouldRetry: () => true,
    retryWait: async () => {
      if (terminated) await gapFilled;
      if (refused) {
        await alice.refresh();
        refused = false;
      }
      await sleep(100);
    },
    on: {
      closed: (event) => {
        closeCodes.push(event.code);
        if (event.code === 4403) refused = true;
      },
    },
  });

  // graphql-ws sends this same payload again on every reconnect: keeping the
  // latest cursor in it is what makes the retry resume instead of restart.
  const payload = { query: ROOM_EVENTS, variables: { roomId: room.id, after: null } };
  const events = new Inbox();
  let connections = 0;
  const connectedOnce = new Promise((resolve) => client.on('connected', () => { connections += 1; resolve(); }));
  await alice.fresh(); // usually avoids a refusal on the first connection (it would be retried, too)
  const dispose = client.subscribe(payload, {
    next: (result) => {
      if (result.errors) return events.push({ errors: result.errors });
      if (result.data.roomEvents.seq !== null) payload.variables.after = result.data.roomEvents.cursor;
      return events.push(result.data.roomEvents);
    },
    error: (error) => events.push({ error: String(error?.reason ?? error) }),
    complete: () => {},
  });

  try {
    await withTimeout(connectedOnce, 20000, 'the first connection');
    const connectionsBeforeDrop = connections;
    const refreshesBeforeDrop = alice.refreshes;
    await untilLive(server, events, room.id, () => bob.fresh());
    const m1 = await send('one: live, fresh token');
    await events.waitFor(1);

    // The access token expires; the open socket stays authenticated.
    await sleep(Math.max(0, alice.expiresAt - Date.now()) + 500);
    await assert.rejects(gql(server, 'query Me { me { id } }', {}, alice.token), (error) => error.code === 'UNAUTHENTICATED');
    const m2 = await send('two: live, after expiry');
    await events.waitFor(2);

    // The connection drops (network loss). While it is down, more messages.
    terminated = true;
    client.terminate();
    const m3 = await send('three: sent while disconnected');
    const m4 = await send('four: sent while disconnected');
    releaseReconnect();

    // Reconnect with the expired token: 4403; refresh; reconnect: replay of 3 and 4.
    await events.waitFor(4, 15000);
    const m5 = await send('five: live again');
    const received = await events.waitFor(5);
    await sleep(300);

    assert.deepEqual(events.items.map((e) => e.message?.id ?? e), [m1, m2, m3, m4, m5].map((m) => m.id));
    assert.deepEqual(events.items.map((e) => e.message.text), [m1, m2, m3, m4, m5].map((m) => m.text));
    const seqs = received.map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'no gap, no duplicate');
    const afterDrop = closeCodes.slice(closeCodes.indexOf(4499)); // 4499: terminated by the client
    assert.deepEqual(afterDrop, [4499, 4403], `refused once with the expired token (close codes: ${closeCodes})`);
    assert.equal(alice.refreshes, refreshesBeforeDrop + 1, 'one refresh after the refusal');
    assert.equal(connections, connectionsBeforeDrop + 1, 'one new connection, with the new token');
  } finally {
    dispose();
    await client.dispose();
  }
});

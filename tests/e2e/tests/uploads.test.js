// File uploads: the GraphQL multipart request spec through apollo-upload-client,
// and the REST shim with plain fetch. Subscribers get the attachments live, and
// downloads are for the room's members only.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApolloClient, InMemoryCache, gql as apolloGql } from '@apollo/client';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { CREATE_ROOM, Inbox, JOIN_ROOM, ROOM_EVENTS, gql, newUser, untilLive } from '../lib/api.js';
import { makePng } from '../lib/png.js';
import { startServer } from '../lib/server.js';

let server;
let alice;
let bob;
let outsider;
let room;

before(async () => {
  server = await startServer();
  [alice, bob, outsider] = [await newUser(server, 'alice'), await newUser(server, 'bob'), await newUser(server, 'eve')];
  ({ createRoom: room } = await gql(server, CREATE_ROOM, { input: { name: 'uploads' } }, alice.token));
  await gql(server, JOIN_ROOM, { roomId: room.id }, bob.token);
});
after(async () => {
  await server?.stop();
});

const ATTACHMENT = 'id name contentType size width height downloadUrl thumbnailUrl';
const UPLOAD_ATTACHMENT = apolloGql`mutation Upload($file: Upload!) { uploadAttachment(file: $file) { ${ATTACHMENT} } }`;
const SEND_WITH_FILES = apolloGql`mutation SendFiles($input: SendMessageInput!) {
  sendMessage(input: $input) { id text attachments { ${ATTACHMENT} } } }`;

function uploadClient(token) {
  return new ApolloClient({
    link: new UploadHttpLink({ uri: `${server.url}/graphql/`, headers: { Authorization: `JWT ${token}` } }),
    cache: new InMemoryCache(),
  });
}

async function download(path, token) {
  const headers = token ? { Authorization: `JWT ${token}` } : {};
  const response = await fetch(new URL(path, server.url), { headers });
  return { status: response.status, type: response.headers.get('content-type'), body: Buffer.from(await response.arrayBuffer()) };
}

async function subscribe(token, otherMemberToken) {
  const client = createClient({ url: server.wsUrl, webSocketImpl: WebSocket, connectionParams: { authToken: token }, retryAttempts: 0 });
  const inbox = new Inbox();
  const ready = new Promise((resolve) => { const off = client.on('connected', () => { off(); resolve(); }); });
  const dispose = client.subscribe(
    { query: ROOM_EVENTS, variables: { roomId: room.id } },
    { next: (r) => inbox.push(r.errors ? { errors: r.errors } : r.data.roomEvents), error: (e) => inbox.push({ error: String(e) }), complete: () => {} },
  );
  await ready;
  await untilLive(server, inbox, room.id, otherMemberToken);
  return { inbox, close: async () => { dispose(); await client.dispose(); } };
}

test('apollo-upload-client: uploadAttachment, then sendMessage with attachmentIds and with files', async () => {
  const png = makePng(320, 200);
  const client = uploadClient(alice.token);
  const live = await subscribe(bob.token, alice.token);
  try {
    // 1. Upload on its own, then attach by ID.
    const file = new File([png], 'gradient.png', { type: 'image/png' });
    const uploaded = (await client.mutate({ mutation: UPLOAD_ATTACHMENT, variables: { file } })).data.uploadAttachment;
    assert.equal(uploaded.name, 'gradient.png');
    assert.equal(uploaded.contentType, 'image/png');
    assert.equal(uploaded.size, png.length);
    assert.deepEqual([uploaded.width, uploaded.height], [320, 200]);
    assert.ok(uploaded.thumbnailUrl);
    const sent = (await client.mutate({
      mutation: SEND_WITH_FILES,
      variables: { input: { roomId: room.id, text: 'by id', attachmentIds: [uploaded.id] } },
    })).data.sendMessage;
    assert.deepEqual(sent.attachments.map((a) => a.id), [uploaded.id]);

    // 2. Files in the sendMessage request itself (two of them).
    const note = new File([Buffer.from('hello from a text file\n')], 'note.txt', { type: 'text/plain' });
    const withFiles = (await client.mutate({
      mutation: SEND_WITH_FILES,
      variables: { input: { roomId: room.id, text: 'inline files', files: [new File([png], 'again.png', { type: 'image/png' }), note] } },
    })).data.sendMessage;
    assert.deepEqual(withFiles.attachments.map((a) => [a.name, a.contentType]), [['again.png', 'image/png'], ['note.txt', 'text/plain']]);

    // Bob (a member) gets both messages live and can download the bytes.
    const [first, second] = await live.inbox.waitFor(2);
    assert.equal(first.message.attachments[0].id, uploaded.id);
    assert.equal(second.message.attachments.length, 2);
    const original = await download(first.message.attachments[0].downloadUrl, bob.token);
    assert.equal(original.status, 200);
    assert.ok(original.body.equals(png), 'the downloaded bytes are the uploaded bytes');
    const thumbnail = await download(first.message.attachments[0].thumbnailUrl, bob.token);
    assert.equal(thumbnail.status, 200);
    assert.match(thumbnail.type, /^image\//);
    const text = await download(second.message.attachments[1].downloadUrl, bob.token);
    assert.equal(text.body.toString(), 'hello from a text file\n');
  } finally {
    await live.close();
    client.stop();
  }
});

test('REST shim with fetch: POST /api/uploads/ and POST /api/rooms/<id>/messages/', async () => {
  const png = makePng(64, 48);
  const live = await subscribe(bob.token, alice.token);
  try {
    const uploadForm = new FormData();
    uploadForm.append('file', new Blob([png], { type: 'image/png' }), 'small.png');
    const uploadResponse = await fetch(`${server.url}/api/uploads/`, {
      method: 'POST',
      headers: { Authorization: `JWT ${alice.token}` },
      body: uploadForm,
    });
    assert.equal(uploadResponse.status, 201);
    const attachment = await uploadResponse.json();
    assert.equal(attachment.name, 'small.png');
    assert.equal(attachment.size, png.length);

    const form = new FormData();
    form.append('text', 'sent through the REST shim');
    form.append('clientId', 'rest-shim-1');
    form.append('file', new Blob([png], { type: 'image/png' }), 'photo.png');
    const response = await fetch(`${server.url}/api/rooms/${encodeURIComponent(room.id)}/messages/`, {
      method: 'POST',
      headers: { Authorization: `JWT ${alice.token}` },
      body: form,
    });
    assert.equal(response.status, 201);
    const message = await response.json();
    assert.equal(message.text, 'sent through the REST shim');

    const [event] = await live.inbox.waitFor(1);
    assert.equal(event.__typename, 'MessageAdded');
    assert.equal(event.message.text, 'sent through the REST shim');
    assert.deepEqual(event.message.attachments.map((a) => [a.name, a.width, a.height]), [['photo.png', 64, 48]]);
    const downloaded = await download(event.message.attachments[0].downloadUrl, bob.token);
    assert.ok(downloaded.body.equals(png));

    // Without a token the shim answers 401; a non-member cannot post or download.
    const anonymous = await fetch(`${server.url}/api/uploads/`, { method: 'POST', body: uploadForm });
    assert.equal(anonymous.status, 401);
    const stranger = await fetch(`${server.url}/api/rooms/${encodeURIComponent(room.id)}/messages/`, {
      method: 'POST',
      headers: { Authorization: `JWT ${outsider.token}` },
      body: form,
    });
    assert.ok([403, 404].includes(stranger.status), `non-member post: ${stranger.status}`);
  } finally {
    await live.close();
  }
});

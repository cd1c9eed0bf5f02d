// The web chat: plain JavaScript, no build step. GraphQL over HTTP for queries
// and mutations, the graphql-transport-ws protocol over the browser's own
// WebSocket for the live `roomEvents` subscription, and the REST shim for image
// uploads. Everything the user sees is written with textContent (never HTML).

import * as inbox from './inbox.js';

const GRAPHQL_URL = '/graphql/';
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/`;
const PAGE_SIZE = 30;
const TYPING_REFRESH_MS = 3000; // re-send "typing" while the user keeps typing
const TYPING_IDLE_MS = 4000; // then "stopped" after this much quiet
const TYPING_SHOWN_MS = 6000; // a remote "typing" without a "stopped" fades after this

const USER_FIELDS = 'id username displayName avatarUrl(size: 64)';
// Reactions, threads, pins and edit history of a message (see "Conversations" below).
const CONVERSATION_FIELDS = `
  replyTo { id replyCount lastReplyAt } replyCount lastReplyAt pinnedAt pinnedBy { ${USER_FIELDS} }
  reactions { emoji count reactedByMe users(first: 10) { ${USER_FIELDS} } }
  edits { text editedAt }`;
const MESSAGE_FIELDS = `
  id text clientId createdAt editedAt isDeleted senderBlocked
  sender { ${USER_FIELDS} }
  room { id }
  attachments { id name contentType width height downloadUrl thumbnailUrl }
  ${CONVERSATION_FIELDS}`;
const ROOM_FIELDS = 'id name topic kind isPrivate memberCount unreadCount unreadMentionCount myRole';

const Q = {
  login: `mutation Login($username: String!, $password: String!) {
    tokenAuth(username: $username, password: $password) { token refreshToken user { ${USER_FIELDS} } } }`,
  register: `mutation Register($input: RegisterInput!) {
    register(input: $input) { token refreshToken user { ${USER_FIELDS} } } }`,
  me: `query Me { me { ${USER_FIELDS} } }`,
  rooms: `query Rooms { rooms(first: 100) { edges { node { ${ROOM_FIELDS} } } } }`,
  room: `query Room($id: ID!) { room(id: $id) { ${ROOM_FIELDS}
    members { role user { ${USER_FIELDS} isOnline } } } }`,
  messages: `query History($roomId: ID!, $first: Int!, $after: String) {
    messages(roomId: $roomId, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor } edges { node { ${MESSAGE_FIELDS} } } } }`,
  createRoom: `mutation CreateRoom($input: CreateRoomInput!) { createRoom(input: $input) { ${ROOM_FIELDS} } }`,
  joinRoom: `mutation JoinRoom($roomId: ID!) { joinRoom(roomId: $roomId) { ${ROOM_FIELDS} } }`,
  send: `mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE_FIELDS} } }`,
  edit: `mutation Edit($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { ${MESSAGE_FIELDS} } }`,
  remove: `mutation Delete($id: ID!) { deleteMessage(id: $id) { ${MESSAGE_FIELDS} } }`,
  markRead: `mutation MarkRead($roomId: ID!, $messageId: ID!) {
    markRead(roomId: $roomId, messageId: $messageId) { id unreadCount unreadMentionCount } }`,
  typing: `mutation Typing($roomId: ID!, $typing: Boolean!) { setTyping(roomId: $roomId, typing: $typing) }`,
  addReaction: `mutation AddReaction($messageId: ID!, $emoji: String!) {
    addReaction(messageId: $messageId, emoji: $emoji) { ${MESSAGE_FIELDS} } }`,
  removeReaction: `mutation RemoveReaction($messageId: ID!, $emoji: String!) {
    removeReaction(messageId: $messageId, emoji: $emoji) { ${MESSAGE_FIELDS} } }`,
  pin: `mutation Pin($id: ID!) { pinMessage(id: $id) { ${MESSAGE_FIELDS} } }`,
  unpin: `mutation Unpin($id: ID!) { unpinMessage(id: $id) { ${MESSAGE_FIELDS} } }`,
  pinned: `query Pinned($id: ID!) { room(id: $id) { id pinnedMessages(first: 50) {
    edges { node { ${MESSAGE_FIELDS} } } } } }`,
  thread: `query Thread($id: ID!, $after: String) { node(id: $id) { ... on Message { ${MESSAGE_FIELDS}
    replies(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { ${MESSAGE_FIELDS} } } } } } }`,
  events: `subscription Events($after: String) {
    roomEvents(after: $after) {
      __typename cursor
      room { id name topic }
      ... on MessageAdded { message { ${MESSAGE_FIELDS} } }
      ... on MessageEdited { message { ${MESSAGE_FIELDS} } }
      ... on MessageDeleted { message { ${MESSAGE_FIELDS} } }
      ... on MemberJoined { user { ${USER_FIELDS} } }
      ... on MemberLeft { user { ${USER_FIELDS} } reason }
      ... on ReactionAdded { message { ${MESSAGE_FIELDS} } }
      ... on ReactionRemoved { message { ${MESSAGE_FIELDS} } }
      ... on MessagePinned { message { ${MESSAGE_FIELDS} } by { ${USER_FIELDS} } }
      ... on MessageUnpinned { message { ${MESSAGE_FIELDS} } by { ${USER_FIELDS} } }
      ... on MemberMuted { user { ${USER_FIELDS} } until }
      ... on MemberUnmuted { user { ${USER_FIELDS} } }
      ... on TypingChanged { user { ${USER_FIELDS} } typing }
      ... on PresenceChanged { user { ${USER_FIELDS} } online }
    } }`,
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

const nameOf = (user) => (user ? user.displayName || user.username : 'deleted user');

// --- Session: the access token in memory, the refresh token in an HttpOnly cookie ------
//
// The page never stores a token. Right after logging in it hands the refresh token
// to /web/session/ (chat/web_session.py), which exchanges it and keeps the new one
// in a cookie no script can read; the access token lives in this variable only.
// A reload, an expiring token or a 4403 asks /web/session/refresh/ for a new one.
// So a script injected into the page cannot carry off a token that outlives it.

const WEB_SESSION_URL = '/web/session/';

const session = {
  token: null,
  clear() {
    this.token = null;
  },
  expiresAt() {
    try {
      const payload = JSON.parse(atob(this.token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      return payload.exp * 1000;
    } catch {
      return 0;
    }
  },
};

class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.code = errors[0]?.extensions?.code;
    this.errors = errors;
  }
}

async function post(query, variables, token) {
  const headers = {
    'Content-Type': 'application/json',
    Accept: 'application/graphql-response+json, application/json;q=0.9',
  };
  if (token) headers.Authorization = `JWT ${token}`;
  const response = await fetch(GRAPHQL_URL, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json().catch(() => ({ errors: [{ message: `HTTP ${response.status}` }] }));
  if (body.errors?.length) throw new GraphQLError(body.errors);
  return body.data;
}

/** POST to the web session endpoints (same origin, the cookie goes along). */
async function webSession(path, body) {
  const exchange = async () => {
    const response = await fetch(WEB_SESSION_URL + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-Chat-Web': '1', 'Content-Type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new GraphQLError([{
        message: data.error?.message || `HTTP ${response.status}`,
        extensions: { code: data.error?.code || 'UNAUTHENTICATED' },
      }]);
    }
    return data;
  };
  // Every tab shares the cookie: one exchange at a time across them, or two tabs
  // refreshing at once would present the same token twice, a reuse that ends the log-in.
  return navigator.locks ? navigator.locks.request('chat-web-session', exchange) : exchange();
}

let refreshing = null;

/** A new access token from the cookie's refresh token (one request at a time). */
function refreshTokens() {
  refreshing ??= (async () => {
    try {
      session.token = (await webSession('refresh/')).token;
    } catch (error) {
      signOut();
      throw error;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** A valid access token: refreshed first when it expires within 10 s. */
async function freshToken() {
  if (session.token && session.expiresAt() - Date.now() < 10_000) await refreshTokens();
  return session.token;
}

/** Runs an operation as the signed-in user; refreshes once on UNAUTHENTICATED. */
async function gql(query, variables = {}) {
  try {
    return await post(query, variables, await freshToken());
  } catch (error) {
    if (error.code !== 'UNAUTHENTICATED') throw error;
    await refreshTokens();
    return post(query, variables, session.token);
  }
}

// --- Live events: graphql-transport-ws over the browser's WebSocket -------------------

class LiveEvents {
  constructor(onEvent, onStatus) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.cursor = null; // the latest cursor: a reconnect resumes after it, without loss
    this.retry = 0;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close(1000, 'bye');
    this.socket = null;
  }

  async connect() {
    let token;
    try {
      token = await freshToken();
    } catch {
      return; // signed out
    }
    if (this.stopped) return;
    const socket = new WebSocket(WS_URL, 'graphql-transport-ws');
    this.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authToken: token } }));
    socket.onmessage = (frame) => this.receive(socket, JSON.parse(frame.data));
    socket.onclose = (event) => this.closed(socket, event);
  }

  receive(socket, message) {
    switch (message.type) {
      case 'connection_ack':
        this.retry = 0;
        this.onStatus(true);
        socket.send(JSON.stringify({
          id: 'events',
          type: 'subscribe',
          payload: { query: Q.events, variables: { after: this.cursor } },
        }));
        break;
      case 'next':
        if (message.payload.errors?.length) {
          console.warn('roomEvents error', message.payload.errors);
          return;
        }
        this.cursor = message.payload.data.roomEvents.cursor ?? this.cursor;
        this.onEvent(message.payload.data.roomEvents);
        break;
      case 'error':
        console.warn('subscription error', message.payload);
        break;
      case 'complete':
        socket.close(1000, 'subscription completed'); // reconnects and subscribes again
        break;
      case 'ping':
        socket.send(JSON.stringify({ type: 'pong' }));
        break;
      default:
        break;
    }
  }

  async closed(socket, event) {
    if (socket !== this.socket) return;
    this.onStatus(false);
    if (this.stopped) return;
    if (event.code === 4403 || event.code === 4401) {
      // Forbidden: the token expired or was revoked. Refresh, then reconnect.
      try {
        await refreshTokens();
      } catch {
        return;
      }
    }
    const delay = Math.min(5000, 300 * 2 ** this.retry++);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}

// --- Connection status: a dropped connection says so, in words ---------------------------

let wasLive = false;

function showConnection(up) {
  $('connection').classList.toggle('live', up);
  $('connection').title = up ? 'Live' : 'Not connected';
  const banner = $('connection-banner');
  if (up) {
    wasLive = true;
    banner.hidden = true;
    if ($('room-error').textContent.startsWith('Cannot reach the server')) $('room-error').textContent = '';
    return;
  }
  banner.textContent = wasLive
    ? 'Connection lost. Reconnecting… New messages will appear when it is back; nothing is lost.'
    : 'Connecting…';
  banner.hidden = false;
}

window.addEventListener('offline', () => showConnection(false));

// --- State ----------------------------------------------------------------------------

const state = {
  me: null,
  rooms: new Map(), // id -> room
  current: null, // id of the open room
  messages: new Map(), // id -> message, of the open room
  older: { cursor: null, more: true, loading: false },
  members: new Map(), // user id -> { user, role, online }
  typing: new Map(), // user id -> { name, timer }
  pendingFile: null,
};

let live = null;

// --- Auth screen ---------------------------------------------------------------------

let registering = false;

function showAuth() {
  $('app').hidden = true;
  $('auth').hidden = false;
}

function signOut() {
  live?.stop();
  inbox.stop();
  live = null;
  session.clear();
  state.me = null;
  state.current = null;
  showAuth();
}

$('auth-toggle').addEventListener('click', (event) => {
  event.preventDefault();
  registering = !registering;
  $('auth-form').classList.toggle('registering', registering);
  $('auth-submit').textContent = registering ? 'Create account' : 'Log in';
  $('auth-toggle').textContent = registering ? 'I have an account' : 'Create an account';
  $('auth-form').elements.username.previousSibling.textContent = registering ? 'Username ' : 'Username or email ';
});

$('auth-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target.elements;
  $('auth-error').textContent = '';
  try {
    let result;
    if (registering) {
      const input = {
        username: form.username.value.trim(),
        email: form.email.value.trim(),
        displayName: form.displayName.value.trim(),
        password: form.password.value,
      };
      result = (await post(Q.register, { input })).register;
    } else {
      result = (await post(Q.login, { username: form.username.value.trim(), password: form.password.value })).tokenAuth;
    }
    session.token = (await webSession('', { refreshToken: result.refreshToken })).token;
    form.password.value = '';
    await enterApp(result.user);
  } catch (error) {
    const fields = error.errors?.[0]?.extensions?.fields;
    $('auth-error').textContent = fields
      ? Object.entries(fields).map(([name, messages]) => `${name}: ${[].concat(messages).join(' ')}`).join(' · ')
      : error.message;
  }
});

$('logout').addEventListener('click', async () => {
  signOut();
  webSession('logout/').catch(() => {});
});

// --- Rooms ----------------------------------------------------------------------------

async function loadRooms() {
  const data = await gql(Q.rooms);
  state.rooms = new Map(data.rooms.edges.map(({ node }) => [node.id, node]));
  renderRooms();
}

function renderRooms() {
  const mine = [];
  const others = [];
  for (const room of state.rooms.values()) (room.myRole ? mine : others).push(room);
  // Group rooms by name, then direct chats.
  const byName = (a, b) => (a.kind === 'DIRECT') - (b.kind === 'DIRECT') || a.name.localeCompare(b.name);
  $('my-rooms').replaceChildren(...mine.sort(byName).map((room) => roomItem(room, true)));
  $('public-rooms').replaceChildren(...others.sort(byName).map((room) => roomItem(room, false)));
}

function roomItem(room, joined) {
  const label = `${room.kind === 'DIRECT' ? '@' : '#'} ${room.name}`;
  const item = el('li', { class: room.id === state.current ? 'active' : '', dataset: { roomId: room.id } },
    el('span', { class: 'room-name', text: label, title: room.topic || room.name }));
  if (joined) {
    if (room.unreadCount > 0 && room.id !== state.current) {
      item.append(el('span', { class: 'badge', text: String(room.unreadCount), title: 'unread messages' }));
    }
    if (room.unreadMentionCount > 0 && room.id !== state.current) {
      item.append(el('span', { class: 'badge mention-badge', text: '@', title: 'unread mentions' }));
    }
    item.addEventListener('click', () => openRoom(room.id));
  } else {
    item.append(el('button', { class: 'small', text: 'Join', onclick: () => joinRoom(room.id) }));
  }
  return item;
}

async function joinRoom(roomId) {
  try {
    const data = await gql(Q.joinRoom, { roomId });
    state.rooms.set(roomId, data.joinRoom);
    renderRooms();
    await openRoom(roomId);
  } catch (error) {
    $('room-error').textContent = error.message;
  }
}

$('new-room').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = event.target.elements.name;
  try {
    const room = (await gql(Q.createRoom, { input: { name: input.value.trim() } })).createRoom;
    input.value = '';
    state.rooms.set(room.id, room);
    renderRooms();
    await openRoom(room.id);
  } catch (error) {
    $('room-error').textContent = error.message;
  }
});

async function openRoom(roomId) {
  closeConversationPanels();
  state.current = roomId;
  state.messages = new Map();
  state.older = { cursor: null, more: true, loading: false };
  state.typing.forEach(({ timer }) => clearTimeout(timer));
  state.typing.clear();
  $('message-list').replaceChildren();
  $('room-error').textContent = '';
  $('composer').hidden = false;
  setPendingFile(null); // a draft belongs to its room
  renderTyping();
  const room = state.rooms.get(roomId);
  $('room-name').textContent = room ? `${room.kind === 'DIRECT' ? '@' : '#'} ${room.name}` : '';
  $('room-topic').textContent = room?.topic ?? '';
  renderRooms();
  loadRoomModeration(roomId);
  const [details] = await Promise.all([
    gql(Q.room, { id: roomId }),
    loadOlder(true),
  ]);
  if (state.current !== roomId) return;
  state.members = new Map(details.room.members.map((m) => [m.user.id, { user: m.user, role: m.role, online: m.user.isOnline }]));
  renderMembers();
  loadPinned(roomId);
  markReadSoon();
  $('text').focus();
}

function renderMembers() {
  const members = [...state.members.values()].sort((a, b) => (b.online - a.online) || nameOf(a.user).localeCompare(nameOf(b.user)));
  $('member-list').replaceChildren(...members.map(({ user, role, online }) => el('li', { dataset: { userId: user.id } },
    el('span', { class: `dot${online ? ' online' : ''}`, title: online ? 'online' : 'offline' }),
    el('span', { text: nameOf(user) }),
    el('span', { class: 'role', text: role === 'MEMBER' ? '' : role.toLowerCase() }))));
  addMemberMenus();
}

// --- History: newest first from the server, infinite scroll upwards -------------------

async function loadOlder(initial = false) {
  const roomId = state.current;
  if (state.older.loading || !state.older.more) return;
  state.older.loading = true;
  $('history-status').textContent = 'Loading…';
  try {
    const data = await gql(Q.messages, { roomId, first: PAGE_SIZE, after: state.older.cursor });
    if (state.current !== roomId) return;
    const page = data.messages;
    state.older.cursor = page.pageInfo.endCursor;
    state.older.more = page.pageInfo.hasNextPage;
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const { node } of page.edges) upsertMessage(node, false);
    // Keep the view where it was while older messages appear above it.
    if (initial) pinnedToBottom = true;
    box.scrollTop = initial ? box.scrollHeight : box.scrollHeight - fromBottom;
    $('history-status').textContent = state.older.more ? '' : 'This is the beginning of the room.';
  } catch (error) {
    $('history-status').textContent = error.message;
  } finally {
    state.older.loading = false;
  }
  // A first page that does not fill the screen cannot be scrolled: load on.
  const box = $('messages');
  if (state.current === roomId && state.older.more && box.scrollHeight <= box.clientHeight) loadOlder();
}

// Whether the view follows the newest message (until the user scrolls up).
let pinnedToBottom = true;

$('messages').addEventListener('scroll', () => {
  const box = $('messages');
  pinnedToBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  if (box.scrollTop < 80) loadOlder();
});

function followNewest() {
  if (pinnedToBottom) $('messages').scrollTop = $('messages').scrollHeight;
}

const order = (m) => `${m.createdAt}|${String(Number(atobId(m.id))).padStart(20, '0')}`;

function atobId(id) {
  try {
    return atob(id).split(':').pop();
  } catch {
    return id;
  }
}

/** Adds or replaces a message of the open room, in time order. */
function upsertMessage(message, stickToBottom = true) {
  conversationUpdated(message);
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  state.messages.set(message.id, message);
  const node = renderMessage(message);
  const existing = $('message-list').querySelector(`[data-message-id="${CSS.escape(message.id)}"]`);
  if (existing) {
    existing.replaceWith(node);
    return;
  }
  const key = order(message);
  const next = [...$('message-list').children].find((li) => li.dataset.order > key);
  $('message-list').insertBefore(node, next ?? null);
  if (stickToBottom && (atBottom || message.sender?.id === state.me.id)) box.scrollTop = box.scrollHeight;
}

function renderMessage(message) {
  const mine = message.sender?.id === state.me.id;
  const item = el('li', {
    class: `message${message.isDeleted ? ' deleted' : ''}${mine ? ' mine' : ''}`,
    dataset: { messageId: message.id, order: order(message) },
  });
  const time = new Date(message.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const meta = el('div', { class: 'meta' },
    el('span', { class: 'sender', text: nameOf(message.sender) }),
    el('span', { class: 'time', text: time, title: message.createdAt }),
    message.editedAt && !message.isDeleted ? editedMarker(message) : null);
  if (mine && !message.isDeleted) {
    meta.append(el('span', { class: 'actions' },
      el('button', { text: 'Edit', title: 'Edit', onclick: () => startEdit(message.id) }),
      el('button', { text: 'Delete', title: 'Delete', onclick: () => deleteMessage(message.id) })));
  }
  const body = el('div', { class: 'body' }, meta,
    message.isDeleted
      ? el('div', { class: 'text', text: 'This message was deleted.' })
      : el('div', { class: 'text' }, ...inbox.messageText(message.text, state.me)));
  const files = message.isDeleted ? [] : message.attachments ?? [];
  if (files.length) {
    body.append(el('div', { class: 'attachments' }, ...files.map((file) => {
      const link = el('a', { href: file.downloadUrl ?? '#', target: '_blank', rel: 'noopener', title: file.name });
      if (file.thumbnailUrl) link.append(el('img', { src: file.thumbnailUrl, alt: file.name, onload: followNewest }));
      else link.textContent = `📄 ${file.name}`;
      return link;
    })));
  }
  if (!message.isDeleted) meta.append(conversationActions(message));
  body.append(conversationBar(message));
  const avatar = inbox.avatarFor(message.sender)
    ?? el('span', { class: 'avatar', text: nameOf(message.sender).slice(0, 1).toUpperCase() });
  avatar.style.background = `hsl(${hue(message.sender?.username ?? '')} 55% 48%)`;
  item.append(avatar, body);
  decorateMessage(message, item, meta);
  return item;
}

/** A stable colour per user. */
function hue(text) {
  let h = 0;
  for (const char of text) h = (h * 31 + char.codePointAt(0)) % 360;
  return h;
}

function startEdit(messageId) {
  const message = state.messages.get(messageId);
  const item = $('message-list').querySelector(`[data-message-id="${CSS.escape(messageId)}"]`);
  const input = el('input', { value: message.text, 'aria-label': 'Edit message' });
  const form = el('form', { class: 'edit-form' }, input);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      upsertMessage((await gql(Q.edit, { id: messageId, text: input.value })).editMessage);
    } catch (error) {
      $('room-error').textContent = error.message;
    }
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') upsertMessage(message);
  });
  item.querySelector('.text').replaceWith(form);
  input.focus();
}

async function deleteMessage(messageId) {
  if (!window.confirm('Delete this message?')) return;
  try {
    upsertMessage((await gql(Q.remove, { id: messageId })).deleteMessage);
  } catch (error) {
    $('room-error').textContent = error.message;
  }
}

// --- Composer: text, image attachments (REST shim), typing --------------------------

let typingSentAt = 0;
let typingIdle = null;

function setTyping(typing) {
  const roomId = state.current;
  if (!roomId) return;
  typingSentAt = typing ? Date.now() : 0;
  gql(Q.typing, { roomId, typing }).catch(() => {});
}

$('text').addEventListener('input', () => {
  if (!$('text').value) return;
  if (Date.now() - typingSentAt > TYPING_REFRESH_MS) setTyping(true);
  clearTimeout(typingIdle);
  typingIdle = setTimeout(() => setTyping(false), TYPING_IDLE_MS);
});

// --- Drafts and sending ------------------------------------------------------------------
//
// A draft is what the composer holds: text, at most one file, and the clientId
// chosen when it is first sent. Sending the same draft again (a double Enter, a
// retry after a lost answer) reuses that clientId, so the server's idempotency
// makes it one message; editing the text or the file starts a new draft. A file
// the server refuses leaves the draft with the reason shown, so it never blocks
// what is sent next; the × next to a pending file removes it.

const draft = { clientId: null, sending: false };

function setPendingFile(file) {
  state.pendingFile = file;
  draft.clientId = null;
  $('file').value = '';
  $('pending-file').textContent = file ? file.name : '';
  $('remove-file').hidden = !file;
}

$('file').addEventListener('change', () => setPendingFile($('file').files[0] ?? null));
$('remove-file').addEventListener('click', () => setPendingFile(null));
$('text').addEventListener('input', () => { draft.clientId = null; });

/** What to tell the user when a request failed: never a raw "Failed to fetch". */
function sendFailure(error) {
  if (error instanceof TypeError) return 'Cannot reach the server: your message was not sent. Check your connection and press Enter to retry.';
  return error.message;
}

$('composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (draft.sending) return; // this draft is on its way already
  const text = $('text').value.trim();
  const file = state.pendingFile;
  if (!text && !file) return;
  draft.clientId ??= crypto.randomUUID();
  draft.sending = true;
  $('room-error').textContent = '';
  clearTimeout(typingIdle);
  if (typingSentAt) setTyping(false);
  try {
    const message = file ? await sendWithFile(text, file, draft.clientId) : (await gql(Q.send, {
      input: { roomId: state.current, text, clientId: draft.clientId },
    })).sendMessage;
    $('text').value = '';
    setPendingFile(null);
    if (message?.id && message.room?.id === state.current) upsertMessage(message);
  } catch (error) {
    if (error.fileRefused) {
      setPendingFile(null); // the text stays; the refused file goes
      $('room-error').textContent = `${file.name} was not sent: ${error.message}`;
    } else {
      $('room-error').textContent = sendFailure(error);
    }
  } finally {
    draft.sending = false;
  }
});

/** Sends a message with a file through the REST shim; the live event renders it. */
async function sendWithFile(text, file, clientId) {
  const form = new FormData();
  form.append('text', text);
  form.append('clientId', clientId);
  form.append('file', file);
  const response = await fetch(`/api/rooms/${encodeURIComponent(state.current)}/messages/`, {
    method: 'POST',
    headers: { Authorization: `JWT ${await freshToken()}` },
    body: form,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error?.message ?? `Upload failed (${response.status})`);
    // The file itself was refused (too big, a type not allowed, not a readable image).
    error.fileRefused = [400, 413, 415].includes(response.status) && body.error?.code !== 'RATE_LIMITED';
    throw error;
  }
  return null;
}

// --- Read positions -------------------------------------------------------------------

let readTimer = null;

function markReadSoon() {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    const roomId = state.current;
    const newest = [...state.messages.values()].sort((a, b) => (order(a) < order(b) ? -1 : 1)).pop();
    if (!roomId || !newest || document.hidden) return;
    try {
      const { markRead } = await gql(Q.markRead, { roomId, messageId: newest.id });
      const room = state.rooms.get(roomId);
      if (room) Object.assign(room, { unreadCount: markRead.unreadCount, unreadMentionCount: markRead.unreadMentionCount });
      renderRooms();
      inbox.roomRead();
    } catch {
      // a deleted room or message: nothing to mark
    }
  }, 300);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) markReadSoon();
});

// --- Typing and presence --------------------------------------------------------------

function renderTyping() {
  const names = [...state.typing.values()].map((t) => t.name);
  $('typing').textContent = names.length === 0 ? ''
    : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
}

function typingChanged(user, typing) {
  const previous = state.typing.get(user.id);
  if (previous) clearTimeout(previous.timer);
  state.typing.delete(user.id);
  if (typing) {
    const timer = setTimeout(() => {
      state.typing.delete(user.id);
      renderTyping();
    }, TYPING_SHOWN_MS);
    state.typing.set(user.id, { name: nameOf(user), timer });
  }
  renderTyping();
}

// --- Events from the subscription ------------------------------------------------------

function onEvent(event) {
  moderationEvent(event);
  const roomId = event.room.id;
  const inView = roomId === state.current;
  const room = state.rooms.get(roomId);
  switch (event.__typename) {
    case 'MessageAdded':
      if (inView) {
        upsertMessage(event.message);
        typingChanged(event.message.sender ?? { id: '' }, false);
        markReadSoon();
      } else if (room && event.message.sender?.id !== state.me.id) {
        room.unreadCount += 1;
        renderRooms();
      }
      break;
    case 'MessageEdited':
    case 'MessageDeleted':
      if (inView) upsertMessage(event.message, false);
      break;
    case 'ReactionAdded':
    case 'ReactionRemoved':
    case 'MessagePinned':
    case 'MessageUnpinned':
      if (inView) conversationEvent(event);
      break;
    case 'TypingChanged':
      if (inView && event.user.id !== state.me.id) typingChanged(event.user, event.typing);
      break;
    case 'PresenceChanged':
      for (const member of state.members.values()) {
        if (member.user.id === event.user.id) member.online = event.online;
      }
      if (inView) renderMembers();
      break;
    case 'MemberJoined':
      if (event.user.id === state.me.id) loadRooms();
      if (inView) {
        state.members.set(event.user.id, { user: event.user, role: 'MEMBER', online: true });
        renderMembers();
      }
      if (room) room.memberCount += 1;
      break;
    case 'MemberLeft':
      if (event.user.id === state.me.id) {
        loadRooms();
        if (inView) state.current = null;
      } else if (inView) {
        state.members.delete(event.user.id);
        renderMembers();
      }
      break;
    case 'RoomUpdated':
      if (room) Object.assign(room, { name: event.room.name, topic: event.room.topic });
      if (inView) $('room-topic').textContent = event.room.topic;
      renderRooms();
      break;
    case 'RoomDeleted':
      state.rooms.delete(roomId);
      if (inView) {
        state.current = null;
        $('message-list').replaceChildren();
        $('composer').hidden = true;
        $('room-name').textContent = 'This room was deleted';
      }
      renderRooms();
      break;
    default:
      break;
  }
}

// --- Conversations: reactions, threads, pins, edit history -----------------------------

const PICKER_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀', '🚀', '✅'];

const conversation = {
  thread: null, // id of the root whose thread panel is open
  replies: new Map(), // id -> reply, of the open thread
  pinned: [], // the open room's pinned messages, newest pin first
};

function showError(error) {
  $('room-error').textContent = error.message;
}

/** May the signed-in user pin in the open room: owners and admins, anyone in a direct chat. */
function canPin() {
  const room = state.rooms.get(state.current);
  return room?.kind === 'DIRECT' || room?.myRole === 'OWNER' || room?.myRole === 'ADMIN';
}

/** "(edited)", with the earlier versions of the text shown on hover. */
function editedMarker(message) {
  const marker = el('span', { class: 'edited', tabindex: '0', text: '(edited)' });
  const edits = message.edits ?? [];
  if (edits.length) {
    marker.append(el('div', { class: 'edit-history', role: 'tooltip' },
      el('div', { class: 'edit-history-title', text: 'Earlier versions' }),
      ...edits.map((edit) => el('div', { class: 'edit-version' },
        el('span', { class: 'time', text: new Date(edit.editedAt).toLocaleString() }),
        el('span', { text: edit.text })))));
  }
  return marker;
}

/** The hover actions everyone gets: react, reply in thread, pin. */
function conversationActions(message) {
  const actions = el('span', { class: 'conversation-actions' },
    el('button', { text: '☺+', title: 'Add reaction', class: 'react-button', onclick: (e) => openPicker(e, message.id) }));
  if (!message.replyTo) {
    actions.append(el('button', { text: 'Reply', title: 'Reply in thread', onclick: () => openThread(message.id) }));
  }
  if (canPin()) {
    const pinned = Boolean(message.pinnedAt);
    actions.append(el('button', {
      text: pinned ? 'Unpin' : 'Pin',
      title: pinned ? 'Unpin' : 'Pin to the room',
      onclick: () => togglePin(message),
    }));
  }
  return actions;
}

/** Below the text: the reaction bar, the thread summary, the pin marker. */
function conversationBar(message) {
  const bar = el('div', { class: 'conversation-bar' });
  if (message.isDeleted) return bar;
  const reactions = message.reactions ?? [];
  if (reactions.length) {
    bar.append(el('span', { class: 'reaction-bar' }, ...reactions.map((group) => el('button', {
      class: `reaction${group.reactedByMe ? ' mine' : ''}`,
      title: group.users.map(nameOf).join(', ') + (group.count > group.users.length ? '…' : ''),
      'aria-pressed': String(group.reactedByMe),
      dataset: { emoji: group.emoji },
      onclick: () => toggleReaction(message.id, group.emoji, group.reactedByMe),
    }, el('span', { text: group.emoji }), el('span', { class: 'count', text: String(group.count) })))));
  }
  if (message.replyCount > 0) {
    bar.append(el('button', {
      class: 'thread-link link',
      text: `${message.replyCount} ${message.replyCount === 1 ? 'reply' : 'replies'}`,
      title: `Last reply ${new Date(message.lastReplyAt).toLocaleString()}`,
      onclick: () => openThread(message.id),
    }));
  }
  if (message.replyTo) {
    bar.append(el('button', { class: 'in-thread link', text: '↪ in a thread', onclick: () => openThread(message.replyTo.id) }));
  }
  if (message.pinnedAt) {
    bar.append(el('span', { class: 'pin-marker', text: `📌 pinned by ${nameOf(message.pinnedBy)}` }));
  }
  return bar;
}

function openPicker(event, messageId) {
  event.stopPropagation();
  closePicker();
  const picker = el('div', { id: 'emoji-picker', class: 'emoji-picker', role: 'menu' },
    ...PICKER_EMOJI.map((emoji) => el('button', {
      text: emoji,
      title: emoji,
      role: 'menuitem',
      onclick: () => {
        closePicker();
        toggleReaction(messageId, emoji, false);
      },
    })));
  const rect = event.currentTarget.getBoundingClientRect();
  picker.style.top = `${rect.bottom + 4}px`;
  picker.style.left = `${Math.max(8, rect.right - 300)}px`;
  document.body.append(picker);
}

function closePicker() {
  document.getElementById('emoji-picker')?.remove();
}

document.addEventListener('click', (event) => {
  if (!event.target.closest?.('#emoji-picker')) closePicker();
});

async function toggleReaction(messageId, emoji, mine) {
  try {
    const data = await gql(mine ? Q.removeReaction : Q.addReaction, { messageId, emoji });
    upsertMessage(mine ? data.removeReaction : data.addReaction, false);
  } catch (error) {
    showError(error);
  }
}

async function togglePin(message) {
  try {
    const data = await gql(message.pinnedAt ? Q.unpin : Q.pin, { id: message.id });
    upsertMessage(message.pinnedAt ? data.unpinMessage : data.pinMessage, false);
  } catch (error) {
    showError(error);
  }
}

/** A reaction or pin event of the open room: the message carries its new state. */
function conversationEvent(event) {
  upsertMessage(event.message, false);
}

/** Keeps the thread panel and the pinned list in step with a message's new state. */
function conversationUpdated(message) {
  if (message.room?.id && message.room.id !== state.current) return;
  if (conversation.thread && (message.id === conversation.thread || message.replyTo?.id === conversation.thread)) {
    if (message.id === conversation.thread) renderThreadRoot(message);
    else {
      conversation.replies.set(message.id, message);
      renderReplies();
    }
  }
  const wasPinned = conversation.pinned.some((m) => m.id === message.id);
  if (message.pinnedAt || wasPinned) {
    const others = conversation.pinned.filter((m) => m.id !== message.id);
    conversation.pinned = message.pinnedAt && !message.isDeleted
      ? [...others, message].sort((a, b) => (a.pinnedAt < b.pinnedAt ? 1 : -1))
      : others;
    renderPinned();
  }
  // A reply's MessageAdded carries its root's current reply count.
  const root = message.replyTo && state.messages.get(message.replyTo.id);
  if (root && message.replyTo.replyCount !== undefined && root.replyCount !== message.replyTo.replyCount) {
    upsertMessage({ ...root, replyCount: message.replyTo.replyCount, lastReplyAt: message.replyTo.lastReplyAt }, false);
  }
}

// Thread panel: the root, its replies oldest first, and a composer that replies with threadId.

async function openThread(rootId) {
  $('pins-panel').hidden = true;
  conversation.thread = rootId;
  conversation.replies = new Map();
  $('thread-replies').replaceChildren();
  $('thread-root').replaceChildren();
  $('thread-panel').hidden = false;
  try {
    let after = null;
    let root = null;
    do {
      const { node } = await gql(Q.thread, { id: rootId, after });
      if (conversation.thread !== rootId || !node) return;
      root = node;
      for (const { node: reply } of node.replies.edges) conversation.replies.set(reply.id, reply);
      after = node.replies.pageInfo.hasNextPage ? node.replies.pageInfo.endCursor : null;
    } while (after);
    renderThreadRoot(root);
    renderReplies();
    $('thread-text').focus();
  } catch (error) {
    showError(error);
  }
}

function renderThreadRoot(root) {
  $('thread-root').replaceChildren(renderMessage(root));
}

function renderReplies() {
  const replies = [...conversation.replies.values()].sort((a, b) => (order(a) < order(b) ? -1 : 1));
  $('thread-replies').replaceChildren(...replies.map(renderMessage));
}

function closeConversationPanels() {
  conversation.thread = null;
  conversation.pinned = [];
  $('thread-panel').hidden = true;
  $('pins-panel').hidden = true;
  $('pins-toggle').hidden = true;
}

$('thread-close').addEventListener('click', () => {
  conversation.thread = null;
  $('thread-panel').hidden = true;
});

$('thread-composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('thread-text').value.trim();
  if (!text || !conversation.thread) return;
  try {
    const { sendMessage } = await gql(Q.send, {
      input: { roomId: state.current, text, threadId: conversation.thread, clientId: crypto.randomUUID() },
    });
    $('thread-text').value = '';
    upsertMessage(sendMessage);
  } catch (error) {
    showError(error);
  }
});

// Pinned list: newest pin first, opened from the room header.

async function loadPinned(roomId) {
  try {
    const { room } = await gql(Q.pinned, { id: roomId });
    if (state.current !== roomId) return;
    conversation.pinned = room.pinnedMessages.edges.map(({ node }) => node);
    renderPinned();
  } catch (error) {
    showError(error);
  }
}

function renderPinned() {
  $('pins-toggle').hidden = false;
  $('pins-toggle').textContent = `📌 ${conversation.pinned.length}`;
  $('pins-list').replaceChildren(...conversation.pinned.map((message) => el('li', { class: 'pinned-item', dataset: { messageId: message.id } },
    el('div', { class: 'meta' },
      el('span', { class: 'sender', text: nameOf(message.sender) }),
      el('span', { class: 'time', text: `pinned by ${nameOf(message.pinnedBy)}` })),
    el('div', { class: 'text', text: message.text }))));
  $('pins-empty').hidden = conversation.pinned.length > 0;
}

$('pins-toggle').addEventListener('click', () => {
  conversation.thread = null;
  $('thread-panel').hidden = true;
  $('pins-panel').hidden = !$('pins-panel').hidden;
});

$('pins-close').addEventListener('click', () => {
  $('pins-panel').hidden = true;
});
// --- Moderation: member, message, room and user menus (rules: docs/moderation.md) -------

const MOD = {
  me: 'query ModerationMe { me { id isStaff blockedUsers { id } } }',
  room: `query ModerationRoom($id: ID!) { room(id: $id) { id kind myRole slowModeSeconds
    members(first: 100) { user { id } isMuted mutedUntil } } }`,
  mute: `mutation Mute($roomId: ID!, $userId: ID!) { muteMember(roomId: $roomId, userId: $userId) { id } }`,
  unmute: `mutation Unmute($roomId: ID!, $userId: ID!) { unmuteMember(roomId: $roomId, userId: $userId) { id } }`,
  ban: `mutation Ban($roomId: ID!, $userId: ID!) { banMember(roomId: $roomId, userId: $userId) { id } }`,
  remove: `mutation Remove($roomId: ID!, $userId: ID!) { removeMember(roomId: $roomId, userId: $userId) { id } }`,
  block: 'mutation Block($userId: ID!) { blockUser(userId: $userId) { id } }',
  unblock: 'mutation Unblock($userId: ID!) { unblockUser(userId: $userId) { id } }',
  report: `mutation Report($id: ID!, $reason: ReportReason!, $comment: String) {
    reportMessage(id: $id, reason: $reason, comment: $comment) }`,
  invite: `mutation Invite($roomId: ID!, $expiresIn: Int) {
    createInvite(roomId: $roomId, expiresIn: $expiresIn) { code url expiresAt } }`,
  slowMode: `mutation SlowMode($roomId: ID!, $seconds: Int!) {
    updateRoom(input: { roomId: $roomId, slowModeSeconds: $seconds }) { id slowModeSeconds } }`,
  joinByInvite: 'mutation JoinByInvite($code: String!) { joinByInvite(code: $code) { id } }',
};
const REPORT_REASONS = ['SPAM', 'ABUSE', 'HARASSMENT', 'OTHER'];
const SLOW_MODE_CHOICES = [0, 10, 30, 60, 300, 900, 3600];
const INVITE_LIFETIME = 7 * 24 * 3600;

const moderation = {
  staff: false,
  blocked: new Set(), // ids of the users I blocked
  role: null, // my role in the open room
  kind: null,
  slowMode: 0,
  muted: new Map(), // user id -> mute end (null: no end), in the open room
};

async function initModeration() {
  const { me } = await gql(MOD.me);
  moderation.staff = me.isStaff;
  moderation.blocked = new Set(me.blockedUsers.map((u) => u.id));
}

const canModerate = () => moderation.kind === 'GROUP' && (moderation.staff || ['OWNER', 'ADMIN'].includes(moderation.role));

async function loadRoomModeration(roomId) {
  Object.assign(moderation, { role: null, kind: null, slowMode: 0, muted: new Map() });
  renderRoomModeration();
  try {
    const { room } = await gql(MOD.room, { id: roomId });
    if (state.current !== roomId) return;
    Object.assign(moderation, { role: room.myRole, kind: room.kind, slowMode: room.slowModeSeconds });
    moderation.muted = new Map(room.members.filter((m) => m.isMuted).map((m) => [m.user.id, m.mutedUntil]));
  } catch (error) {
    $('room-error').textContent = error.message;
  }
  renderRoomModeration();
  renderMembers();
  renderMuted();
}

/** The room menu (moderators): an invite link and slow mode. */
function renderRoomModeration() {
  const box = $('room-moderation');
  if (!canModerate()) {
    box.replaceChildren();
    return;
  }
  const slow = el('select', { id: 'slow-mode', title: 'Slow mode: one message per member per interval', onchange: async () => {
    try {
      await gql(MOD.slowMode, { roomId: state.current, seconds: Number(slow.value) });
      moderation.slowMode = Number(slow.value);
      slow.dataset.applied = slow.value;
    } catch (error) {
      $('room-error').textContent = error.message;
      slow.value = String(moderation.slowMode);
    }
  } }, ...SLOW_MODE_CHOICES.map((s) => el('option', { value: String(s), text: s ? `Slow mode: ${s < 60 ? `${s} s` : `${s / 60} min`}` : 'Slow mode: off' })));
  slow.value = String(moderation.slowMode);
  const link = el('input', { id: 'invite-url', readonly: '', hidden: '', 'aria-label': 'Invite link' });
  const make = el('button', { class: 'small', text: 'Invite link', onclick: async () => {
    try {
      const { createInvite } = await gql(MOD.invite, { roomId: state.current, expiresIn: INVITE_LIFETIME });
      link.value = createInvite.url;
      link.hidden = false;
      link.select();
      navigator.clipboard?.writeText(createInvite.url).catch(() => {});
    } catch (error) {
      $('room-error').textContent = error.message;
    }
  } });
  box.replaceChildren(make, link, slow);
}

/** Each member's menu: mute, ban, remove (moderators), block (anyone). */
function addMemberMenus() {
  for (const item of $('member-list').children) {
    const userId = item.dataset.userId;
    if (moderation.muted.has(userId)) item.append(el('span', { class: 'role', text: 'muted' }));
    if (!userId || userId === state.me.id) continue;
    item.append(el('button', {
      class: 'link small member-menu-toggle', text: '⋯', title: 'Actions', 'aria-label': 'Member actions',
      onclick: () => toggleMemberMenu(item, userId),
    }));
  }
}

function toggleMemberMenu(item, userId) {
  const open = item.querySelector('.member-menu');
  if (open) return open.remove();
  const action = (text, run) => el('button', { class: 'small', text, onclick: run });
  const menu = el('div', { class: 'member-menu', role: 'menu' });
  if (canModerate()) {
    menu.append(
      moderation.muted.has(userId) ? action('Unmute', () => moderate(MOD.unmute, userId)) : action('Mute', () => moderate(MOD.mute, userId)),
      action('Ban', () => moderate(MOD.ban, userId)),
      action('Remove', () => moderate(MOD.remove, userId)));
  }
  const blocked = moderation.blocked.has(userId);
  menu.append(action(blocked ? 'Unblock' : 'Block', () => setBlocked(userId, !blocked)));
  item.append(menu);
}

async function moderate(query, userId) {
  $('room-error').textContent = '';
  try {
    await gql(query, { roomId: state.current, userId });
  } catch (error) {
    $('room-error').textContent = error.message;
  }
  // Bans and removals arrive as MemberLeft, mutes as MemberMuted: the events update the list.
}

async function setBlocked(userId, blocked) {
  try {
    await gql(blocked ? MOD.block : MOD.unblock, { userId });
  } catch (error) {
    $('room-error').textContent = error.message;
    return;
  }
  if (blocked) moderation.blocked.add(userId);
  else moderation.blocked.delete(userId);
  for (const message of state.messages.values()) {
    if (message.sender?.id === userId) upsertMessage({ ...message, senderBlocked: blocked }, false);
  }
  renderMembers();
}

/** A message's menu (report) and the fold over messages of blocked users. */
function decorateMessage(message, item, meta) {
  if (message.isDeleted) return;
  if (message.senderBlocked) {
    const text = item.querySelector('.text');
    const original = text.textContent;
    item.classList.add('blocked');
    text.textContent = 'Message from a user you blocked. ';
    text.append(el('button', { class: 'link small', text: 'Show', onclick: () => { text.textContent = original; } }));
  }
  if (message.sender?.id !== state.me.id) {
    meta.append(el('span', { class: 'actions' },
      el('button', { text: 'Report', title: 'Report this message', onclick: () => startReport(message.id, item) })));
  }
}

function startReport(messageId, item) {
  if (item.querySelector('.report-form')) return;
  const reason = el('select', { name: 'reason', 'aria-label': 'Reason' },
    ...REPORT_REASONS.map((r) => el('option', { value: r, text: r.charAt(0) + r.slice(1).toLowerCase() })));
  const comment = el('input', { name: 'comment', placeholder: 'Comment (optional)', maxlength: '1000' });
  const form = el('form', { class: 'report-form' }, reason, comment, el('button', { type: 'submit', class: 'small', text: 'Send report' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await gql(MOD.report, { id: messageId, reason: reason.value, comment: comment.value || null });
      form.replaceWith(el('p', { class: 'muted small report-sent', text: 'Reported to the room’s moderators.' }));
    } catch (error) {
      form.replaceWith(el('p', { class: 'error small', text: error.message }));
    }
  });
  item.querySelector('.body').append(form);
}

/** The composer of a muted member: reading only. */
function renderMuted() {
  const muted = moderation.muted.has(state.me.id);
  const until = moderation.muted.get(state.me.id);
  $('text').disabled = muted;
  $('composer').querySelector('button[type="submit"]').disabled = muted;
  $('text').placeholder = !muted ? 'Write a message'
    : until ? `You are muted until ${new Date(until).toLocaleString()}` : 'You are muted in this room';
}

function moderationEvent(event) {
  if (event.room.id !== state.current) return;
  if (event.__typename === 'MemberMuted') moderation.muted.set(event.user.id, event.until);
  else if (event.__typename === 'MemberUnmuted') moderation.muted.delete(event.user.id);
  else if (event.__typename === 'MemberLeft' && event.reason === 'BANNED' && event.user.id === state.me.id) {
    $('room-name').textContent = 'You were banned from this room';
    $('composer').hidden = true;
    $('message-list').replaceChildren();
    return;
  } else return;
  renderMembers();
  renderMuted();
}

/** An invite link (`/#invite=<code>`): join its room once signed in. */
async function acceptInviteLink() {
  const match = location.hash.match(/^#invite=([\w-]+)$/);
  if (!match) return null;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    const { joinByInvite } = await gql(MOD.joinByInvite, { code: match[1] });
    await loadRooms();
    return joinByInvite.id;
  } catch (error) {
    $('room-error').textContent = `Invite link: ${error.message}`;
    return null;
  }
}

// --- Start ----------------------------------------------------------------------------

async function enterApp(user) {
  state.me = user;
  $('me-name').textContent = nameOf(user);
  $('auth').hidden = true;
  $('app').hidden = false;
  live = new LiveEvents(onEvent, showConnection);
  live.start();
  inbox.install({ $, el, gql, freshToken, nameOf, openRoom, state });
  inbox.renderMyAvatar();
  inbox.start().catch((error) => console.warn('inbox', error));
  await Promise.all([loadRooms(), initModeration()]);
  const invited = await acceptInviteLink();
  if (invited) return openRoom(invited);
  const first = [...state.rooms.values()].filter((r) => r.myRole && r.kind === 'GROUP')
    .sort((a, b) => a.name.localeCompare(b.name))[0];
  // Not if the user opened a room meanwhile (the room list is clickable from loadRooms on).
  if (first && !state.current) await openRoom(first.id);
}

async function main() {
  try {
    await refreshTokens(); // signed in on an earlier visit: the cookie says so
  } catch {
    return; // signed out: the log-in form shows
  }
  try {
    const { me } = await gql(Q.me);
    if (!me) return signOut();
    await enterApp(me);
  } catch {
    signOut();
  }
}

main();

// The web chat's notification bell and inbox, search across rooms, mention
// highlighting and avatars. app.js hands in what it owns (`install(ctx)`) and
// calls `messageText` and `avatarFor` while rendering messages. Like app.js,
// everything is written with textContent: search snippets arrive HTML-escaped
// with <mark> around the hits, and are taken apart here, never set as HTML.

const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/`;
const MENTION = /(^|[^\w@])@([\w.+-]+)/g;

const NOTIFICATION_FIELDS = `id kind createdAt readAt
  by { id username displayName avatarUrl(size: 64) }
  room { id name kind }
  message { id text }`;

const Q = {
  inbox: `query Inbox { me { unreadNotificationCount }
    notifications(first: 30) { edges { node { ${NOTIFICATION_FIELDS} } } } }`,
  markRead: 'mutation MarkNotificationsRead($ids: [ID!], $all: Boolean) { markNotificationsRead(ids: $ids, all: $all) }',
  live: `subscription Notifications { notifications { ${NOTIFICATION_FIELDS} } }`,
  search: `query Search($query: String!, $orderBy: MessageSearchOrder) {
    searchMessages(query: $query, first: 30, orderBy: $orderBy) {
      totalCount edges { snippet node { id createdAt sender { id username displayName } room { id name kind } } } } }`,
  setAvatar: 'mutation Avatar($input: UpdateProfileInput!) { updateProfile(input: $input) { id avatarUrl(size: 64) } }',
};

let ctx = null;
const inbox = { unread: 0, items: new Map(), socket: null, stopped: true, retry: 0 };

/** Wires the bell, the search box and the profile picture button; `ctx` is app.js's toolbox. */
export function install(toolbox) {
  ctx = toolbox;
  const { $ } = ctx;
  $('bell').onclick = () => toggle('inbox');
  $('inbox-read-all').onclick = () => markRead({ all: true });
  $('search-form').onsubmit = (event) => {
    event.preventDefault();
    search($('search-input').value, $('search-order').value);
  };
  $('search-close').onclick = () => { $('search-results').hidden = true; };
  $('avatar-file').onchange = () => uploadAvatar($('avatar-file').files[0]);
}

/** Loads the inbox and listens for new notifications (after signing in). */
export async function start() {
  await loadInbox();
  inbox.stopped = false;
  connect();
}

export function stop() {
  inbox.stopped = true;
  inbox.socket?.close(1000, 'bye');
  inbox.socket = null;
}

/** A message's text as nodes, with @mentions highlighted (mine, @room and @here as `mention-me`). */
export function messageText(text, me) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(MENTION)) {
    const start = match.index + match[1].length;
    const name = match[2].replace(/[.+-]+$/, '');
    if (!name) continue;
    parts.push(text.slice(last, start));
    const mine = [me?.username?.toLowerCase(), 'room', 'here'].includes(name.toLowerCase());
    parts.push(ctx.el('span', { class: `mention${mine ? ' mention-me' : ''}`, text: `@${name}` }));
    last = start + 1 + name.length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== '');
}

/** The picture of a user (an <img> when they have one), or null to keep app.js's initial. */
export function avatarFor(user) {
  if (!user?.avatarUrl) return null;
  return ctx.el('img', { class: 'avatar', src: user.avatarUrl, alt: '' });
}

// --- Inbox ----------------------------------------------------------------------------

async function loadInbox() {
  const data = await ctx.gql(Q.inbox);
  inbox.unread = data.me.unreadNotificationCount;
  inbox.items = new Map(data.notifications.edges.map(({ node }) => [node.id, node]));
  renderInbox();
}

function renderInbox() {
  const { $, el } = ctx;
  $('bell-count').textContent = inbox.unread > 0 ? String(inbox.unread) : '';
  $('bell-count').hidden = inbox.unread === 0;
  const items = [...inbox.items.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  $('inbox-list').replaceChildren(...items.map((n) => el('li', {
    class: `notification${n.readAt ? '' : ' unread'}`,
    dataset: { notificationId: n.id },
    onclick: () => openNotification(n),
  },
  el('span', { class: 'what', text: describe(n) }),
  n.message?.text ? el('span', { class: 'quote', text: n.message.text }) : null,
  el('span', { class: 'time muted', text: new Date(n.createdAt).toLocaleString() }))));
  $('inbox-empty').hidden = items.length > 0;
}

function describe(notification) {
  const who = ctx.nameOf(notification.by);
  const where = `${notification.room.kind === 'DIRECT' ? '@' : '#'} ${notification.room.name}`;
  switch (notification.kind) {
    case 'MENTIONED': return `${who} mentioned you in ${where}`;
    case 'NEW_MESSAGE': return `${who} wrote in ${where}`;
    case 'ADDED_TO_ROOM': return `${who} added you to ${where}`;
    case 'DIRECT_CHAT_STARTED': return `${who} started a direct chat`;
    default: return `${who} in ${where}`;
  }
}

async function openNotification(notification) {
  ctx.$('inbox').hidden = true;
  if (!notification.readAt) await markRead({ ids: [notification.id] });
  await ctx.openRoom(notification.room.id);
}

async function markRead(variables) {
  try {
    await ctx.gql(Q.markRead, variables);
    await loadInbox();
  } catch (error) {
    console.warn('markNotificationsRead failed', error);
  }
}

/** Reading a room reads its mentions on the server too: refresh the bell. */
export function roomRead() {
  if (!inbox.stopped) loadInbox().catch(() => {});
}

function toggle(id) {
  const panel = ctx.$(id);
  panel.hidden = !panel.hidden;
}

// The live `notifications` subscription, on a socket of its own.
async function connect() {
  let token;
  try {
    token = await ctx.freshToken();
  } catch {
    return;
  }
  if (inbox.stopped || !token) return;
  const socket = new WebSocket(WS_URL, 'graphql-transport-ws');
  inbox.socket = socket;
  socket.onopen = () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authToken: token } }));
  socket.onmessage = (frame) => {
    const message = JSON.parse(frame.data);
    if (message.type === 'connection_ack') {
      inbox.retry = 0;
      socket.send(JSON.stringify({ id: 'notifications', type: 'subscribe', payload: { query: Q.live } }));
    } else if (message.type === 'next' && message.payload.data?.notifications) {
      const notification = message.payload.data.notifications;
      if (!inbox.items.has(notification.id)) inbox.unread += 1;
      inbox.items.set(notification.id, notification);
      renderInbox();
    } else if (message.type === 'ping') {
      socket.send(JSON.stringify({ type: 'pong' }));
    }
  };
  socket.onclose = () => {
    if (socket !== inbox.socket || inbox.stopped) return;
    // Whatever arrived while away is in the stored inbox: reload it, then listen again.
    setTimeout(() => { loadInbox().catch(() => {}); connect(); }, Math.min(5000, 300 * 2 ** inbox.retry++));
  };
}

// --- Search ---------------------------------------------------------------------------

async function search(text, orderBy) {
  const { $, el } = ctx;
  const query = text.trim();
  if (!query) return;
  $('search-results').hidden = false;
  $('search-status').textContent = 'Searching…';
  $('search-list').replaceChildren();
  try {
    const { searchMessages } = await ctx.gql(Q.search, { query, orderBy });
    $('search-status').textContent = `${searchMessages.totalCount} found`;
    $('search-list').replaceChildren(...searchMessages.edges.map(({ snippet, node }) => el('li', {
      class: 'search-hit',
      onclick: async () => { $('search-results').hidden = true; await ctx.openRoom(node.room.id); },
    },
    el('span', { class: 'where muted', text: `${ctx.nameOf(node.sender)} in # ${node.room.name}` }),
    el('span', { class: 'snippet' }, ...snippetNodes(snippet)))));
  } catch (error) {
    $('search-status').textContent = error.message;
  }
}

const ENTITIES = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#x27;': "'", '&#39;': "'" };
const unescape = (text) => text.replace(/&(amp|lt|gt|quot|#x27|#39);/g, (entity) => ENTITIES[entity]);

/** The server's escaped snippet as text nodes and <mark> elements. */
function snippetNodes(snippet) {
  return snippet.split(/(<mark>.*?<\/mark>)/).filter(Boolean).map((part) => {
    const hit = part.match(/^<mark>(.*)<\/mark>$/);
    return hit ? ctx.el('mark', { text: unescape(hit[1]) }) : unescape(part);
  });
}

// --- My picture -----------------------------------------------------------------------

async function uploadAvatar(file) {
  if (!file) return;
  const { $ } = ctx;
  $('avatar-error').textContent = '';
  try {
    const form = new FormData();
    form.append('file', file);
    const response = await fetch('/api/uploads/', {
      method: 'POST',
      headers: { Authorization: `JWT ${await ctx.freshToken()}` },
      body: form,
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error?.message ?? `Upload failed (${response.status})`);
    const { updateProfile } = await ctx.gql(Q.setAvatar, { input: { avatarId: body.id } });
    ctx.state.me.avatarUrl = updateProfile.avatarUrl;
    renderMyAvatar();
  } catch (error) {
    $('avatar-error').textContent = error.message;
  } finally {
    $('avatar-file').value = '';
  }
}

export function renderMyAvatar() {
  const { $, el, state } = ctx;
  const url = state.me?.avatarUrl;
  const initial = ctx.nameOf(state.me).slice(0, 1).toUpperCase();
  $('my-avatar').replaceChildren(url ? el('img', { src: url, alt: 'my picture' }) : el('span', { text: initial }));
}

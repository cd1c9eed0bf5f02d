// GraphiQL at /graphql/ in chromium, offline and under its Content-Security-Policy:
// the README's walk-through done by hand in one GraphiQL tab (log in, put the token
// in the Headers tab, start the subscription), while bob, another user, sends a
// message to #general; the MessageAdded shows in alice's result pane.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gql } from '../lib/api.js';
import { launchChromium } from '../lib/browser.js';
import { manage, startServer } from '../lib/server.js';
import { FIRST_SUBSCRIPTION, LOG_IN, MY_ROOMS } from '../lib/readme.js';

let server;
let browser;

before(async () => {
  server = await startServer();
  manage(server, ['seed_demo']);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page that may reach only the server under test: any other request is
 * aborted and recorded, as a machine without internet access would. */
async function offlinePage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const offsite = [];
  const origin = new URL(server.url).origin;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
    offsite.push(url);
    return route.abort('internetdisconnected');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  return { page, offsite, problems };
}

const QUERY_EDITOR = '.graphiql-query-editor .CodeMirror';
const HEADERS_EDITOR = 'section.graphiql-editor-tool[aria-label=Headers] .CodeMirror >> visible=true';

/** Replaces an editor's text the way a paste does (no auto-closed brackets). */
async function paste(page, editor, text) {
  await page.locator(editor).click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
  // GraphiQL reparses the document (and picks the operation to run) shortly after an edit.
  await page.waitForTimeout(600);
}

const resultText = (page) =>
  page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue());

async function run(page) {
  await page.click('button.graphiql-execute-button');
}

test('the walk-through in GraphiQL: log in, set the header, subscribe, see bob\'s message', async () => {
  const { page, offsite, problems } = await offlinePage();
  const violations = [];
  await page.exposeFunction('reportViolation', (text) => violations.push(text));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => window.reportViolation(`${e.violatedDirective} ${e.blockedURI}`));
  });

  const response = await page.goto(`${server.url}/graphql/`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  await page.waitForSelector('.graphiql-query-editor .CodeMirror');

  // 1. Log in.
  await paste(page, QUERY_EDITOR, LOG_IN);
  await run(page);
  await page.waitForFunction(() => /"token"/.test(document.querySelector('.graphiql-response').textContent));
  const login = JSON.parse(await resultText(page));
  assert.equal(login.data.tokenAuth.user.username, 'alice');
  const token = login.data.tokenAuth.token;

  // 2. The Headers tab, under the query editor.
  await page.click('.graphiql-editor-tools button[data-name=headers]');
  await paste(page, HEADERS_EDITOR, `{"Authorization": "JWT ${token}"}`);

  // 3. My rooms (over HTTP, with the header).
  await paste(page, QUERY_EDITOR, MY_ROOMS);
  await run(page);
  await page.waitForFunction(() => /"general"/.test(document.querySelector('.graphiql-response').textContent));
  const rooms = JSON.parse(await resultText(page)).data.rooms.edges.map((e) => e.node);
  const general = rooms.find((room) => room.name === 'general');

  // 4. The subscription, in the same tab (the header goes in its connection_init).
  await paste(page, QUERY_EDITOR, FIRST_SUBSCRIPTION);
  await run(page);
  // Running: the execute button turns into a stop button.
  await page.waitForSelector('button.graphiql-execute-button[aria-label*="Stop"]');

  // 5. bob, from elsewhere (the web chat sends this mutation), says hello in #general.
  // The subscription has no "ready" message: bob's typing shows when it is live.
  const bob = (await gql(server, `mutation { tokenAuth(username: "bob", password: "demo-chat-2026") { token } }`)).tokenAuth.token;
  const typing = `mutation T($roomId: ID!) { setTyping(roomId: $roomId, typing: true) }`;
  for (let i = 0; i < 40; i++) {
    await gql(server, typing, { roomId: general.id }, bob);
    if (/TypingChanged/.test(await resultText(page))) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.match(await resultText(page), /TypingChanged/);
  await gql(server, `mutation S($roomId: ID!) { sendMessage(input: {roomId: $roomId, text: "Hi alice, bob here"}) { id } }`, { roomId: general.id }, bob);
  await page.waitForFunction(() => /MessageAdded/.test(document.querySelector('.graphiql-response').textContent));
  const event = JSON.parse(await resultText(page)).data.roomEvents;
  assert.equal(event.__typename, 'MessageAdded');
  assert.equal(event.room.name, 'general');
  assert.deepEqual(event.message, { text: 'Hi alice, bob here', sender: { username: 'bob' } });

  assert.deepEqual(offsite, [], 'GraphiQL asked for something off this server');
  assert.deepEqual(problems, []);
  assert.deepEqual(violations, []);
  await page.context().close();
});

test('GraphiQL\'s scripts and styles are this server\'s static files', async () => {
  const html = await (await fetch(`${server.url}/graphql/`, { headers: { Accept: 'text/html' } })).text();
  const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(sources.length >= 5, sources.join(' '));
  for (const source of sources) {
    assert.match(source, /^\/static\//);
    const asset = await fetch(`${server.url}${source}`);
    assert.equal(asset.status, 200, source);
  }
  assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]+<\/script>/, 'no inline script');
});

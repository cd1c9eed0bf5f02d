// The web chat's safety in a real browser (Debian's chromium through playwright-core):
// its Content-Security-Policy holds with no violation, no token is left where page
// scripts can read it, a refused attachment never blocks later sends, a quick double
// Enter sends once, and a dropped connection says so in words.
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import { after, before, test } from 'node:test';
import { launchChromium } from '../lib/browser.js';
import { makePng } from '../lib/png.js';
import { manage, startServer } from '../lib/server.js';

const PASSWORD = 'demo-chat-2026'; // seed_demo's documented password
const ELF = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(200)]);

let server;
let browser;
let proxy;

/** A TCP proxy in front of daphne that can drop every connection and refuse new ones:
 * what a browser sees when the network goes away. */
function flakyProxy(targetPort) {
  let down = false;
  const sockets = new Set();
  const listener = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    const pair = [client, upstream];
    for (const socket of pair) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        for (const other of pair) other.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve) => {
    listener.listen(0, '127.0.0.1', () => resolve({
      url: `http://127.0.0.1:${listener.address().port}`,
      drop() {
        down = true;
        for (const socket of sockets) socket.destroy();
      },
      restore() {
        down = false;
      },
      close() {
        this.drop();
        listener.close();
      },
    }));
  });
}

before(async () => {
  server = await startServer();
  manage(server, ['seed_demo']);
  proxy = await flakyProxy(server.port);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  proxy?.close();
  await server?.stop();
});

async function openChat() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) problems.push(message.text());
  });
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  const response = await page.goto(`${proxy.url}/`);
  return { context, page, problems, response };
}

async function logIn(page, username) {
  await page.fill('#auth-form input[name=username]', username);
  await page.fill('#auth-form input[name=password]', PASSWORD);
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])');
  await page.waitForSelector('#connection.live');
}

async function openRoom(page, name) {
  await page.locator('#my-rooms li', { hasText: `# ${name}` }).click();
  await page.waitForFunction((n) => document.querySelector('#room-name').textContent === `# ${n}`, name);
  await page.waitForSelector('#message-list li.message');
}

const messages = (page, text) => page.locator('#message-list li.message', { hasText: text });

test('a strict CSP with no violation, and no token readable by page scripts', async () => {
  const { context, page, problems, response } = await openChat();
  const csp = response.headers()['content-security-policy'];
  for (const directive of ["default-src 'self'", "object-src 'none'", "frame-ancestors 'none'"]) {
    assert.ok(csp.includes(directive), `${directive} in ${csp}`);
  }
  await logIn(page, 'alice');
  await openRoom(page, 'general');

  const stored = await page.evaluate(() => ({
    local: Object.keys(localStorage),
    session: Object.keys(sessionStorage),
    cookies: document.cookie,
  }));
  assert.deepEqual(stored.local, []);
  assert.deepEqual(stored.session, []);
  assert.ok(!stored.cookies.includes('chat_refresh'), 'the refresh cookie is HttpOnly');
  const cookie = (await context.cookies()).find((c) => c.name === 'chat_refresh');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict' && cookie.path === '/web/session/');

  // A reload signs in again from the cookie, with nothing in storage.
  await page.reload();
  await page.waitForSelector('#app:not([hidden])');
  await page.waitForSelector('#connection.live');

  // Logging out ends it: a reload shows the log-in form.
  await page.click('#logout');
  await page.waitForSelector('#auth:not([hidden])');
  await page.reload();
  await page.waitForSelector('#auth:not([hidden])');
  assert.equal(await page.locator('#app:not([hidden])').count(), 0);

  assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a refused attachment can be removed and never blocks later sends; a double Enter sends once', async () => {
  const { context, page, problems } = await openChat();
  await logIn(page, 'bob');
  await openRoom(page, 'random');

  // A file the × removes before sending.
  await page.setInputFiles('#file', { name: 'cat.png', mimeType: 'image/png', buffer: makePng(8, 8) });
  await page.waitForSelector('#pending-file:has-text("cat.png")');
  await page.click('#remove-file');
  assert.equal(await page.textContent('#pending-file'), '');
  assert.ok(await page.locator('#remove-file').isHidden());

  // A file the server refuses: the reason shows, the file goes, the text stays.
  await page.setInputFiles('#file', { name: 'photo.png', mimeType: 'image/png', buffer: ELF });
  await page.fill('#text', 'with a refused file');
  await page.press('#text', 'Enter');
  await page.waitForSelector('#room-error:has-text("photo.png was not sent")');
  assert.equal(await page.textContent('#pending-file'), '');
  assert.equal(await page.inputValue('#text'), 'with a refused file');

  // The next sends go through, in this room and in another.
  await page.press('#text', 'Enter');
  await messages(page, 'with a refused file').waitFor();
  await openRoom(page, 'general');
  await page.fill('#text', 'elsewhere, later');
  await page.press('#text', 'Enter');
  await messages(page, 'elsewhere, later').waitFor();

  // Enter pressed three times in a row: one message.
  await page.fill('#text', 'exactly once please');
  await Promise.all([page.press('#text', 'Enter'), page.press('#text', 'Enter'), page.press('#text', 'Enter')]);
  await messages(page, 'exactly once please').waitFor();
  await page.waitForTimeout(1000);
  assert.equal(await messages(page, 'exactly once please').count(), 1);
  const sent = await page.evaluate(async () => {
    const { token } = await fetch('/web/session/refresh/', { method: 'POST', headers: { 'X-Chat-Web': '1' } })
      .then((r) => r.json());
    const ask = (query, variables) => fetch('/graphql/', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `JWT ${token}` },
      body: JSON.stringify({ query, variables }),
    }).then((r) => r.json());
    const rooms = await ask('{ rooms(joined: true, search: "general") { edges { node { id name } } } }');
    const general = rooms.data.rooms.edges.find((e) => e.node.name === 'general').node;
    const history = await ask('query H($id: ID!) { messages(roomId: $id, first: 10) { edges { node { text } } } }',
      { id: general.id });
    return history.data.messages.edges.filter((e) => e.node.text === 'exactly once please').length;
  });
  assert.equal(sent, 1, 'the server stored one message');

  assert.deepEqual(problems, []);
  await context.close();
});

test('a dropped connection shows a clear state, and recovers', async () => {
  const { context, page, problems } = await openChat();
  await logIn(page, 'carol');
  await openRoom(page, 'general');

  proxy.drop();
  await page.waitForSelector('#connection-banner:not([hidden])');
  assert.match(await page.textContent('#connection-banner'), /Connection lost/);
  await page.fill('#text', 'sent while offline');
  await page.press('#text', 'Enter');
  await page.waitForSelector('#room-error:has-text("Cannot reach the server")');
  assert.ok(!(await page.textContent('#room-error')).includes('Failed to fetch'));
  assert.equal(await page.inputValue('#text'), 'sent while offline', 'the draft is kept');

  proxy.restore();
  await page.waitForSelector('#connection.live', { timeout: 30000 });
  await page.waitForSelector('#connection-banner', { state: 'hidden' });
  await page.press('#text', 'Enter');
  await messages(page, 'sent while offline').waitFor();
  assert.equal(await messages(page, 'sent while offline').count(), 1);

  assert.deepEqual(problems, []);
  await context.close();
});

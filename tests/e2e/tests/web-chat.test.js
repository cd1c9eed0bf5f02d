// The web chat at / in a real browser (Debian's chromium through playwright-core):
// two users in two browser contexts chat live. Screenshots go to artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../lib/browser.js';
import { makePng } from '../lib/png.js';
import { manage, startServer } from '../lib/server.js';

const ARTIFACTS = resolve(fileURLToPath(import.meta.url), '../../artifacts');
const PASSWORD = 'demo-chat-2026'; // seed_demo's documented password
const VIEWPORT = { width: 1200, height: 760 };

let server;
let browser;
const pageErrors = [];

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await startServer();
  manage(server, ['seed_demo']);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function openChat(name) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on('dialog', (dialog) => dialog.accept());
  await page.goto(`${server.url}/`);
  return page;
}

async function logIn(page, username, password = PASSWORD) {
  await page.fill('#auth-form input[name=username]', username);
  await page.fill('#auth-form input[name=password]', password);
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])');
  await page.waitForSelector('#connection.live');
}

const roomItem = (page, name) => page.locator('#my-rooms li', { hasText: `# ${name}` });
const messageItem = (page, text) => page.locator('#message-list li.message', { hasText: text });

async function openRoom(page, name) {
  await roomItem(page, name).click();
  await page.waitForFunction((n) => document.querySelector('#room-name').textContent === `# ${n}`, name);
  await page.waitForSelector('#message-list li.message');
}

test('two users chat live in the browser', async () => {
  const alice = await openChat('alice');
  const bob = await openChat('bob');
  await logIn(alice, 'alice');
  await logIn(bob, 'bob');

  // The room list shows unread counts; history opens at the newest message.
  await openRoom(alice, 'general');
  await openRoom(bob, 'general');
  assert.equal(await alice.locator('#message-list li.message').count(), 30, 'the first page of history');

  // Infinite scroll: scrolling to the top loads older pages until the beginning.
  for (let i = 0; i < 5 && !(await alice.locator('#history-status', { hasText: 'beginning' }).count()); i++) {
    await alice.evaluate(() => { document.querySelector('#messages').scrollTop = 0; });
    await alice.waitForTimeout(300);
  }
  await alice.waitForSelector('#history-status:has-text("This is the beginning of the room.")');
  assert.equal(await alice.locator('#message-list li.message').count(), 63, 'with the seeded thread replies');
  await alice.evaluate(() => {
    const box = document.querySelector('#messages');
    box.scrollTop = box.scrollHeight;
  });

  // Presence: both are online in each other's member list.
  await alice.waitForSelector('#member-list li:has-text("Bob Builder") .dot.online');
  await bob.waitForSelector('#member-list li:has-text("Alice Liddell") .dot.online');

  // Typing indicator, then a live message each way.
  await bob.fill('#text', 'Hello from Bob');
  await bob.dispatchEvent('#text', 'input');
  await alice.waitForSelector('#typing:has-text("Bob Builder is typing")');
  await bob.press('#text', 'Enter');
  await messageItem(alice, 'Hello from Bob').waitFor();
  await alice.waitForFunction(() => document.querySelector('#typing').textContent === '');
  await alice.fill('#text', 'Hi Bob, Alice here');
  await alice.press('#text', 'Enter');
  await messageItem(bob, 'Hi Bob, Alice here').waitFor();
  assert.equal(await messageItem(alice, 'Hi Bob, Alice here').count(), 1, 'no duplicate from the live echo');

  // An image attachment through the REST shim: both see the thumbnail.
  await alice.setInputFiles('#file', { name: 'gradient.png', mimeType: 'image/png', buffer: makePng() });
  await alice.fill('#text', 'Look at this picture');
  await alice.press('#text', 'Enter');
  for (const page of [alice, bob]) {
    const image = messageItem(page, 'Look at this picture').locator('.attachments img');
    await image.waitFor();
    await page.waitForFunction(
      (img) => img.complete && img.naturalWidth > 0,
      await image.elementHandle(),
    );
  }

  // Edit and delete: Bob sees both live.
  const mineId = await messageItem(alice, 'Hi Bob, Alice here').getAttribute('data-message-id');
  const mine = alice.locator(`#message-list li[data-message-id="${mineId}"]`);
  await mine.hover();
  await mine.locator('button', { hasText: 'Edit' }).click();
  await mine.locator('.edit-form input').fill('Hi Bob, Alice here (edited)');
  await mine.locator('.edit-form input').press('Enter');
  await bob.waitForSelector('#message-list li.message:has-text("Hi Bob, Alice here (edited)") .edited');
  await mine.locator('.edited').waitFor();
  await mine.hover();
  await mine.locator('button', { hasText: 'Delete' }).click();
  await bob.waitForSelector('#message-list li.message.deleted:has-text("This message was deleted.")');
  assert.equal(await messageItem(bob, 'Hi Bob, Alice here').count(), 0);

  // Unread counts: a message in #random shows up as a badge in Bob's room list.
  const badge = roomItem(bob, 'random').locator('.badge');
  const before = (await badge.count()) ? Number(await badge.textContent()) : 0;
  await openRoom(alice, 'random');
  await alice.fill('#text', 'Anyone in random?');
  await alice.press('#text', 'Enter');
  await bob.waitForFunction(
    (expected) => [...document.querySelectorAll('#my-rooms li')]
      .find((li) => li.textContent.includes('# random'))?.querySelector('.badge')?.textContent === expected,
    String(before + 1),
  );
  await openRoom(bob, 'random');
  await bob.waitForFunction(() => ![...document.querySelectorAll('#my-rooms li')]
    .find((li) => li.textContent.includes('# random'))?.querySelector('.badge'));
  await openRoom(bob, 'general');
  await openRoom(alice, 'general');
  await messageItem(alice, 'Look at this picture').locator('.attachments img').waitFor();
  await alice.waitForTimeout(300); // let the thumbnail settle before the picture

  await alice.screenshot({ path: join(ARTIFACTS, 'web-chat-alice.png') });
  await bob.screenshot({ path: join(ARTIFACTS, 'web-chat-bob.png') });
  assert.deepEqual(pageErrors, []);
});

test('a newcomer registers, joins a public room and is seen by others', async () => {
  const carol = await openChat('carol');
  await logIn(carol, 'carol');
  await openRoom(carol, 'general');

  const dave = await openChat('dave');
  await dave.click('#auth-toggle');
  await dave.fill('#auth-form input[name=username]', 'dave');
  await dave.fill('#auth-form input[name=email]', 'dave@example.com');
  await dave.fill('#auth-form input[name=displayName]', 'Dave');
  await dave.fill('#auth-form input[name=password]', 'a long enough passphrase');
  await dave.click('#auth-submit');
  await dave.waitForSelector('#connection.live');
  await dave.locator('#public-rooms li', { hasText: '# general' }).locator('button', { hasText: 'Join' }).click();
  await dave.waitForFunction(() => document.querySelector('#room-name').textContent === '# general');
  await carol.waitForSelector('#member-list li:has-text("Dave")');
  await dave.fill('#text', 'Hello, I am new here');
  await dave.press('#text', 'Enter');
  await messageItem(carol, 'Hello, I am new here').waitFor();
  await dave.screenshot({ path: join(ARTIFACTS, 'web-chat-newcomer.png') });
  assert.deepEqual(pageErrors, []);
});

// The web chat's notification bell and inbox, mention highlighting, search across
// rooms and profile pictures, in chromium against a live daphne with seed_demo's data.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../lib/browser.js';
import { makePng } from '../lib/png.js';
import { manage, startServer } from '../lib/server.js';

const ARTIFACTS = resolve(fileURLToPath(import.meta.url), '../../artifacts');
const PASSWORD = 'demo-chat-2026';
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

async function signedIn(username) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (error) => pageErrors.push(`${username}: ${error.message}`));
  await page.goto(`${server.url}/`);
  await page.fill('#auth-form input[name=username]', username);
  await page.fill('#auth-form input[name=password]', PASSWORD);
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])');
  await page.waitForSelector('#connection.live');
  return page;
}

async function openRoom(page, name) {
  await page.locator('#my-rooms li', { hasText: `# ${name}` }).click();
  await page.waitForFunction((n) => document.querySelector('#room-name').textContent === `# ${n}`, name);
  await page.waitForSelector('#message-list li.message');
}

test('the bell shows mentions waiting and arriving live; opening one reads it', async () => {
  // seed_demo left alice an unread mention from bob in #random (and carol's adding her to #design).
  const alice = await signedIn('alice');
  await alice.waitForSelector('#bell-count:not([hidden])');
  const waiting = Number(await alice.textContent('#bell-count'));
  assert.ok(waiting >= 2, 'the unread mention and addition from seed_demo');
  await alice.locator('#my-rooms li', { hasText: '# random' }).locator('.mention-badge').waitFor();

  // Bob mentions alice in #random while she is online: the bell counts it at once.
  const bob = await signedIn('bob');
  await openRoom(bob, 'random');
  await bob.fill('#text', '@alice the release notes are ready, @nobody else needs to look');
  await bob.press('#text', 'Enter');
  await alice.waitForFunction((n) => document.querySelector('#bell-count').textContent === String(n), waiting + 1);

  // The inbox lists it newest first; opening it reads it and opens the room, where the mention is highlighted.
  await alice.click('#bell');
  const newest = alice.locator('#inbox-list li.notification').first();
  assert.match(await newest.textContent(), /Bob Builder mentioned you in # random/);
  assert.equal(await newest.evaluate((li) => li.classList.contains('unread')), true);
  await newest.click();
  await alice.waitForFunction(() => document.querySelector('#room-name').textContent === '# random');
  const mention = alice.locator('#message-list li.message', { hasText: 'release notes' }).locator('.mention-me');
  assert.equal(await mention.textContent(), '@alice');
  // Reading #random read both mentions there: the seeded one and bob's.
  await alice.waitForFunction((n) => document.querySelector('#bell-count').textContent === String(n), waiting - 1);

  // Mark all read clears the bell.
  await alice.click('#bell');
  await alice.click('#inbox-read-all');
  await alice.waitForSelector('#bell-count[hidden]', { state: 'attached' });
  await alice.screenshot({ path: join(ARTIFACTS, 'inbox-alice.png') });
  assert.deepEqual(pageErrors, []);
});

test('search finds words across my rooms with the hits marked', async () => {
  const carol = await signedIn('carol');
  await carol.fill('#search-input', 'logo');
  await carol.press('#search-input', 'Enter');
  const hit = carol.locator('#search-list li.search-hit').first();
  await hit.waitFor();
  assert.equal(await hit.locator('mark').first().textContent(), 'logo');
  assert.match(await carol.textContent('#search-status'), /^1 found$/);
  // A room of hers that bob cannot see does not show up in his results.
  const bob = await signedIn('bob');
  await bob.fill('#search-input', 'logo');
  await bob.press('#search-input', 'Enter');
  await bob.waitForFunction(() => document.querySelector('#search-status').textContent === '0 found');
  await hit.click();
  await carol.waitForFunction(() => document.querySelector('#room-name').textContent === '# design');
  assert.equal(await carol.locator('#search-results').isHidden(), true);
  assert.deepEqual(pageErrors, []);
});

test('a profile picture shows next to my messages for others', async () => {
  const carol = await signedIn('carol');
  await carol.setInputFiles('#avatar-file', { name: 'me.png', mimeType: 'image/png', buffer: makePng() });
  const mine = carol.locator('#my-avatar img');
  await mine.waitFor();
  await carol.waitForFunction((img) => img.complete && img.naturalWidth === 64, await mine.elementHandle());
  await openRoom(carol, 'general');
  await carol.fill('#text', 'New picture, who dis');
  await carol.press('#text', 'Enter');
  const alice = await signedIn('alice');
  await openRoom(alice, 'general');
  const avatar = alice.locator('#message-list li.message', { hasText: 'New picture, who dis' }).locator('img.avatar');
  await avatar.waitFor();
  await alice.waitForFunction((img) => img.complete && img.naturalWidth === 64, await avatar.elementHandle());
  await alice.screenshot({ path: join(ARTIFACTS, 'avatar-alice.png') });
  assert.deepEqual(pageErrors, []);
});

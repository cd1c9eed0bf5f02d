// Reactions, threads, pins and edit history in the web chat at /, in chromium
// (playwright-core): two users see each other's changes live. Screenshots go to artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../lib/browser.js';
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
  manage(server, ['seed_demo']); // some reactions, a thread, a pin and an edited message
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function openChat(name, username) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  await page.goto(`${server.url}/`);
  await page.fill('#auth-form input[name=username]', username);
  await page.fill('#auth-form input[name=password]', PASSWORD);
  await page.click('#auth-submit');
  await page.waitForSelector('#connection.live');
  return page;
}

async function openRoom(page, name) {
  await page.locator('#my-rooms li', { hasText: `# ${name}` }).click();
  await page.waitForFunction((n) => document.querySelector('#room-name').textContent === `# ${n}`, name);
  await page.waitForSelector('#message-list li.message');
}

// The newest message of the main timeline with this text (the seeded lines repeat).
const message = (page, text) => page.locator('#message-list li.message', { hasText: text }).last();
const reaction = (item, emoji) => item.locator(`.reaction-bar .reaction[data-emoji="${emoji}"]`);

test('reactions, a thread, pins and edit history, live between two users', async () => {
  const alice = await openChat('alice', 'alice');
  const bob = await openChat('bob', 'bob');
  await openRoom(alice, 'general');
  await openRoom(bob, 'general');

  // Seeded reactions show as a bar under the message.
  const live = 'the roomEvents subscription streams everything live';
  await reaction(message(alice, live), '🚀').locator('.count', { hasText: '2' }).waitFor();

  // Bob reacts from the picker; Alice sees it arrive, then go when Bob takes it back.
  const target = message(bob, 'Count me in.');
  await target.hover();
  await target.locator('.react-button').click();
  await bob.locator('#emoji-picker button', { hasText: '🎉' }).click();
  await reaction(target, '🎉').and(bob.locator('.reaction.mine')).waitFor();
  const seenByAlice = reaction(message(alice, 'Count me in.'), '🎉');
  await seenByAlice.locator('.count', { hasText: '1' }).waitFor();
  assert.equal(await seenByAlice.getAttribute('aria-pressed'), 'false');
  assert.equal(await seenByAlice.getAttribute('title'), 'Bob Builder');
  await alice.screenshot({ path: join(ARTIFACTS, 'web-chat-reactions.png') });
  await reaction(target, '🎉').click();
  await seenByAlice.waitFor({ state: 'detached' });

  // The seeded thread: the root says how many replies it has; the panel lists them oldest first.
  const lunch = 'Who is up for lunch at noon?';
  await message(alice, lunch).locator('.thread-link', { hasText: '3 replies' }).click();
  await alice.waitForSelector('#thread-panel:not([hidden])');
  await alice.waitForFunction(() => document.querySelectorAll('#thread-replies li.message').length === 3);
  assert.deepEqual(
    await alice.locator('#thread-replies li.message .text').allTextContents(),
    ['Pizza or noodles?', 'Noodles, please.', 'Noodles it is. Table for three.'],
  );
  await alice.fill('#thread-text', 'Booked for 12:15.');
  await alice.press('#thread-text', 'Enter');
  await alice.locator('#thread-replies li.message', { hasText: 'Booked for 12:15.' }).waitFor();
  // Bob sees the root's count change live, and the reply in the thread he opens.
  await message(bob, lunch).locator('.thread-link', { hasText: '4 replies' }).click();
  await bob.locator('#thread-replies li.message', { hasText: 'Booked for 12:15.' }).waitFor();
  await bob.screenshot({ path: join(ARTIFACTS, 'web-chat-thread.png') });
  await bob.click('#thread-close');
  await alice.click('#thread-close');

  // Pins: the seeded pin is listed; the owner pins another, Bob's list follows live.
  await alice.click('#pins-toggle');
  await alice.locator('#pins-list li', { hasText: 'pass the last cursor' }).waitFor();
  await alice.click('#pins-close');
  const toPin = message(alice, 'Count me in.');
  await toPin.hover();
  await toPin.locator('.conversation-actions button', { hasText: 'Pin' }).click();
  await toPin.locator('.pin-marker', { hasText: 'pinned by Alice Liddell' }).waitFor();
  await bob.waitForFunction(() => document.querySelector('#pins-toggle').textContent === '📌 2');
  await bob.click('#pins-toggle');
  assert.deepEqual(
    await bob.locator('#pins-list li .text').allTextContents(),
    ['Count me in.', 'And if you lose the connection, pass the last cursor as `after` and nothing is lost.'],
  );
  // Members of a group room have no pin button; its owner does.
  await message(bob, 'Count me in.').hover();
  assert.equal(await message(bob, 'Count me in.').locator('.conversation-actions button', { hasText: 'Pin' }).count(), 0);
  await alice.screenshot({ path: join(ARTIFACTS, 'web-chat-pins.png') });

  // Edit history on hover: the seeded edit in #random keeps the earlier text.
  await openRoom(bob, 'random');
  const edited = message(bob, 'Try the fish.');
  await edited.locator('.edited').hover();
  await edited.locator('.edit-history', { hasText: 'I will be here all week.' }).waitFor({ state: 'visible' });
  await bob.screenshot({ path: join(ARTIFACTS, 'web-chat-edit-history.png') });

  // Alice edits a message of hers: Bob, hovering it, sees the text it had.
  await openRoom(alice, 'random');
  const mineId = await message(alice, 'Groan.').getAttribute('data-message-id');
  const mine = alice.locator(`#message-list li[data-message-id="${mineId}"]`);
  await mine.hover();
  await mine.locator('.actions button', { hasText: 'Edit' }).click();
  await mine.locator('.edit-form input').fill('Groan. Seriously.');
  await mine.locator('.edit-form input').press('Enter');
  const seen = message(bob, 'Groan. Seriously.');
  await seen.locator('.edited').hover();
  await seen.locator('.edit-history', { hasText: 'Groan.' }).waitFor({ state: 'visible' });
  assert.deepEqual(pageErrors, []);
});

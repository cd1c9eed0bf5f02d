// Moderation in the web chat at / (chromium through playwright-core): the member
// menu (mute, ban, remove), the message menu (report), the room menu (invite link,
// slow mode) and the user menu (block), each used by someone allowed to, and seen
// live by the others. seed_demo's data: alice owns #general, erin is muted there.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { newUser, PASSWORD as NEW_USER_PASSWORD } from '../lib/api.js';
import { launchChromium } from '../lib/browser.js';
import { manage, startServer } from '../lib/server.js';

const ARTIFACTS = resolve(fileURLToPath(import.meta.url), '../../artifacts');
const PASSWORD = 'demo-chat-2026'; // seed_demo's documented password
const VIEWPORT = { width: 1280, height: 760 };

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

async function openChat(name, path = '/') {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  await page.goto(`${server.url}${path}`);
  return page;
}

async function logIn(page, username, password = PASSWORD) {
  await page.fill('#auth-form input[name=username]', username);
  await page.fill('#auth-form input[name=password]', password);
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])');
  await page.waitForSelector('#connection.live');
}

async function openRoom(page, name) {
  await page.locator('#my-rooms li', { hasText: `# ${name}` }).click();
  await page.waitForFunction((n) => document.querySelector('#room-name').textContent === `# ${n}`, name);
  await page.waitForSelector('#message-list li.message');
}

const member = (page, name) => page.locator('#member-list li', { hasText: name });

async function memberAction(page, name, action) {
  const item = member(page, name);
  if (!(await item.locator('.member-menu').count())) await item.locator('.member-menu-toggle').click();
  await item.locator('.member-menu button', { hasText: new RegExp(`^${action}$`) }).click();
}

test('moderators mute, ban and slow down; members report and block; invite links open rooms', async () => {
  const alice = await openChat('alice');
  const bob = await openChat('bob');
  const carol = await openChat('carol');
  const erin = await openChat('erin');
  for (const [page, name] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol'], [erin, 'erin']]) {
    await logIn(page, name);
    await openRoom(page, 'general');
  }

  // erin, muted by seed_demo, reads but cannot write; the others see the mark.
  await erin.waitForSelector('#text:disabled');
  assert.match(await erin.getAttribute('#text', 'placeholder'), /muted/);
  await member(alice, 'Erin').locator('.role', { hasText: 'muted' }).waitFor().catch(async (error) => {
    await alice.screenshot({ path: join(ARTIFACTS, 'moderation-alice-failed.png') });
    throw new Error(`${error.message}\n${pageErrors.join('\n')}\n${await alice.textContent('#room-error')}`);
  });

  // Member menu: alice mutes bob, bob's composer closes live; unmuting opens it again.
  await memberAction(alice, 'Bob', 'Mute');
  await bob.waitForSelector('#text:disabled');
  await memberAction(alice, 'Bob', 'Unmute');
  await bob.waitForSelector('#text:enabled');
  // Members have no moderation menu, only blocking.
  await member(bob, 'Carol').locator('.member-menu-toggle').click();
  assert.deepEqual(await member(bob, 'Carol').locator('.member-menu button').allTextContents(), ['Block']);
  assert.equal(await bob.locator('#room-moderation button').count(), 0);

  // Room menu: an invite link; a newcomer opening it joins #general after signing in.
  await alice.locator('#room-moderation button', { hasText: 'Invite link' }).click();
  await alice.waitForSelector('#invite-url:not([hidden])');
  const url = await alice.locator('#invite-url').inputValue();
  assert.match(url, /\/#invite=[\w-]{32}$/);
  const { user } = await newUser(server, 'invited');
  const newcomer = await openChat('newcomer', new URL(url).pathname + new URL(url).hash);
  await logIn(newcomer, user.username, NEW_USER_PASSWORD);
  await newcomer.waitForFunction(() => document.querySelector('#room-name').textContent === '# general');
  await member(alice, 'invited').waitFor();

  // Room menu: slow mode; the newcomer's second message within the interval is refused
  // (seed_demo's members wrote moments ago: their interval has not passed yet either).
  await alice.selectOption('#slow-mode', '30');
  await alice.waitForSelector('#slow-mode[data-applied="30"]');
  await newcomer.fill('#text', 'first under slow mode');
  await newcomer.press('#text', 'Enter');
  await newcomer.locator('#message-list li.message', { hasText: 'first under slow mode' }).waitFor();
  await newcomer.fill('#text', 'second too soon');
  await newcomer.press('#text', 'Enter');
  await newcomer.locator('#room-error', { hasText: 'Slow mode' }).waitFor();
  await alice.selectOption('#slow-mode', '0');
  await alice.waitForSelector('#slow-mode[data-applied="0"]');

  // Message menu: bob reports one of alice's messages.
  const aliceMessage = bob.locator('#message-list li.message', { hasText: 'Who is up for lunch at noon?' }).last();
  await aliceMessage.hover();
  await aliceMessage.locator('button', { hasText: 'Report' }).click();
  await aliceMessage.locator('.report-form select').selectOption('SPAM');
  await aliceMessage.locator('.report-form button', { hasText: 'Send report' }).click();
  await aliceMessage.locator('.report-sent').waitFor();

  // User menu: bob blocks carol; her messages fold for him only.
  await memberAction(bob, 'Carol', 'Block');
  await bob.locator('#message-list li.message.blocked', { hasText: 'Message from a user you blocked' }).first().waitFor();
  assert.equal(await alice.locator('#message-list li.message.blocked').count(), 0);

  // Member menu: alice bans carol; carol's page says so at once.
  await memberAction(alice, 'Carol', 'Ban');
  await carol.locator('#room-name', { hasText: 'You were banned from this room' }).waitFor().catch(async (error) => {
    await carol.screenshot({ path: join(ARTIFACTS, 'moderation-carol-failed.png') });
    await alice.screenshot({ path: join(ARTIFACTS, 'moderation-alice-failed.png') });
    throw error;
  });
  await member(alice, 'Carol').waitFor({ state: 'detached' });

  await alice.screenshot({ path: join(ARTIFACTS, 'moderation-alice.png') });
  await bob.screenshot({ path: join(ARTIFACTS, 'moderation-bob.png') });
  assert.deepEqual(pageErrors, []);
});

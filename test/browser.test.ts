/**
 * The live page end to end, in headless Chromium (Debian's `chromium`, driven by
 * playwright-core): two people in two browser contexts, Alice follows Bob; Bob's
 * page open shows him online to Alice, Bob's page closed shows him offline with a
 * last-seen time once the threshold has passed (let pass, not waited for: see
 * test/support/passing-time.ts). Built only on the page, the browser client and
 * the public API.
 *
 * Needs /usr/bin/chromium (CI installs it); skipped on a machine without it.
 * PULSE_SCREENSHOT=docs writes the screenshot the README shows.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { chromium, type Browser, type Page } from 'playwright-core';
import { fakeProcessClock, letTimePass } from './support/passing-time';
import { createTestDatabase, type TestDatabase } from './support/test-database';
import { startTestServer, type TestServer } from './support/test-server';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const THRESHOLD_SECONDS = 30;
const describeWithChromium = fs.existsSync(CHROMIUM) ? describe : describe.skip;

describeWithChromium('the live page in Chromium', () => {
  let t: TestDatabase;
  let server: TestServer;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    fakeProcessClock();
    t = await createTestDatabase();
    server = await startTestServer({
      DATABASE_URL: t.url,
      PRESENCE_THRESHOLD_SECONDS: String(THRESHOLD_SECONDS),
      HEARTBEAT_MIN_WRITE_GAP_SECONDS: '0',
    });
    base = server.pulse.graphqlUrl.replace(/\/graphql$/, '');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server.stop();
    await t.destroy();
    jest.useRealTimers();
  });

  async function signUp(name: string, search = ''): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 760, height: 720 } });
    const page = await context.newPage();
    await page.goto(`${base}/${search}`);
    await page.getByTestId('signup-name').fill(name);
    await page.getByTestId('signup').click();
    await page.getByTestId('me-name').filter({ hasText: name }).waitFor();
    return page;
  }

  it('shows Alice that Bob is online while his page is open, and offline with a last-seen time once he closes it', async () => {
    const alice = await signUp('Alice');
    const bob = await signUp('Bob');

    await alice.getByTestId('search-input').fill('Bob');
    await alice.getByTestId('search').click();
    await alice.getByTestId('follow-Bob').click();
    const bobForAlice = alice.getByTestId('following-Bob');
    await bobForAlice.and(alice.locator('[data-state="ONLINE"]')).waitFor({ timeout: 10_000 });
    expect(await bobForAlice.textContent()).toContain('online');

    // Closing the page sends nothing: Bob goes offline when the threshold passes
    // without a heartbeat, and Alice hears of it with nobody doing anything.
    await bob.context().close();
    const { rows } = await sql<{ id: string }>`select id::text from users where name = 'Bob'`.execute(t.db);
    await letTimePass(t.db, THRESHOLD_SECONDS + 2, [rows[0]!.id]);
    await bobForAlice.and(alice.locator('[data-state="OFFLINE"]')).waitFor({ timeout: 10_000 });
    expect(await bobForAlice.textContent()).toMatch(/last seen just now/);

    const file = process.env.PULSE_SCREENSHOT === 'docs' ? path.resolve(__dirname, '..', 'docs', 'live-page.png') : path.join(os.tmpdir(), `pulse-live-page-${process.pid}.png`);
    const png = await alice.screenshot({ path: file, fullPage: true });
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    await alice.context().close();
  });

  it('shows Carol that Dave is away when idle, in a colour of its own, and online again as soon as he presses a key', async () => {
    const carol = await signUp('Carol');
    // Dave's page turns him idle after 1.5 s without input (5 minutes by default).
    const dave = await signUp('Dave', '?idleAfterMs=1500');
    // Timed with performance.now(): this file fakes Date (fakeProcessClock).
    const daveStarted = performance.now();
    await carol.getByTestId('search-input').fill('Dave');
    await carol.getByTestId('search').click();
    await carol.getByTestId('follow-Dave').click();
    const daveForCarol = carol.getByTestId('following-Dave');

    await daveForCarol.and(carol.locator('[data-state="AWAY"][data-idle="true"]')).waitFor({ timeout: 15_000 });
    const idleSeenMs = Math.round(performance.now() - daveStarted);
    expect(await daveForCarol.textContent()).toContain('away (idle)');
    // Its own colour: a hollow ring, where a chosen AWAY is a filled amber dot.
    const dot = daveForCarol.locator('.dot');
    const look = await dot.evaluate((el) => {
      // Runs in the page; typed by hand, as this file builds without the DOM's types.
      const page = (el as unknown as { ownerDocument: { defaultView: { getComputedStyle(e: unknown): { backgroundColor: string; boxShadow: string } } } }).ownerDocument;
      const style = page.defaultView.getComputedStyle(el);
      return { background: style.backgroundColor, ring: style.boxShadow };
    });
    expect(look.background).toBe('rgba(0, 0, 0, 0)');
    expect(look.ring).toContain('rgb(233, 179, 34)');

    const pressed = performance.now();
    await dave.keyboard.press('Shift');
    await daveForCarol.and(carol.locator('[data-state="ONLINE"]')).waitFor({ timeout: 10_000 });
    const backMs = Math.round(performance.now() - pressed);
    expect(await daveForCarol.textContent()).toContain('online');
    // Measured, not asserted (timing is noisy on a shared machine): printed for the notes.
    console.log(`idle transitions in Chromium: AWAY seen ${idleSeenMs} ms after Dave's page started (idleAfterMs 1500); ONLINE seen ${backMs} ms after a key press`);
    await carol.context().close();
    await dave.context().close();
  });
});

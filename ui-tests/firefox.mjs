// Berth's web UI in Firefox (Debian's Firefox ESR, headless, driven over
// WebDriver BiDi by puppeteer-core): log in with the keyboard, filter the
// list, open an app and its side-by-side diff, sync it and watch it become
// Synced without reloading, fit a narrow window. APP must be OutOfSync.
// Screenshots go to $SCREENSHOTS. Exits 1 at the first failed expectation.
import puppeteer from 'puppeteer-core';
import { mkdirSync } from 'node:fs';

const base = process.env.BERTH_URL;
const app = process.env.APP || 'guestbook-fox';
const shots = process.env.SCREENSHOTS || 'ui-screenshots';
mkdirSync(shots, { recursive: true });

function expect(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
});
try {
  console.log(`ok: ${await browser.version()}`);
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.setDefaultTimeout(30000);
  const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());

  await page.goto(`${base}/applications`);
  expect(page.url().includes('/login'), 'an anonymous visit goes to the login page');
  await page.focus('input[name=username]');
  await page.keyboard.type('admin');
  await page.keyboard.press('Tab');
  await page.keyboard.type(process.env.ADMIN_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  expect((await page.$('table.apps')) !== null, 'logged in with the keyboard, the list shows');

  await page.select('select[name=sync]', 'OutOfSync');
  await Promise.all([page.waitForNavigation(), page.click('.filters button[type=submit]')]);
  expect(page.url().includes('sync=OutOfSync'), 'the filter is in the URL');
  const rows = await page.$$eval('table.apps tbody tr', (rs) => rs.map((r) => r.dataset.app));
  expect(rows.includes(app), `${app} is listed as OutOfSync (${rows})`);
  await page.screenshot({ path: `${shots}/firefox-applications.png`, fullPage: true });

  await page.goto(`${base}/applications/${app}/diff?view=split`);
  expect((await page.$$('table.split td.add')).length > 0, 'the side-by-side diff shows Git\'s lines');
  expect((await page.$$('table.split .y-key')).length > 0, 'highlighted as YAML');
  await page.screenshot({ path: `${shots}/firefox-diff.png`, fullPage: true });

  await page.goto(`${base}/applications/${app}`);
  expect((await text('#sync-status')) === 'OutOfSync', 'the app page says OutOfSync');
  await Promise.all([page.waitForNavigation(), page.click('#sync')]);
  await page.waitForFunction(() => document.querySelector('#sync-status').textContent.trim() === 'Synced', { timeout: 120000 });
  expect(true, 'the app became Synced, seen live');
  expect((await page.$$('#progress-results tr')).length > 0, 'the sync results are listed');
  await page.screenshot({ path: `${shots}/firefox-synced.png`, fullPage: true });

  await page.setViewport({ width: 390, height: 844 });
  for (const path of ['/applications', `/applications/${app}`]) {
    await page.goto(`${base}${path}`);
    const [wide, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    expect(wide <= inner, `${path} fits 390 px in Firefox (${wide} <= ${inner})`);
  }
  await page.screenshot({ path: `${shots}/firefox-narrow.png`, fullPage: true });
} finally {
  await browser.close();
}

// Berth's web UI in a real browser: log in (with the keyboard), find an
// OutOfSync app by filter, open its diff (unified and side by side), sync
// it and watch it become Synced, watch a slow sync's progress by wave with
// no layout shift while the list updates live, roll back, approve a gated
// sync; a read-only user sees no Sync button and is refused by the API;
// pages fit a narrow screen; single sign-on through a real OpenID Connect
// provider. Screenshots of each screen go to $SCREENSHOTS. Exits 1 at the
// first failed expectation.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const base = process.env.BERTH_URL;
const app = process.env.APP || 'guestbook-prod';
const shots = process.env.SCREENSHOTS || 'ui-screenshots';
mkdirSync(shots, { recursive: true });

function expect(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const main = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await main.newPage();
  page.setDefaultTimeout(30000);

  // Every page asks for a session first.
  await page.goto(`${base}/applications`);
  expect(page.url().includes('/login'), 'an anonymous visit goes to the login page');
  await page.screenshot({ path: `${shots}/login.png`, fullPage: true });
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  expect(await page.locator('.error').isVisible(), 'a wrong password is said so');
  // With the keyboard only: the user name field has the focus.
  await page.fill('input[name=username]', '');
  await page.fill('input[name=password]', '');
  await page.focus('input[name=username]');
  await page.keyboard.type('admin');
  await page.keyboard.press('Tab');
  await page.keyboard.type(process.env.ADMIN_PASSWORD);
  await page.keyboard.press('Enter');
  await page.waitForURL('**/applications**');
  expect(await page.locator('table.apps').isVisible(), 'the applications list after logging in with the keyboard');
  await page.screenshot({ path: `${shots}/applications.png`, fullPage: true });

  // The keyboard reaches the name filter and an app's link, and the
  // focused element shows it.
  const tabTo = async (selector, most = 60) => {
    for (let i = 0; i < most; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return true;
    }
    return false;
  };
  expect(await tabTo('input[name=search]'), 'Tab reaches the name filter');
  await page.keyboard.type(app);
  await page.keyboard.press('Enter');
  await page.waitForURL(`**search=${app}**`);
  expect(await tabTo(`a[href="/applications/${app}"]`), `Tab reaches ${app}'s link`);
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  expect(outline !== 'none', `the focused link is outlined (${outline})`);
  await page.keyboard.press('Enter');
  await page.waitForURL(`**/applications/${app}`);
  expect(true, 'Enter opens the app');
  const branch = page.locator('.tree details').first();
  if (await branch.count()) {
    await page.focus('.tree details > summary');
    const wasOpen = await branch.evaluate((d) => d.open);
    await page.keyboard.press('Enter');
    expect((await branch.evaluate((d) => d.open)) === !wasOpen, 'Enter folds a branch of the resource tree');
    await page.keyboard.press('Enter');
  }
  await page.goto(`${base}/applications`);

  // ApplicationSets: the set, up to date, and the Application it made.
  let upToDate = false;
  for (let i = 0; i < 60 && !upToDate; i++) {
    await page.goto(`${base}/applicationsets`);
    upToDate = (await page.locator('tr[data-appset="teams"] .badge').textContent().catch(() => '')) === 'UpToDate';
    if (!upToDate) await page.waitForTimeout(500);
  }
  expect(upToDate, 'the ApplicationSet page shows the set up to date');
  await page.screenshot({ path: `${shots}/applicationsets.png`, fullPage: true });
  await page.click('tr[data-appset="teams"] a:has-text("blue-guestbook")');
  await page.waitForURL('**/applications/blue-guestbook');
  expect((await page.textContent('.summary')).includes('teams'), 'the app names the ApplicationSet that made it');
  await page.goto(`${base}/applications`);

  // Find the OutOfSync app by filter; the filter stays in the URL.
  await page.selectOption('select[name=sync]', 'OutOfSync');
  await page.click('.filters button[type=submit]');
  await page.waitForURL('**sync=OutOfSync**');
  const rows = await page.locator('table.apps tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.app));
  expect(rows.includes(app), `${app} is listed as OutOfSync (${rows})`);
  expect(!rows.includes('guestbook-dev'), 'a Synced app is filtered out');
  await page.goto(`${base}/applications?namespace=guestbook-dev&cluster=${encodeURIComponent('https://kubernetes.default.svc')}`);
  const inDev = await page.locator('table.apps tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.app));
  expect(inDev.join() === 'guestbook-dev', `the destination filters (cluster, namespace) find guestbook-dev (${inDev})`);
  expect((await page.inputValue('input[name=namespace]')) === 'guestbook-dev', 'the form shows the filter from the URL');
  await page.goto(`${base}/applications?sync=OutOfSync`);
  await page.click('a[href$="view=tiles"]');
  expect(await page.locator(`.tile[data-app="${app}"]`).isVisible(), 'the tiles view shows it too');
  await page.screenshot({ path: `${shots}/applications-tiles.png`, fullPage: true });

  // The application, its resources and its diff.
  await page.goto(`${base}/applications/${app}`);
  expect((await page.textContent('#sync-status')).trim() === 'OutOfSync', 'the app page says OutOfSync');
  expect(await page.locator('.tree li').count() > 0, 'the resource tree lists objects');
  await page.screenshot({ path: `${shots}/application.png`, fullPage: true });
  await page.click('a.button:has-text("Diff")');
  await page.waitForURL('**/diff');
  expect(await page.locator('.diff .add, .diff .del').count() > 0, 'the diff shows changed lines');
  expect(await page.locator('.diff .y-key').count() > 0, 'the diff is highlighted as YAML');
  await page.screenshot({ path: `${shots}/diff.png`, fullPage: true });
  await page.click('a:has-text("side by side")');
  await page.waitForURL('**/diff?view=split');
  // The app's objects are missing from the cluster: Git's lines on the
  // right face nothing on the left.
  const added = await page.locator('table.split tbody tr').evaluateAll((rs) => rs.filter((r) => r.querySelector('td.none + td.add')).length);
  expect(added > 0, `side by side: Git's lines on the right, live on the left (${added} rows)`);
  await page.screenshot({ path: `${shots}/diff-split.png`, fullPage: true });
  await page.click('a:has-text("unified")');
  await page.waitForURL('**/diff');

  // A selective sync: only the ConfigMap; the app stays OutOfSync.
  await page.goto(`${base}/applications/${app}`);
  await page.click('details summary');
  await page.check('input[name=resource][value^=":ConfigMap:"]');
  await page.check('input[name=option][value="CreateNamespace=true"]');
  await page.screenshot({ path: `${shots}/sync-dialog.png`, fullPage: true });
  await page.click('#sync');
  await page.waitForURL(`**/applications/${app}?notice=**`);
  await page.waitForFunction(() => document.querySelector('#op-phase').textContent.trim() === 'Succeeded', null, { timeout: 120000 });
  await page.reload();
  const partial = await page.locator('.tree > li').evaluateAll((ls) => ls.map((l) => l.textContent));
  expect(partial.some((t) => t.includes('ConfigMap') && t.includes('Synced')), `the selected ConfigMap synced (${partial})`);
  expect(partial.some((t) => t.includes('Deployment') && t.includes('OutOfSync')), 'the others not');
  expect((await page.textContent('#sync-status')).trim() === 'OutOfSync', 'the app is still OutOfSync');

  // Sync, and watch it become Synced without reloading.
  await page.goto(`${base}/applications/${app}`);
  await page.click('#sync');
  await page.waitForURL(`**/applications/${app}?notice=**`);
  await page.waitForFunction(() => document.querySelector('#sync-status').textContent.trim() === 'Synced', null, { timeout: 120000 });
  expect(true, 'the app became Synced, seen live');
  await page.screenshot({ path: `${shots}/synced.png`, fullPage: true });

  // A slow sync (its pods take seconds to be ready): its progress by
  // phase and wave shows while it runs, nothing moves on the page, and a
  // list open in another tab follows it without reloading.
  const list = await main.newPage();
  await list.goto(`${base}/applications?search=guestbook-slow`);
  expect((await list.textContent('tr[data-app="guestbook-slow"] .badge')).trim() === 'OutOfSync', 'the list shows guestbook-slow OutOfSync');
  await page.goto(`${base}/applications/guestbook-slow`);
  await page.click('#sync');
  await page.waitForURL('**/applications/guestbook-slow?notice=**');
  await page.waitForFunction(() => {
    const head = document.querySelector('#progress-head strong');
    return head && head.textContent === 'Running' && document.querySelector('#progress-waves li progress');
  }, null, { timeout: 60000 });
  const wave = await page.textContent('#progress-waves li');
  expect(/wave -?\d+/.test(wave) && / of /.test(wave), `the running sync shows its wave (${wave.trim()})`);
  await page.screenshot({ path: `${shots}/sync-progress.png`, fullPage: true });
  await page.waitForFunction(() => document.querySelector('#op-phase').textContent.trim() === 'Succeeded', null, { timeout: 120000 });
  expect(await page.locator('#progress-results tr').count() > 0, 'the results of the sync are listed');
  await page.waitForTimeout(2500);
  const shift = await page.evaluate(() => new Promise((resolve) => {
    let total = 0;
    new PerformanceObserver((l) => l.getEntries().forEach((e) => { if (!e.hadRecentInput) total += e.value; }))
      .observe({ type: 'layout-shift', buffered: true });
    setTimeout(() => resolve(total), 200);
  }));
  expect(shift < 0.05, `live updates move nothing (layout shift ${shift.toFixed(3)})`);
  await list.waitForFunction(() => {
    const b = document.querySelector('tr[data-app="guestbook-slow"] .badge');
    return b && b.textContent === 'Synced';
  }, null, { timeout: 60000 });
  expect(true, 'the list in the other tab turned Synced without reloading');
  await list.screenshot({ path: `${shots}/applications-live.png`, fullPage: true });
  await list.close();

  // One resource: its live and desired manifests, diff and events.
  await page.goto(`${base}/applications/${app}`);
  await page.click('.tree a:has-text("guestbook") >> nth=0');
  await page.waitForURL('**/resource?**');
  expect((await page.textContent('#live')).includes('kind:'), 'the live manifest, as YAML');
  expect((await page.textContent('#desired')).includes('kind:'), 'the desired manifest, as YAML');
  expect(await page.locator('h2:has-text("Events")').isVisible(), 'the events section');
  expect(!(await page.textContent('body')).includes('ScalingReplicaSet'), "another kind's events are not shown");
  await page.screenshot({ path: `${shots}/resource.png`, fullPage: true });

  // Resource actions on the Deployment: restart it from its page.
  const deployment = `${base}/applications/${app}/resource?group=apps&kind=Deployment&namespace=${app}&resourceName=guestbook`;
  await page.goto(deployment);
  const offered = await page.locator('#resource-actions button').evaluateAll((bs) => bs.map((b) => `${b.value}${b.disabled ? ' (disabled)' : ''}`));
  expect(offered.join() === 'pause,restart,resume (disabled)', `the Deployment offers its actions (${offered})`);
  await page.click('#resource-actions button[value=restart]');
  await page.waitForURL('**notice=**');
  expect((await page.textContent('.notice')).includes('restart: done'), 'the restart is reported');
  expect((await page.textContent('#live')).includes('kubectl.kubernetes.io/restartedAt'), 'the live Deployment carries the restart');
  await page.screenshot({ path: `${shots}/resource-actions.png`, fullPage: true });

  // Roll back to the history entry: a second entry appears.
  await page.goto(`${base}/applications/${app}`);
  const before = await page.locator('table.history tbody tr').count();
  await page.click('table.history button:has-text("Roll back") >> nth=0');
  await page.waitForURL(`**/applications/${app}?notice=**`);
  let after = before;
  for (let i = 0; i < 120 && after <= before; i++) {
    await page.waitForTimeout(1000);
    await page.reload();
    after = await page.locator('table.history tbody tr').count();
  }
  expect(after > before, `the rollback ran (history ${before} -> ${after})`);
  await page.screenshot({ path: `${shots}/history.png`, fullPage: true });

  // Delete needs the name typed; without cascade the resources stay.
  await page.goto(`${base}/applications/guestbook-staging`);
  await page.fill('input[name=confirm]', 'guestbook-wrong');
  await page.click('.danger button');
  expect((await page.textContent('.error')).includes('type the application'), 'a wrong confirmation deletes nothing');
  await page.goto(`${base}/applications/guestbook-staging`);
  await page.fill('input[name=confirm]', 'guestbook-staging');
  await page.uncheck('input[name=cascade]');
  await page.click('.danger button');
  await page.waitForURL('**/applications?notice=**');
  // The list is served from a watch-fed cache: the deletion reaches it
  // within moments (and the open page's stream marks the row).
  let still = 1;
  for (let i = 0; i < 40 && still > 0; i++) {
    still = await page.locator('tr[data-app="guestbook-staging"]:not(.gone)').count();
    if (still > 0) {
      await page.waitForTimeout(500);
      if (i % 4 === 3) await page.reload();
    }
  }
  expect(still === 0, 'the deleted app is gone from the list');

  // A gated app: the sync waits as a request, another user approves it.
  await page.goto(`${base}/applications/guestbook-dev`);
  expect(await page.locator('section.approvals').isVisible(), 'the approvals section of a gated app');
  await page.click('#sync');
  await page.waitForURL('**/applications/guestbook-dev?notice=**');
  expect((await page.textContent('.notice')).includes('waits for approval'), 'the sync waits for approval');
  let request = '';
  for (let i = 0; i < 60 && !request; i++) {
    await page.reload();
    request = (await page.locator('table.requests tbody tr').first().getAttribute('data-request').catch(() => '')) || '';
    if (!request) await page.waitForTimeout(1000);
  }
  expect(request !== '', `a request is listed (${request})`);
  await page.screenshot({ path: `${shots}/approvals.png`, fullPage: true });
  await page.click('nav button');
  await page.waitForURL('**/login');
  await page.fill('input[name=username]', process.env.APPROVER_USER);
  await page.fill('input[name=password]', process.env.APPROVER_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL('**/applications**');
  await page.goto(`${base}/applications/guestbook-dev/approvals/${request}`);
  expect(await page.locator('h2:has-text("What it would change")').isVisible(), 'the request shows its change');
  await page.screenshot({ path: `${shots}/request.png`, fullPage: true });
  await page.fill('#approve >> xpath=.. >> input[name=comment]', 'looks right');
  await page.click('#approve');
  let phase = '';
  for (let i = 0; i < 60 && phase !== 'Executed'; i++) {
    await page.waitForTimeout(1000);
    await page.reload();
    phase = (await page.textContent('#request-phase')).trim();
  }
  expect(phase === 'Executed', `the approved request ran (${phase})`);
  expect((await page.textContent('.decisions')).includes('looks right'), 'the decision and its comment are shown');
  await page.click('nav button');
  await page.waitForURL('**/login');

  // A read-only user: no Sync button, and the API refuses anyway.
  await page.fill('input[name=username]', process.env.VIEWER_USER);
  await page.fill('input[name=password]', process.env.VIEWER_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL('**/applications**');
  await page.goto(`${base}/applications/${app}`);
  expect((await page.locator('#sync').count()) === 0, 'no Sync button for a read-only user');
  const status = await page.evaluate(async (name) => {
    const r = await fetch(`/api/v1/applications/${name}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    return r.status;
  }, app);
  expect(status === 403, `the API refuses the read-only user's sync (${status})`);
  await page.goto(`${base}/applications/${app}/resource?group=apps&kind=Deployment&namespace=${app}&resourceName=guestbook`);
  expect((await page.locator('#resource-actions').count()) === 0, 'no resource actions for a read-only user');
  await page.goto(`${base}/applications/${app}`);
  await page.screenshot({ path: `${shots}/read-only.png`, fullPage: true });

  // A narrow screen: nothing wider than the window.
  const narrow = await browser.newContext({ viewport: { width: 390, height: 844 } });
  await narrow.addCookies(await main.cookies());
  const phone = await narrow.newPage();
  for (const [path, shot] of [
    ['/applications', 'narrow-applications'],
    [`/applications/${app}`, 'narrow-application'],
    [`/applications/${app}/diff?view=split`, 'narrow-diff'],
    ['/applications/guestbook-slow?resources=list', 'narrow-resources'],
  ]) {
    await phone.goto(`${base}${path}`);
    const [wide, inner] = await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    expect(wide <= inner, `${path} fits 390 px (${wide} <= ${inner})`);
    await phone.screenshot({ path: `${shots}/${shot}.png`, fullPage: true });
  }
  await narrow.close();

  // Single sign-on: the provider logs its user in, groups map to a role.
  await page.click('nav button');
  await page.waitForURL('**/login');
  await page.click('#sso');
  await page.waitForURL('**/applications**');
  expect((await page.textContent('nav .who')).includes('alice'), `logged in through the provider (${await page.textContent('nav .who')})`);
  expect(await page.locator(`tr[data-app="${app}"]`).count() === 1, 'the single sign-on user sees the apps its group may get');
} finally {
  await browser.close();
}

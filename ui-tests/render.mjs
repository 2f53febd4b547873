// Times pages of Berth's web UI in a real browser (Debian's Chromium,
// headless): for each path, ROUNDS fresh loads with a session cookie, and
// the medians of the first contentful paint, the load event, and the bytes
// transferred (the page and everything it loads). Used by the benchmarks
// (`cargo bench -p berth-server --bench list` and `--bench tree`).
//
// BERTH_URL, TOKEN (a session token), PATHS (comma-separated), ROUNDS
// (default 5), CHROMIUM (default /usr/bin/chromium). Prints one JSON line
// per path.
import { chromium } from 'playwright-core';

const base = process.env.BERTH_URL;
const token = process.env.TOKEN;
const paths = (process.env.PATHS || '/applications').split(',');
const rounds = Number(process.env.ROUNDS || 5);

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
try {
  const { hostname } = new URL(base);
  for (const path of paths) {
    const fcp = [];
    const load = [];
    const bytes = [];
    let nodes = 0;
    for (let i = 0; i < rounds; i++) {
      // A fresh context each round: nothing cached.
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await context.addCookies([{ name: 'argocd.token', value: token, domain: hostname, path: '/' }]);
      const page = await context.newPage();
      await page.goto(`${base}${path}`, { waitUntil: 'load', timeout: 120000 });
      // The paint entry can land just after the load event.
      const m = await page.evaluate(async () => {
        for (let t = 0; t < 50 && !performance.getEntriesByName('first-contentful-paint').length; t++) {
          await new Promise((r) => setTimeout(r, 20));
        }
        const nav = performance.getEntriesByType('navigation')[0];
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        const res = performance.getEntriesByType('resource');
        return {
          fcp: paint ? paint.startTime : -1,
          load: nav.loadEventEnd,
          bytes: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
          nodes: document.getElementsByTagName('*').length,
        };
      });
      if (!page.url().startsWith(`${base}${path.split('?')[0]}`)) {
        throw new Error(`${path} went to ${page.url()}: is the token valid?`);
      }
      fcp.push(m.fcp);
      load.push(m.load);
      bytes.push(m.bytes);
      nodes = m.nodes;
      await context.close();
    }
    console.log(JSON.stringify({
      path,
      rounds,
      fcp_ms: Math.round(median(fcp)),
      load_ms: Math.round(median(load)),
      bytes: median(bytes),
      elements: nodes,
    }));
  }
} finally {
  await browser.close();
}

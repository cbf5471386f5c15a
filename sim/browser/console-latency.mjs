// `outpost-sim bench console`'s browser half: logs in to the console in Chromium and measures,
// for every event the hub streams for `seconds`, the delay from its hub commit (`received`) to
// its arrival in the page through the console's own stream code, after the next frame.
//
// Input: OUTPOST_CONSOLE (JSON): { url, user, password, seconds }. Prints one JSON document.

import { chromium } from 'playwright-core';

const input = JSON.parse(process.env.OUTPOST_CONSOLE);
const browser = await chromium.launch({
  executablePath: process.env.OUTPOST_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(input.url);
  await page.getByLabel('User').fill(input.user);
  await page.getByLabel('Password').fill(input.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[data-testid=who]').waitFor();
  const delays = await page.evaluate(async (seconds) => {
    const { subscribe } = await import('/console/api.js');
    const out = [];
    const stop = subscribe('kinds=event', (kind, data) => {
      if (kind !== 'event' || !data.received) return;
      const committed = Date.parse(data.received);
      requestAnimationFrame(() => out.push(Date.now() - committed));
    });
    await new Promise((r) => setTimeout(r, seconds * 1000));
    stop();
    return out;
  }, input.seconds);
  delays.sort((a, b) => a - b);
  const at = (q) => (delays.length ? delays[Math.min(delays.length - 1, Math.floor(q * delays.length))] : null);
  console.log(JSON.stringify({
    method: 'Chromium logged in as a viewer; the console\'s stream code (kinds=event); delay = after the next frame − hub commit',
    items: delays.length,
    p50_ms: at(0.5),
    p99_ms: at(0.99),
    max_ms: at(1),
  }));
} finally {
  await browser.close();
}

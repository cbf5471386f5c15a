// The console in a real browser: Playwright (playwright-core) driving Debian's Chromium headless
// against a site that sim/tests/console.rs started (hub, edge, slot machine simulator).
//
// Input: OUTPOST_CONSOLE (JSON): { url, users: {role: {name, password}}, egm_control, machines,
// screenshots }. Prints one line per check; exits non-zero at the first that fails, naming it.

import { chromium } from 'playwright-core';

const site = JSON.parse(process.env.OUTPOST_CONSOLE);
const CHROMIUM = process.env.OUTPOST_CHROMIUM || '/usr/bin/chromium';
const [first, second] = site.machines;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

async function sim(path, body) {
  const response = await fetch(`http://${site.egm_control}${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`simulator ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

const machineState = async (address) => (await sim('/state')).egms.find((m) => m.address === address);

// Collects the page's script errors in `page.errors`.
function track(page) {
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

async function loggedIn(role, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, timezoneId: 'Europe/Madrid' });
  const page = track(await context.newPage());
  await page.goto(site.url);
  const user = site.users[role];
  await page.getByLabel('User').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[data-testid=who]').waitFor();
  return page;
}

const shot = (page, name) => page.screenshot({ path: `${site.screenshots}/${name}.png`, fullPage: true });

try {
  // A wrong password is refused, in words.
  {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(site.url);
    await page.getByLabel('User').fill(site.users.viewer.name);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor();
    check((await page.getByRole('alert').textContent()).includes('wrong user name or password'), 'a wrong password is refused');
    await shot(page, 'login-refused');
    await context.close();
  }

  // Each role logs in and sees what it may use.
  for (const role of ['viewer', 'operator', 'supervisor', 'admin']) {
    const page = await loggedIn(role);
    const who = await page.locator('[data-testid=who]').textContent();
    check(who.includes(`(${role})`), `${role} logs in and is named with the role (${who})`);
    const audit = await page.getByRole('link', { name: 'Audit log' }).count();
    check((audit === 1) === (role === 'supervisor' || role === 'admin'), `${role} ${audit ? 'sees' : 'does not see'} the audit log`);
    await page.context().close();
  }

  // The floor shows the simulator's machines.
  const operator = await loggedIn('operator');
  const floor = operator;
  await floor.locator(`.tile[data-device="${first}"]`).waitFor();
  const tiles = await floor.locator('.tile').count();
  const simulated = (await sim('/state')).egms.length;
  check(tiles === simulated, `the floor shows the simulator's ${simulated} machines (${tiles} tiles)`);
  await shot(floor, 'floor');

  // Disabling a machine from its page changes its tile on the floor live, and the simulator.
  const machinePage = track(await floor.context().newPage());
  await machinePage.goto(`${site.url}#/machine/edge-01/${first}`);
  await machinePage.getByRole('button', { name: 'Disable play' }).click();
  await floor.locator(`.tile[data-device="${first}"][data-play="disabled"]`).waitFor({ timeout: 15000 });
  check(true, `disabling ${first} changes its tile live (no reload)`);
  check((await machineState(1)).play_enabled === false, `the simulator's ${first} is disabled`);
  await machinePage.locator('[data-testid=commands] tr[data-status=succeeded]').first().waitFor({ timeout: 10000 });
  check(true, 'the command is listed as succeeded on the machine page');
  await machinePage.getByRole('button', { name: 'Enable play' }).click();
  await floor.locator(`.tile[data-device="${first}"][data-play="enabled"]`).waitFor({ timeout: 15000 });
  check((await machineState(1)).play_enabled === true, `enabled again, tile and simulator`);

  // A bill inserted in the simulator appears in the machine's transaction log within 2 s.
  const bills = machinePage.locator('[data-testid=transactions] tr[data-type="sas.bill"]');
  const before = await bills.count();
  const inserted = Date.now();
  await sim('/bill', { address: 1, credits: 500 });
  await machinePage.waitForFunction(
    (n) => document.querySelectorAll('[data-testid=transactions] tr[data-type="sas.bill"]').length > n,
    before,
    { timeout: 2000, polling: 50 },
  );
  const latency = Date.now() - inserted;
  check(latency <= 2000, `a bill inserted in the simulator is in the machine's log after ${latency} ms (goal 2000 ms)`);
  console.log(`measure: bill_to_console_ms=${latency}`);
  await shot(machinePage, 'machine');

  // An opened door raises an alert, acknowledged from the alerts page.
  await sim('/exception', { address: 2, code: 0x11 });
  await floor.locator(`.tile[data-device="${second}"][data-status="door_open"]`).waitFor({ timeout: 10000 });
  check(true, `an opened door shows on ${second}'s tile`);
  const alerts = machinePage;
  await alerts.goto(`${site.url}#/alerts`);
  const row = alerts.locator(`tr[data-rule="door_open_out_of_hours"][data-device="${second}"]`);
  await row.waitFor({ timeout: 10000 });
  alerts.once('dialog', (dialog) => dialog.accept('checked by the browser test'));
  await row.getByRole('button', { name: 'Acknowledge' }).click();
  await alerts.waitForFunction(
    (device) => [...document.querySelectorAll(`tr[data-device="${device}"]`)].some((r) => r.textContent.includes('checked by the browser test')),
    second,
    { timeout: 10000 },
  );
  check(true, 'the door alert fires and is acknowledged with a note');
  await shot(alerts, 'alerts');
  await sim('/exception', { address: 2, code: 0x12 });

  for (const page of ['fleet', 'handpays', 'reports']) {
    await alerts.goto(`${site.url}#/${page}`);
    await alerts.locator('h1').waitFor();
    await alerts.waitForTimeout(500);
    await shot(alerts, page);
    if (page === 'fleet') {
      const edge = await alerts.locator('[data-testid=edges] tr[data-edge="edge-01"]').textContent();
      check(edge.includes('connected'), 'the fleet shows the edge connected');
    }
  }
  check(floor.errors.length === 0 && alerts.errors.length === 0, `no script errors (${[...floor.errors, ...alerts.errors].join('; ')})`);

  // A viewer cannot send a command: no button, and the API refuses it.
  const viewer = await loggedIn('viewer');
  await viewer.goto(`${site.url}#/machine/edge-01/${first}`);
  await viewer.locator('[data-testid=machine-state]').waitFor();
  check((await viewer.getByRole('button', { name: 'Disable play' }).count()) === 0, 'a viewer has no command buttons');
  const refused = await viewer.evaluate(async (device) => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/commands', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token },
      body: JSON.stringify({ edge: 'edge-01', device, op: 'disable' }),
    });
    return response.status;
  }, first);
  check(refused === 403, `the API refuses a viewer's command (${refused})`);
  const forged = await viewer.evaluate(async (device) => (await fetch('/api/v1/commands', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ edge: 'edge-01', device, op: 'disable' }),
  })).status, first);
  check(forged === 403, `a change without the CSRF token is refused (${forged})`);

  // The supervisor's audit log names who did what.
  const supervisor = await loggedIn('supervisor');
  await supervisor.goto(`${site.url}#/audit`);
  await supervisor.locator('[data-testid=audit] tbody tr').first().waitFor();
  const audit = await supervisor.locator('[data-testid=audit]').textContent();
  check(audit.includes('POST /api/v1/commands') && audit.includes(site.users.operator.name), 'the audit log names the operator who sent the commands');
  check(audit.includes('/api/v1/alerts/{id}/acknowledge'), 'the audit log has the acknowledgement');
  await shot(supervisor, 'audit');

  // Phone-sized screens.
  const phone = await loggedIn('operator', { width: 390, height: 844 });
  await phone.locator('.tile').first().waitFor();
  await shot(phone, 'floor-phone');
  await phone.goto(`${site.url}#/machine/edge-01/${first}`);
  await phone.locator('[data-testid=machine-state]').waitFor();
  await shot(phone, 'machine-phone');
  const wide = await phone.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 400, `the machine page fits a phone's width (${wide} px)`);

  // Logging out ends the session.
  await phone.getByRole('button', { name: 'Log out' }).click();
  await phone.getByRole('button', { name: 'Log in' }).waitFor();
  const after = await phone.evaluate(async () => (await fetch('/api/v1/session')).status);
  check(after === 401, 'after logging out the session is gone');
  console.log('all console checks passed');
} catch (e) {
  console.error(e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}

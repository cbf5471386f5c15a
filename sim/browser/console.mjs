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

async function tvSim(path) {
  const response = await fetch(`http://${site.tv_control}${path}`);
  if (!response.ok) throw new Error(`TV simulator ${path}: ${response.status}`);
  return response.json();
}

// An uncompressed 24-bit BMP of noise, far over the API's 200 KiB photo limit.
function noisyBmp(width, height) {
  const row = Math.ceil((width * 3) / 4) * 4;
  const buffer = Buffer.alloc(54 + row * height);
  buffer.write('BM', 0);
  buffer.writeUInt32LE(buffer.length, 2);
  buffer.writeUInt32LE(54, 10);
  buffer.writeUInt32LE(40, 14);
  buffer.writeInt32LE(width, 18);
  buffer.writeInt32LE(height, 22);
  buffer.writeUInt16LE(1, 26);
  buffer.writeUInt16LE(24, 28);
  buffer.writeUInt32LE(row * height, 34);
  for (let i = 54; i < buffer.length; i++) buffer[i] = (i * 7919) % 251;
  return buffer;
}

// Sets a TV's volume through the API, as the page's session, and waits until the page shows it.
async function setVolume(page, device, level) {
  const status = await page.evaluate(async ({ device, level }) => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/commands', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token },
      body: JSON.stringify({ edge: 'edge-01', device, op: 'volume', args: { level } }),
    });
    return response.status;
  }, { device, level });
  if (status >= 300) throw new Error(`setting ${device}'s volume to ${level}: HTTP ${status}`);
  await page.locator('[data-testid=tv-volume]', { hasText: new RegExp(`^${level}$`) }).waitFor({ timeout: 15000 });
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

  // A machine whose link is down takes meters entered by hand, from its page.
  await sim('/power', { address: 2, off_ms: 20000 });
  await floor.locator(`.tile[data-device="${second}"][data-status="comms_lost"]`).waitFor({ timeout: 20000 });
  const manual = alerts;
  await manual.goto(`${site.url}#/machine/edge-01/${second}`);
  const form = manual.getByRole('region', { name: 'Manual meters' });
  await form.getByLabel('Read at').fill(new Date(Date.now() - 60000 - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16));
  await form.getByLabel('coin in').fill('1234');
  await form.getByLabel('Reason').fill('link down, read at the machine by the browser test');
  await form.getByRole('button', { name: 'Store reading' }).click();
  await form.getByRole('status').waitFor({ timeout: 10000 });
  check((await form.getByRole('status').textContent()).includes('stored'), `meters entered by hand on ${second} while its link is down are stored`);
  check((await form.locator('table').textContent()).includes('coin_in 1234'), 'the entry is in the machine\'s trail');

  // The remote pad sets a TV's volume; the simulator has it, and the new screenshot shows it.
  const tv = alerts;
  await tv.goto(`${site.url}#/tv/edge-01/tv-2`);
  await tv.locator('[data-testid=tv-state]').waitFor();
  await tv.getByLabel('Volume', { exact: true }).fill('12');
  await tv.getByRole('button', { name: 'Set volume' }).click();
  await tv.locator('[data-testid=pad-result][data-status=succeeded]').waitFor({ timeout: 15000 });
  check((await tvSim('/state'))[1].volume === 12, "the remote pad set the TV simulator's volume to 12");
  await tv.locator('[data-testid=tv-volume]', { hasText: '12' }).waitFor({ timeout: 10000 });
  check(true, 'the TV page shows volume 12 from its telemetry');
  const previous = await tv.locator('[data-testid=screenshot]').getAttribute('src').catch(() => null);
  await tv.getByRole('button', { name: 'Take screenshot' }).click();
  await tv.waitForFunction(
    (old) => { const img = document.querySelector('[data-testid=screenshot]'); return img && img.complete && img.naturalWidth > 0 && img.getAttribute('src') !== old; },
    previous,
    { timeout: 15000 },
  );
  // The simulator draws the volume as a white bar from x = 10, 20 px per step, at y 10..21.
  const bar = await tv.evaluate(() => {
    const img = document.querySelector('[data-testid=screenshot]');
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const g = canvas.getContext('2d');
    g.drawImage(img, 0, 0);
    const white = (x) => { const [r, gr, b] = g.getImageData(x, 15, 1, 1).data; return r > 200 && gr > 200 && b > 200; };
    let end = 10;
    while (end < canvas.width && white(end)) end++;
    return end;
  });
  check(bar === 10 + 12 * 20, `the new screenshot shows volume 12 (bar ends at x = ${bar}, expected ${10 + 12 * 20})`);
  await shot(tv, 'tv');

  // A card made in the editor (dragged into place) survives a reload.
  await tv.getByRole('button', { name: 'Add card' }).click();
  await tv.getByRole('button', { name: 'Add card' }).click();
  const titles = tv.getByLabel('Title');
  await titles.nth(0).fill('Second');
  await titles.nth(1).fill('Lobby check');
  const editing = tv.locator('.card.editing').nth(1);
  await editing.getByRole('button', { name: 'Add field' }).click();
  await editing.getByRole('button', { name: 'Add button' }).click();
  // Drag the second card's handle above the first card, as a hand would (in steps). Both cards
  // are brought into the viewport first (the first centred, clear of the sticky header) and
  // measured once laid out: the mouse works in viewport coordinates, and below the fold (where
  // the editor often was) it dragged nothing.
  await tv.locator('.card.editing').nth(0).evaluate((card) => card.scrollIntoView({ block: 'center' }));
  await tv.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  const from = await tv.locator('.card.editing .drag').nth(1).boundingBox();
  const to = await tv.locator('.card.editing').nth(0).boundingBox();
  // SortableJS checks the pointer's place on a timer (every 50 ms in its fallback mode): on a
  // loaded machine, rest over the target a while before letting go.
  await tv.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
  await tv.mouse.down();
  for (let i = 1; i <= 30; i++) {
    await tv.mouse.move(from.x + from.width / 2, from.y + (to.y + 5 - from.y) * (i / 30));
    await tv.waitForTimeout(30);
  }
  // Held over the first card until the editor shows the dragged card's place there, as a hand
  // waits to see it before letting go (a loaded machine can take a while to get there).
  const placed = () => tv.evaluate(() => !!document.querySelector('.card-list > .card.editing:first-child.sortable-chosen'));
  for (let i = 0; i < 100 && !(await placed()); i++) {
    await tv.mouse.move(from.x + from.width / 2 + (i % 2 ? 2 : -2), to.y + 5);
    await tv.waitForTimeout(100);
  }
  check(await placed(), 'the held card takes the first place while it is dragged');
  // The TV's state changes while the card is held (its telemetry renders the page again): the
  // card stays where the hand put it. Watched in the page, as SortableJS would put it back at
  // the next pointer move and hide the fault.
  await tv.evaluate(() => {
    const list = document.querySelector('.card-list');
    window.heldCardLeftItsPlace = 0;
    window.heldCardWatch = new MutationObserver(() => {
      if (list.querySelector('.sortable-chosen') !== list.firstElementChild) window.heldCardLeftItsPlace++;
    });
    window.heldCardWatch.observe(list, { childList: true });
  });
  await setVolume(tv, 'tv-2', 11);
  const left = await tv.evaluate(() => {
    window.heldCardWatch.disconnect();
    return window.heldCardLeftItsPlace;
  });
  check(left === 0, `the held card keeps its place while the page updates live (left it ${left} times)`);
  await tv.mouse.up();
  await tv
    .waitForFunction(() => document.querySelector('.card.editing input')?.value === 'Lobby check', null, { timeout: 10000 })
    .catch(() => {});
  const order = await tv.getByLabel('Title').evaluateAll((inputs) => inputs.map((i) => i.value));
  check(order[0] === 'Lobby check', `a card dragged to the top moves there (${order.join(', ')})`);
  await setVolume(tv, 'tv-2', 12);
  await tv.getByRole('button', { name: 'Save cards' }).click();
  await tv.waitForTimeout(500);
  await tv.reload();
  const card = tv.locator('[data-testid=cards] [data-card="Lobby check"]');
  await card.waitFor({ timeout: 10000 });
  check((await card.textContent()).includes('12'), 'the saved card is there after a reload, its Volume field showing 12');
  const shown = await tv.locator('[data-testid=cards] .card').evaluateAll((cards) => cards.map((c) => c.dataset.card));
  check(shown[0] === 'Lobby check' && shown[1] === 'Second', `the cards keep their order (${shown.join(', ')})`);
  await card.getByRole('button', { name: 'Quiet' }).click();
  await tv.locator('[data-testid=tv-volume]', { hasText: /^3$/ }).waitFor({ timeout: 15000 });
  check((await tvSim('/state'))[1].volume === 3, "the card's button set the volume to 3");

  // A bulk operation on the lobby group: two TVs done, the unreachable one skipped.
  await tv.goto(`${site.url}#/tvs`);
  await tv.locator('[data-testid=tv-wall] .tile').first().waitFor();
  const bulk = tv.getByRole('region', { name: 'Bulk operation' });
  await bulk.getByLabel('Group').selectOption('lobby');
  await bulk.getByLabel('Operation').selectOption('volume');
  await bulk.getByLabel('Arguments').fill('{"level": 10}');
  await bulk.getByRole('button', { name: 'Send to the group' }).click();
  await tv.locator('[data-testid=batch-progress]', { hasText: '2 done' }).waitFor({ timeout: 20000 });
  const progress = await tv.locator('[data-testid=batch-progress]').textContent();
  check(progress.includes('tag=lobby') && progress.includes('1 skipped (offline)'), `the group's progress: ${progress}`);
  const volumes = (await tvSim('/state')).map((t) => t.volume);
  check(volumes.every((v) => v === 10), `both simulated TVs are at volume 10 (${volumes.join(', ')})`);
  await tv.locator('[data-testid=tv-wall] .tile[data-device="tv-2"] img').waitFor({ timeout: 10000 });
  await shot(tv, 'tv-wall');

  // The pad power-cycles tv-1 through the relay that powers it.
  const boots = (await tvSim('/state'))[0].boots;
  await tv.goto(`${site.url}#/tv/edge-01/tv-1`);
  await tv.getByLabel('Relay').selectOption('relay-1');
  await tv.getByRole('button', { name: 'Power cycle' }).click();
  await tv.locator('[data-testid=pad-result][data-status=succeeded]').waitFor({ timeout: 20000 });
  check((await tvSim('/state'))[0].boots > boots, 'the pad power-cycled tv-1 through relay-1 (the simulated TV booted again)');

  // A visit created with a photo (too large, so scaled down in the browser) becomes active.
  await tv.goto(`${site.url}#/visits`);
  await tv.getByLabel('Guest name').fill('Browser Test Guest');
  await tv.getByLabel('Photo').setInputFiles({ name: 'guest.bmp', mimeType: 'image/bmp', buffer: noisyBmp(1400, 1000) });
  await tv.locator('[data-testid=photo-note]', { hasText: 'scaled down' }).waitFor({ timeout: 10000 });
  check(true, `a 4 MB photo is scaled down before upload (${await tv.locator('[data-testid=photo-note]').textContent()})`);
  await tv.getByRole('button', { name: 'Create visit' }).click();
  await tv.locator('tr[data-guest="Browser Test Guest"][data-state="active"]').waitFor({ timeout: 30000 });
  check(true, 'the visit becomes active in HikCentral');
  await shot(tv, 'visits');

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
  // What every open page showed when it failed.
  let n = 0;
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      await page.screenshot({ path: `${site.screenshots}/failed-${++n}.png`, fullPage: true }).catch(() => {});
      console.error(`failed-${n}.png: ${page.url()} ${(page.errors || []).join('; ')}`);
    }
  }
} finally {
  await browser.close();
}

// The casino floor: the grid of machines, a machine's page, the handpay queue and the reports.

import { html, useState, useEffect, useRef } from './vendor/htm-preact-standalone.module.js';
import { get, post, subscribe, LIVE_STATE, may } from './api.js';
import { useData, throttle, time, clock, money, Problem, downloadCsv } from './util.js';

const machineHref = (d) => `#/machine/${encodeURIComponent(d.edge)}/${encodeURIComponent(d.device)}`;

async function loadFloor() {
  const [devices, day] = await Promise.all([
    get('/api/v1/devices?kind=egm&limit=10000'),
    get('/api/v1/sites/all/days/today'),
  ]);
  const lines = {};
  for (const m of day.machines) lines[`${m.edge}/${m.device}`] = m;
  return { devices: devices.devices, lines, currency: day.figures.currency, day };
}

function Tile({ d, line, currency }) {
  const e = d.egm || {};
  const flags = [];
  if (e.play_enabled === false) flags.push('disabled');
  if (e.doors_open && e.doors_open.length) flags.push(`door: ${e.doors_open.join(', ')}`);
  if (e.tilt) flags.push(`tilt: ${e.tilt.name}`);
  if (e.handpay_pending) flags.push(`handpay ${money(e.handpay_pending, currency)}`);
  return html`
    <a class="tile status-${d.status}" href=${machineHref(d)} data-device=${d.device} data-status=${d.status}
       data-play=${e.play_enabled === false ? 'disabled' : 'enabled'} aria-label="${d.device}: ${d.status}">
      <strong>${d.device}</strong>
      <span class="status">${d.status.replace('_', ' ')}</span>
      <span>credits ${money(e.credits_amount, currency)}</span>
      <span>net win today ${money(line && line.net_win, currency)}</span>
      ${flags.map((f) => html`<span class="flag">${f}</span>`)}
    </a>`;
}

export function Floor() {
  const [floor, error, reload, update] = useData(loadFloor);
  const [site, setSite] = useState('');
  useEffect(() => {
    const refigure = throttle(reload, 2000);
    return subscribe(LIVE_STATE, (kind, data) => {
      if (kind === 'reset') return reload();
      if (kind === 'figures') return refigure();
      if (kind === 'device' && data.kind === 'egm') {
        update((f) => {
          if (!f) return f;
          const at = f.devices.findIndex((d) => d.edge === data.edge && d.device === data.device);
          const devices = [...f.devices];
          if (at >= 0) devices[at] = data;
          else devices.push(data);
          return { ...f, devices };
        });
      }
    });
  }, []);
  if (!floor) return html`<${Problem} error=${error} /><p class="loading">Loading the floor…</p>`;
  const sites = [...new Set(floor.devices.map((d) => d.site))];
  const shown = floor.devices.filter((d) => !site || d.site === site);
  const count = (s) => shown.filter((d) => d.status === s).length;
  const f = floor.day.figures;
  return html`
    <h1>Floor</h1>
    <${Problem} error=${error} />
    <div class="toolbar">
      <label>Site <select value=${site} onChange=${(e) => setSite(e.target.value)}>
        <option value="">all</option>
        ${sites.map((s) => html`<option value=${s}>${s}</option>`)}
      </select></label>
      <span>${`${shown.length} machines: ${count('online')} online, ${count('comms_lost')} comms lost, ${count('door_open')} door open, ${count('handpay')} handpay`}</span>
      <span>${`today (${floor.day.day}): net win ${money(f.net_win, f.currency)}, coin in ${money(f.coin_in, f.currency)}, ${floor.day.discrepancies} discrepancies`}</span>
    </div>
    <div class="grid" data-testid="floor">
      ${shown.map((d) => html`<${Tile} key=${d.edge + '/' + d.device} d=${d} line=${floor.lines[d.edge + '/' + d.device]} currency=${floor.currency} />`)}
    </div>`;
}

function describe(ev) {
  const m = (a) => money(a, ev.currency);
  switch (ev.type) {
    case 'sas.bill': return `bill ${m(ev.amount)}`;
    case 'sas.game_start': return `game start${ev.wager ? ', wager ' + m(ev.wager) : ''}`;
    case 'sas.game_end': return `game end${ev.win ? ', win ' + m(ev.win) : ''}`;
    case 'sas.handpay_pending': return `handpay pending ${m(ev.amount)}`;
    case 'sas.handpay_reset': return 'handpay reset';
    case 'sas.door': return `${ev.door} door ${ev.open ? 'opened' : 'closed'}`;
    case 'sas.power': return `power ${ev.on ? 'on' : 'off'}`;
    case 'sas.ticket': return `ticket ${ev.direction} (${ev.step})`;
    case 'sas.link': return ev.up ? 'comms restored' : 'comms lost';
    case 'sas.exception': return ev.name;
    case 'command.result': return `command ${ev.outcome}${ev.detail ? ': ' + ev.detail : ''}`;
    default: return ev.type;
  }
}

const TRANSACTION_TYPES = new Set([
  'sas.bill', 'sas.game_start', 'sas.game_end', 'sas.handpay_pending', 'sas.handpay_reset', 'sas.door',
  'sas.power', 'sas.ticket', 'sas.link', 'sas.exception', 'command.result',
]);

function HoursChart({ hours, starts, ends }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || !window.uPlot) return;
    const xs = hours.map((h) => new Date(h.hour).getTime() / 1000);
    const num = (v) => (v == null ? null : Number(v));
    const plot = new window.uPlot(
      {
        width: Math.min(box.current.clientWidth || 600, 900),
        height: 220,
        series: [
          {},
          { label: 'net win', stroke: '#2b7a2b', width: 2 },
          { label: 'coin in', stroke: '#3060b0', width: 1 },
        ],
        scales: { x: { time: true, range: () => [new Date(starts).getTime() / 1000, new Date(ends).getTime() / 1000] } },
        axes: [{}, { size: 70 }],
      },
      [xs, hours.map((h) => num(h.figures.net_win)), hours.map((h) => num(h.figures.coin_in))],
      box.current,
    );
    return () => plot.destroy();
  }, [hours, starts, ends]);
  return html`<div ref=${box} class="chart" aria-label="Net win and coin in by hour"></div>`;
}

function Commands({ session, edge, device }) {
  const [ops] = useData(() => get('/api/v1/operations?kind=egm'));
  const [recent, error, reload] = useData(() => get(`/api/v1/commands?edge=${edge}&device=${device}&limit=10`), [edge, device]);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    const t = setInterval(reload, 1000);
    return () => clearInterval(t);
  }, [reload]);
  const send = async (op, args) => {
    setProblem(null);
    try {
      await post('/api/v1/commands', { edge, device, op, args });
      reload();
    } catch (e) {
      setProblem(e.message);
    }
  };
  const buttons = [
    ['enable', {}, 'Enable play'],
    ['disable', {}, 'Disable play'],
    ['bill_acceptor', { enable: true }, 'Bill acceptor on'],
    ['bill_acceptor', { enable: false }, 'Bill acceptor off'],
    ['meter_refresh', {}, 'Refresh meters'],
  ];
  const known = new Set((ops || []).map((o) => o.op));
  return html`
    <section aria-label="Commands">
      <h2>Commands</h2>
      ${may(session, 'operator')
        ? html`<div class="buttons">
            ${buttons.filter(([op]) => !ops || known.has(op)).map(([op, args, label]) => html`<button onClick=${() => send(op, args)}>${label}</button>`)}
          </div>`
        : html`<p class="note">Your role (${session.role}) can see commands, not send them.</p>`}
      <${Problem} error=${problem || error} />
      <table class="compact" data-testid="commands">
        <thead><tr><th>issued</th><th>by</th><th>command</th><th>status</th><th>detail</th></tr></thead>
        <tbody>
          ${(recent ? recent.commands : []).map((c) => html`
            <tr data-status=${c.status}><td>${clock(new Date(c.created_ms).toISOString())}</td><td>${c.issuer}</td>
              <td>${c.op} ${Object.keys(c.args || {}).length ? JSON.stringify(c.args) : ''}</td>
              <td class="cmd-${c.status}">${c.status}</td><td>${c.detail || ''}</td></tr>`)}
        </tbody>
      </table>
    </section>`;
}

function Figures({ f }) {
  const rows = [
    ['coin in', f.coin_in], ['coin out', f.coin_out], ['jackpot', f.jackpot], ['drop', f.drop],
    ['tickets in', f.tickets_in], ['tickets out', f.tickets_out], ['net win', f.net_win],
    ['theoretical win', f.theoretical_win], ['actual hold', f.actual_hold_percent && f.actual_hold_percent + ' %'],
  ];
  return html`<dl class="figures">
    ${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${k === 'actual hold' ? v || '—' : money(v, f.currency)}</dd>`)}
    <dt>games</dt><dd>${f.games_played} played, ${f.games_won} won</dd>
  </dl>`;
}

const DEFAULT_METERS = ['coin_in', 'coin_out', 'jackpot', 'handpaid_cancelled_credits', 'total_drop', 'games_played', 'games_won'];

// Meters read at the machine by hand while its link is down, and the machine's trail of them.
function ManualMeters({ session, base, online, names }) {
  const [trail, error, reload] = useData(() => get(`${base}/meters/manual`), [base]);
  const [problem, setProblem] = useState(null);
  const [done, setDone] = useState(null);
  const meters = names.length ? names : DEFAULT_METERS;
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const values = {};
    for (const name of meters) {
      const v = form.get(`meter-${name}`);
      if (v !== '' && v !== null) values[name] = Number(v);
    }
    setProblem(null);
    setDone(null);
    try {
      const entry = await post(`${base}/meters/manual`, {
        read_at: new Date(form.get('read_at')).toISOString(),
        meters: values,
        reason: form.get('reason'),
      });
      setDone(`entry ${entry.id} stored${entry.applied ? ' and applied' : ''}`);
      e.target.reset();
      reload();
    } catch (err) {
      setProblem(err.message);
    }
  };
  const entries = Array.isArray(trail) ? trail : [];
  return html`<section aria-label="Manual meters">
    <h2>Manual meter entry</h2>
    ${online
      ? html`<p class="note">The machine is online: its meters are read electronically (Refresh meters). Enter them by hand only while its link is down.</p>`
      : may(session, 'operator') && html`<form class="form" onSubmit=${submit}>
          <label>Read at <input name="read_at" type="datetime-local" required /></label>
          ${meters.map((m) => html`<label>${m.replace(/_/g, ' ')} <input name=${'meter-' + m} type="number" min="0" step="1" /></label>`)}
          <label>Reason <input name="reason" required maxlength="500" /></label>
          <button type="submit">Store reading</button>
        </form>`}
    <${Problem} error=${problem || error} />
    ${done && html`<p class="ok" role="status">${done}</p>`}
    ${entries.length > 0 && html`<table class="compact"><thead><tr><th>entry</th><th>read at</th><th>meters</th><th>by</th><th>reason</th></tr></thead>
      <tbody>${entries.map((m) => html`<tr><td>${m.id}${m.corrects ? ` (corrects ${m.corrects})` : ''}</td><td>${time(m.read_at)}</td>
        <td>${Object.entries(m.meters).map(([k, v]) => `${k} ${v}`).join(', ')}</td><td>${m.by}</td><td>${m.reason}</td></tr>`)}</tbody></table>`}
  </section>`;
}

export function Machine({ session, edge, device }) {
  const base = `/api/v1/machines/${encodeURIComponent(edge)}/${encodeURIComponent(device)}`;
  const [detail, error, reload, setDetail] = useData(() => get(`/api/v1/devices/${edge}/${device}`), [edge, device]);
  const [log, logError, reloadLog, setLog] = useData(() => get(`${base}/transactions?limit=50`), [edge, device]);
  const [meters, , reloadMeters] = useData(
    () => get(`/api/v1/edges/${edge}/events?device=${device}&type=sas.meters&order=desc&limit=1`),
    [edge, device],
  );
  const [player] = useData(() => get(`${base}/session`).catch(() => null), [edge, device]);
  useEffect(() => {
    const refigure = throttle(reload, 2000);
    return subscribe(`kinds=event,device,figures&edge=${encodeURIComponent(edge)}&device=${encodeURIComponent(device)}`, (kind, data) => {
      if (kind === 'reset') {
        reload();
        reloadLog();
        return;
      }
      if (kind === 'device') setDetail((d) => (d ? { ...data, today: d.today } : d));
      if (kind === 'figures') refigure();
      if (kind === 'event' && TRANSACTION_TYPES.has(data.type)) {
        setLog((l) => (l ? { ...l, events: [data, ...l.events].slice(0, 200) } : l));
      }
      if (kind === 'event' && data.type === 'sas.meters') reloadMeters();
    });
  }, [edge, device]);
  if (!detail) return html`<${Problem} error=${error} /><p class="loading">Loading ${device}…</p>`;
  const e = detail.egm || {};
  const today = detail.today;
  const currency = today ? today.figures.currency : '';
  const reading = meters && meters.events[0];
  return html`
    <h1>${device} <span class="status status-${detail.status}" data-testid="machine-status">${detail.status.replace('_', ' ')}</span></h1>
    <p class="note">edge ${edge}, site ${detail.site}; last event ${time(detail.last_event)}</p>
    <${Problem} error=${error} />
    <div class="columns">
      <section aria-label="State">
        <h2>State</h2>
        <dl class="figures" data-testid="machine-state">
          <dt>play</dt><dd data-testid="play">${e.play_enabled === false ? 'disabled' : 'enabled'}</dd>
          <dt>bill acceptor</dt><dd>${e.bill_acceptor_enabled === false ? 'off' : 'on'}</dd>
          <dt>credits</dt><dd>${money(e.credits_amount, currency)}</dd>
          <dt>doors open</dt><dd>${e.doors_open && e.doors_open.length ? e.doors_open.join(', ') : 'none'}</dd>
          <dt>tilt</dt><dd>${e.tilt ? `${e.tilt.name} (${time(e.tilt.at)})` : 'none'}</dd>
          <dt>handpay pending</dt><dd>${e.handpay_pending ? money(e.handpay_pending, currency) : 'none'}</dd>
          <dt>denomination</dt><dd>${money(e.denomination, currency)} (${e.denomination_source})</dd>
          <dt>game</dt><dd>${e.identity ? `${e.identity.game_id} paytable ${e.identity.paytable}` : '—'}</dd>
          <dt>player</dt><dd>${player && player.player ? `${player.player} since ${time(player.opened)}` : 'none'}</dd>
        </dl>
      </section>
      <${Commands} session=${session} edge=${edge} device=${device} />
    </div>
    ${today && html`
      <section aria-label="Gaming day">
        <h2>Gaming day ${today.day} <small>(${time(today.starts)} – ${time(today.ends)})</small></h2>
        <div class="columns">
          <${Figures} f=${today.figures} />
          <div>
            <h3>Reconciliation: <span class="verdict-${today.reconciliation.verdict}">${today.reconciliation.verdict}</span></h3>
            <table class="compact"><thead><tr><th>check</th><th>metered</th><th>counted</th><th>difference</th><th></th></tr></thead>
              <tbody>${today.reconciliation.checks.map((c) => html`<tr><td>${c.name}</td><td>${c.metered}</td><td>${c.counted}</td><td>${c.difference}</td><td>${c.verdict}</td></tr>`)}</tbody>
            </table>
            ${today.reconciliation.reasons.map((r) => html`<p class="note">${r}</p>`)}
          </div>
        </div>
        <h3>Net win and coin in by hour</h3>
        <${HoursChart} hours=${today.hours} starts=${today.starts} ends=${today.ends} />
      </section>`}
    <div class="columns">
      <section aria-label="Transactions">
        <h2>Transactions</h2>
        <${Problem} error=${logError} />
        <table class="compact" data-testid="transactions">
          <thead><tr><th>time</th><th>seq</th><th>what</th></tr></thead>
          <tbody>${(log ? log.events : []).map((ev) => html`<tr data-type=${ev.type}><td>${clock(ev.time)}</td><td>${ev.seq}</td><td>${describe(ev)}</td></tr>`)}</tbody>
        </table>
      </section>
      <${ManualMeters} session=${session} base=${base} online=${e.online !== false} names=${reading ? Object.keys(reading.meters) : []} />
      <section aria-label="Meters">
        <h2>Meters <small>${reading ? `read ${time(reading.time)}` : ''}</small></h2>
        <table class="compact">
          <tbody>${reading ? Object.entries(reading.meters).map(([name, m]) => html`<tr><td>${name.replace(/_/g, ' ')}</td><td>${m.amount != null ? money(m.amount, reading.currency) : m.value}</td></tr>`) : html`<tr><td>No reading yet.</td></tr>`}</tbody>
        </table>
      </section>
    </div>`;
}

export function Handpays({ session }) {
  const [state, setState] = useState('open');
  const [list, error, reload] = useData(() => get(`/api/v1/handpays?state=${state}`), [state]);
  const [problem, setProblem] = useState(null);
  useEffect(() => subscribe(LIVE_STATE, (kind) => kind !== 'figures' && reload()), [reload]);
  const step = async (h, what) => {
    setProblem(null);
    try {
      await post(`/api/v1/handpays/${h.id}/${what}`, {});
      reload();
    } catch (e) {
      setProblem(e.message);
    }
  };
  const next = { pending: ['verify', 'operator'], verified: ['approve', 'supervisor'], approved: ['pay', 'operator'] };
  return html`
    <h1>Handpays</h1>
    <label>State <select value=${state} onChange=${(e) => setState(e.target.value)}>
      ${['open', 'pending', 'verified', 'approved', 'paid', 'reset_at_machine', ''].map((s) => html`<option value=${s}>${s || 'all'}</option>`)}
    </select></label>
    <${Problem} error=${problem || error} />
    <table data-testid="handpays">
      <thead><tr><th>machine</th><th>amount</th><th>reported</th><th>state</th><th>verified</th><th>approved</th><th>paid</th><th></th></tr></thead>
      <tbody>${(list || []).map((h) => {
        const [action, role] = next[h.state] || [];
        return html`<tr>
          <td><a href=${machineHref(h)}>${h.device}</a></td><td>${money(h.amount, h.currency)}</td><td>${time(h.pending)}</td>
          <td>${h.state}</td><td>${h.verified_by || ''}</td><td>${h.approved_by || ''}</td><td>${h.paid_by || ''}</td>
          <td>${action && may(session, role) ? html`<button onClick=${() => step(h, action)}>${action}</button>` : ''}</td></tr>`;
      })}</tbody>
    </table>`;
}

export function Reports() {
  const [site, setSite] = useState('all');
  const [day, setDay] = useState('today');
  const [report, error] = useData(() => get(`/api/v1/sites/${encodeURIComponent(site)}/days/${encodeURIComponent(day)}`), [site, day]);
  const [onlyOpen, setOnlyOpen] = useState(false);
  const lines = report ? report.machines.filter((m) => !onlyOpen || m.verdict === 'discrepancy') : [];
  const f = report && report.figures;
  return html`
    <h1>Reports</h1>
    <div class="toolbar">
      <label>Site <input value=${site} onChange=${(e) => setSite(e.target.value || 'all')} size="10" /></label>
      <label>Gaming day <input type="date" onChange=${(e) => setDay(e.target.value || 'today')} /></label>
      <label><input type="checkbox" checked=${onlyOpen} onChange=${(e) => setOnlyOpen(e.target.checked)} /> discrepancies only</label>
      <button disabled=${!report} onClick=${() => downloadCsv(`outpost-${site}-${report.day}.csv`, lines.map((m) => ({ ...m, currency: f.currency })))}>Download CSV</button>
    </div>
    <${Problem} error=${error} />
    ${report && html`
      <p>Site ${report.site}, gaming day ${report.day}: ${report.machines.length} machines, ${report.balanced} balanced,
        ${report.discrepancies} with a discrepancy, ${report.unverifiable} unverifiable.</p>
      <${Figures} f=${f} />
      <table data-testid="report">
        <thead><tr><th>edge</th><th>machine</th><th>net win</th><th>drop</th><th>reconciliation</th></tr></thead>
        <tbody>${lines.map((m) => html`<tr><td>${m.edge}</td><td><a href=${machineHref(m)}>${m.device}</a></td><td>${money(m.net_win, f.currency)}</td><td>${money(m.drop, f.currency)}</td><td class="verdict-${m.verdict}">${m.verdict}</td></tr>`)}</tbody>
      </table>`}`;
}

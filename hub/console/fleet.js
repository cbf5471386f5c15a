// The fleet: sites, their edges (connected, last seen, outbox backlog and age) and devices.

import { html, useEffect } from './vendor/htm-preact-standalone.module.js';
import { get, subscribe, LIVE_STATE } from './api.js';
import { useData, throttle, time, ago, Problem } from './util.js';

async function loadFleet() {
  const [edges, devices, alerts] = await Promise.all([
    get('/api/v1/edges'),
    get('/api/v1/devices?limit=10000'),
    get('/api/v1/alerts?state=firing'),
  ]);
  const sites = new Map();
  const site = (id) => {
    if (!sites.has(id)) sites.set(id, { id, edges: new Map(), alerts: 0 });
    return sites.get(id);
  };
  const byEdge = new Map(edges.map((e) => [e.id, e]));
  for (const d of devices.devices) {
    const s = site(d.site);
    if (!s.edges.has(d.edge)) s.edges.set(d.edge, { edge: byEdge.get(d.edge) || { id: d.edge }, devices: [] });
    s.edges.get(d.edge).devices.push(d);
  }
  for (const a of alerts) site(a.site).alerts += 1;
  return [...sites.values()];
}

function statusCounts(devices) {
  const counts = {};
  for (const d of devices) counts[d.status] = (counts[d.status] || 0) + 1;
  return Object.entries(counts).map(([s, n]) => `${n} ${s.replace('_', ' ')}`).join(', ');
}

export function Fleet() {
  const [sites, error, reload] = useData(loadFleet);
  useEffect(() => {
    const soon = throttle(reload, 1000);
    const timer = setInterval(reload, 5000);
    const stop = subscribe(LIVE_STATE, (kind) => (kind === 'device' || kind === 'alert' || kind === 'reset') && soon());
    return () => {
      clearInterval(timer);
      stop();
    };
  }, []);
  if (!sites) return html`<${Problem} error=${error} /><p class="loading">Loading the fleet…</p>`;
  return html`
    <h1>Fleet</h1>
    <${Problem} error=${error} />
    ${sites.map((s) => html`
      <section aria-label="Site ${s.id}" data-testid="site">
        <h2>Site ${s.id} ${s.alerts ? html`<a class="badge" href="#/alerts">${s.alerts} alerts firing</a>` : html`<span class="badge ok">no alerts</span>`}</h2>
        <table data-testid="edges">
          <thead><tr><th>edge</th><th>link</th><th>last seen</th><th>committed</th><th>outbox backlog</th><th>oldest unacknowledged</th><th>software</th><th>devices</th></tr></thead>
          <tbody>${[...s.edges.values()].map(({ edge: e, devices }) => html`
            <tr data-edge=${e.id}>
              <td>${e.id}</td>
              <td class=${e.connected ? 'ok' : 'bad'}>${e.connected ? 'connected' : 'offline'}</td>
              <td title=${time(e.last_seen)}>${ago(e.last_seen)}</td>
              <td>${e.committed_seq ?? '—'}</td>
              <td>${e.outbox_depth_events ?? '—'} events</td>
              <td>${e.oldest_unacked_seconds == null ? '—' : `${e.oldest_unacked_seconds.toFixed(1)} s`}</td>
              <td>${e.software || '—'}</td>
              <td>${devices.length}: ${statusCounts(devices)}</td>
            </tr>`)}
          </tbody>
        </table>
        <details><summary>Devices</summary>
          <table class="compact">
            <thead><tr><th>edge</th><th>device</th><th>kind</th><th>status</th><th>tags</th><th>last event</th></tr></thead>
            <tbody>${[...s.edges.values()].flatMap(({ devices }) => devices).map((d) => html`
              <tr><td>${d.edge}</td>
                <td>${d.kind === 'egm' ? html`<a href="#/machine/${d.edge}/${d.device}">${d.device}</a>` : d.device}</td>
                <td>${d.kind}</td><td class="status-${d.status}">${d.status}</td><td>${d.tags.join(', ')}</td><td>${ago(d.last_event)}</td></tr>`)}
            </tbody>
          </table>
        </details>
      </section>`)}`;
}

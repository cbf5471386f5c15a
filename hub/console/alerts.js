// Alerts (firing and resolved, acknowledge) and the audit log.

import { html, useState, useEffect } from './vendor/htm-preact-standalone.module.js';
import { get, post, subscribe, LIVE_STATE, may } from './api.js';
import { useData, time, Problem } from './util.js';

export function Alerts({ session }) {
  const [state, setState] = useState('firing');
  const [alerts, error, reload] = useData(() => get(`/api/v1/alerts?state=${state}`), [state]);
  const [problem, setProblem] = useState(null);
  useEffect(() => subscribe(LIVE_STATE, (kind) => (kind === 'alert' || kind === 'reset') && reload()), [reload]);
  const acknowledge = async (a) => {
    const note = prompt(`Acknowledge ${a.rule} on ${a.device}: a note (optional)`, '');
    if (note === null) return;
    setProblem(null);
    try {
      await post(`/api/v1/alerts/${encodeURIComponent(a.id)}/acknowledge`, { note });
      reload();
    } catch (e) {
      setProblem(e.message);
    }
  };
  return html`
    <h1>Alerts</h1>
    <label>Show <select value=${state} onChange=${(e) => setState(e.target.value)}>
      <option value="firing">firing</option><option value="resolved">resolved</option><option value="all">all</option>
    </select></label>
    <${Problem} error=${problem || error} />
    <table data-testid="alerts">
      <thead><tr><th>fired</th><th>rule</th><th>site</th><th>device</th><th>detail</th><th>state</th><th>acknowledged</th><th></th></tr></thead>
      <tbody>${(alerts || []).map((a) => html`
        <tr data-rule=${a.rule} data-device=${a.device} data-state=${a.state}>
          <td>${time(a.fired)}</td><td>${a.rule.replace(/_/g, ' ')}</td><td>${a.site}</td>
          <td>${a.device ? html`<a href="#/machine/${a.edge}/${a.device}">${a.device}</a>` : a.edge}</td>
          <td>${a.detail}</td><td class=${a.state === 'firing' ? 'bad' : 'ok'}>${a.state}${a.resolved ? ` (${time(a.resolved)})` : ''}</td>
          <td>${a.acknowledged_by ? `${a.acknowledged_by}, ${time(a.acknowledged)}${a.acknowledged_note ? ': ' + a.acknowledged_note : ''}` : ''}</td>
          <td>${!a.acknowledged_by && may(session, 'operator') ? html`<button onClick=${() => acknowledge(a)}>Acknowledge</button>` : ''}</td>
        </tr>`)}
      </tbody>
    </table>`;
}

export function Audit() {
  const [filter, setFilter] = useState({});
  const query = new URLSearchParams(Object.entries(filter).filter(([, v]) => v)).toString();
  const [records, error] = useData(() => get(`/api/v1/audit?${query}`), [query]);
  const field = (name, label, extra = {}) => html`
    <label>${label} <input name=${name} value=${filter[name] || ''} onChange=${(e) => setFilter({ ...filter, [name]: e.target.value })} ...${extra} /></label>`;
  return html`
    <h1>Audit log</h1>
    <div class="toolbar">
      ${field('who', 'Who', { size: 12 })}
      ${field('action', 'Action contains', { size: 16 })}
      <label>Status <select value=${filter.status || ''} onChange=${(e) => setFilter({ ...filter, status: e.target.value })}>
        ${['', '2xx', '4xx', '5xx'].map((s) => html`<option value=${s}>${s || 'any'}</option>`)}
      </select></label>
    </div>
    <${Problem} error=${error} />
    <table data-testid="audit">
      <thead><tr><th>time</th><th>who</th><th>via</th><th>action</th><th>path</th><th>status</th></tr></thead>
      <tbody>${(records || []).map((r) => html`
        <tr><td>${time(r.at)}</td><td>${r.who}</td><td>${r.via}</td><td>${r.method} ${r.route}</td><td>${r.path}</td>
          <td class=${r.status < 400 ? 'ok' : 'bad'}>${r.status}</td></tr>`)}
      </tbody>
    </table>`;
}

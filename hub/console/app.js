// The Outpost console: the shell (login, navigation, routing) and the pages it routes to.
// Pages are in their own modules; each fetches through the public API and listens to the live
// stream, so nothing needs a reload.

import { html, render, useState, useEffect } from './vendor/htm-preact-standalone.module.js';
import { api, get, setSession, whenLoggedOut, closeStreams, may } from './api.js';
import { Floor, Machine, Handpays, Reports } from './floor.js';
import { Fleet } from './fleet.js';
import { Alerts, Audit } from './alerts.js';
import { TvWall, Tv } from './tvs.js';
import { Visits } from './visits.js';

const PAGES = [
  { path: 'floor', label: 'Floor', role: 'viewer' },
  { path: 'handpays', label: 'Handpays', role: 'viewer' },
  { path: 'reports', label: 'Reports', role: 'viewer' },
  { path: 'tvs', label: 'TV wall', role: 'viewer' },
  { path: 'visits', label: 'Visits', role: 'viewer' },
  { path: 'fleet', label: 'Fleet', role: 'viewer' },
  { path: 'alerts', label: 'Alerts', role: 'viewer' },
  { path: 'audit', label: 'Audit log', role: 'supervisor' },
];

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return { page: parts[0] || 'floor', args: parts.slice(1) };
}

function Login({ onLogin }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    setBusy(true);
    setError(null);
    try {
      onLogin(await api('POST', '/api/v1/session', { user: form.get('user'), password: form.get('password') }));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <main class="login">
      <form onSubmit=${submit} aria-label="Log in">
        <h1>Outpost</h1>
        <label>User <input name="user" autocomplete="username" required autofocus /></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" required /></label>
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button type="submit" disabled=${busy}>Log in</button>
      </form>
    </main>`;
}

function Shell({ session, onLogout }) {
  const [where, setWhere] = useState(route());
  useEffect(() => {
    const changed = () => setWhere(route());
    addEventListener('hashchange', changed);
    // The address may have changed between the first render and this effect (a link opened
    // while the shell was mounting): catch up, or that change would be missed.
    changed();
    return () => removeEventListener('hashchange', changed);
  }, []);
  const logout = async () => {
    try {
      await api('DELETE', '/api/v1/session');
    } finally {
      onLogout();
    }
  };
  const page = (() => {
    const known = PAGES.find((p) => p.path === where.page);
    if (where.page === 'machine') return html`<${Machine} session=${session} edge=${where.args[0]} device=${where.args[1]} />`;
    if (where.page === 'tv') return html`<${Tv} session=${session} edge=${where.args[0]} device=${where.args[1]} />`;
    if (!known) return html`<p class="error">There is no page ${where.page}.</p>`;
    if (!may(session, known.role)) return html`<p class="error">Your role (${session.role}) cannot see ${known.label}.</p>`;
    switch (where.page) {
      case 'floor': return html`<${Floor} session=${session} />`;
      case 'handpays': return html`<${Handpays} session=${session} />`;
      case 'reports': return html`<${Reports} session=${session} />`;
      case 'fleet': return html`<${Fleet} session=${session} />`;
      case 'tvs': return html`<${TvWall} session=${session} />`;
      case 'visits': return html`<${Visits} session=${session} />`;
      case 'alerts': return html`<${Alerts} session=${session} />`;
      case 'audit': return html`<${Audit} session=${session} />`;
    }
    return null;
  })();
  return html`
    <header>
      <a class="brand" href="#/floor">Outpost</a>
      <nav aria-label="Pages">
        ${PAGES.filter((p) => may(session, p.role)).map(
          (p) => html`<a href="#/${p.path}" aria-current=${where.page === p.path ? 'page' : null}>${p.label}</a>`,
        )}
      </nav>
      <span class="who" data-testid="who">${session.user} (${session.role})</span>
      <button class="link" onClick=${logout}>Log out</button>
      <span class="live-dot" title="Live updates"></span>
    </header>
    <main>${page}</main>`;
}

function App() {
  const [session, setState] = useState(undefined);
  const use = (s) => {
    setSession(s);
    if (!s) closeStreams();
    setState(s);
  };
  useEffect(() => {
    whenLoggedOut(() => use(null));
    get('/api/v1/session').then(use, () => use(null));
  }, []);
  if (session === undefined) return html`<p class="loading">Loading…</p>`;
  if (!session) return html`<${Login} onLogin=${use} />`;
  return html`<${Shell} session=${session} onLogout=${() => use(null)} />`;
}

render(html`<${App} />`, document.getElementById('app'));

// The TV wall, a TV's page with its remote pad, the cards shown on both, the card editor, and
// bulk operations on a group of TVs.

import { html, Component, useState, useEffect } from './vendor/htm-preact-standalone.module.js';
import { api, get, post, subscribe, LIVE_STATE, may } from './api.js';
import { useData, throttle, time, ago, Problem } from './util.js';

const tvHref = (d) => `#/tv/${encodeURIComponent(d.edge)}/${encodeURIComponent(d.device)}`;
const scopesOf = (d) => [`tv:${d.edge}:${d.device}`, ...d.tags.map((t) => `tag:${t}`)];

// Sends a command and waits for its final status (or gives up after `ms`).
export async function command(edge, device, op, args, ms = 30000) {
  let record = await post('/api/v1/commands', { edge, device, op, args });
  const until = Date.now() + ms;
  while (['pending', 'delivered'].includes(record.status) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 300));
    record = await get(`/api/v1/commands/${record.id}`);
  }
  return record;
}

// What a field bound to `binding` shows for device `d`.
function bound(d, binding) {
  const value = binding.split('.').reduce((v, k) => (v == null ? v : v[k]), d);
  if (value == null) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (binding.endsWith('last_seen') || binding.endsWith('.at')) return ago(value);
  return String(value);
}

function Cards({ session, d, layouts, compact }) {
  const [problem, setProblem] = useState(null);
  const cards = scopesOf(d).flatMap((s) => (layouts[s] || []).map((c) => ({ ...c, scope: s })));
  if (!cards.length) return null;
  const press = async (b) => {
    setProblem(null);
    try {
      const r = await command(d.edge, d.device, b.op, b.args);
      if (r.status !== 'succeeded') setProblem(`${b.label}: ${r.status}${r.detail ? ', ' + r.detail : ''}`);
    } catch (e) {
      setProblem(e.message);
    }
  };
  return html`<div class=${compact ? 'cards compact' : 'cards'} data-testid="cards">
    ${cards.map((c) => html`<div class="card width-${c.width}" data-card=${c.title}>
      <strong>${c.title}</strong>
      <dl class="figures">${c.fields.map((f) => html`<dt>${f.label}</dt><dd>${bound(d, f.binding)}</dd>`)}</dl>
      ${may(session, 'operator') && html`<div class="buttons">${c.buttons.map((b) => html`<button onClick=${() => press(b)}>${b.label}</button>`)}</div>`}
    </div>`)}
    <${Problem} error=${problem} />
  </div>`;
}

async function loadLayouts() {
  const all = await get('/api/v1/cards');
  return Object.fromEntries(all.map((l) => [l.scope, l.cards]));
}

function Batch({ session, tags }) {
  const [ops] = useData(() => get('/api/v1/operations?kind=tv'));
  const [tag, setTag] = useState('');
  const [op, setOp] = useState('volume');
  const [args, setArgs] = useState('{"level": 10}');
  const [batch, setBatch] = useState(null);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    if (!batch || batch.sent === 0) return;
    const t = setTimeout(async () => setBatch(await get(`/api/v1/batches/${batch.id}`)), 1000);
    return () => clearTimeout(t);
  }, [batch]);
  if (!may(session, 'operator')) return null;
  const chooseOp = (name) => {
    setOp(name);
    const o = (ops || []).find((x) => x.op === name);
    if (o) setArgs(JSON.stringify(o.example));
  };
  const send = async (e) => {
    e.preventDefault();
    setProblem(null);
    try {
      setBatch(await post('/api/v1/batches', { tag: tag || undefined, kind: 'tv', op, args: JSON.parse(args || '{}') }));
    } catch (err) {
      setProblem(err.message);
    }
  };
  return html`<section aria-label="Bulk operation">
    <h2>Bulk operation</h2>
    <form class="toolbar" onSubmit=${send}>
      <label>Group <select value=${tag} onChange=${(e) => setTag(e.target.value)}>
        <option value="">all TVs</option>${tags.map((t) => html`<option value=${t}>${t}</option>`)}
      </select></label>
      <label>Operation <select value=${op} onChange=${(e) => chooseOp(e.target.value)}>
        ${(ops || []).filter((o) => o.op !== 'push').map((o) => html`<option value=${o.op}>${o.op}</option>`)}
      </select></label>
      <label>Arguments <input value=${args} onInput=${(e) => setArgs(e.target.value)} size="24" /></label>
      <button type="submit">Send to the group</button>
    </form>
    <${Problem} error=${problem} />
    ${batch && html`<p data-testid="batch-progress">${batch.op} on ${batch.selection}: ${batch.sent} sent, ${batch.done} done, ${batch.failed} failed, ${batch.rejected} rejected, ${batch.skipped_offline} skipped (offline)</p>
      <table class="compact" data-testid="batch"><thead><tr><th>TV</th><th>state</th><th>detail</th></tr></thead>
        <tbody>${batch.items.map((i) => html`<tr data-device=${i.device} data-state=${i.state}><td>${i.device}</td><td>${i.state.replace('_', ' ')}</td><td>${i.detail || ''}</td></tr>`)}</tbody></table>`}
  </section>`;
}

export function TvWall({ session }) {
  const [tvs, error, reload, update] = useData(() => get('/api/v1/devices?kind=tv&limit=10000').then((p) => p.devices));
  const [layouts] = useData(loadLayouts);
  const [tag, setTag] = useState('');
  useEffect(() => subscribe(LIVE_STATE, (kind, data) => {
    if (kind === 'reset') return reload();
    if (kind === 'device' && data.kind === 'tv') {
      update((list) => list && list.map((d) => (d.edge === data.edge && d.device === data.device ? data : d)));
    }
  }), []);
  if (!tvs) return html`<${Problem} error=${error} /><p class="loading">Loading the TVs…</p>`;
  const tags = [...new Set(tvs.flatMap((d) => d.tags))].sort();
  const shown = tvs.filter((d) => !tag || d.tags.includes(tag));
  const up = shown.filter((d) => d.status === 'up').length;
  return html`
    <h1>TV wall</h1>
    <${Problem} error=${error} />
    <div class="toolbar">
      <label>Group <select value=${tag} onChange=${(e) => setTag(e.target.value)}>
        <option value="">all</option>${tags.map((t) => html`<option value=${t}>${t}</option>`)}
      </select></label>
      <span>${`${shown.length} TVs: ${up} up, ${shown.length - up} down`}</span>
    </div>
    <div class="grid tvs" data-testid="tv-wall">
      ${shown.map((d) => {
        const t = d.tv || {};
        const shot = t.last_screenshot;
        return html`<div class="tile tv status-${d.status}" data-device=${d.device} data-status=${d.status}>
          <a href=${tvHref(d)}>${shot ? html`<img src=${shot.url} alt="screenshot of ${d.device}" loading="lazy" />` : html`<div class="noshot">no screenshot</div>`}</a>
          <a href=${tvHref(d)}><strong>${d.device}</strong></a>
          <span class="status">${d.status}</span>
          <span>${shot ? `screenshot ${ago(shot.at)}` : ''}</span>
          <span>${t.input || '—'} · volume ${t.volume ?? '—'} · ${t.app || '—'}</span>
          ${layouts && html`<${Cards} session=${session} d=${d} layouts=${layouts} compact=${true} />`}
        </div>`;
      })}
    </div>
    <${Batch} session=${session} tags=${tags} />`;
}

function argsEnum(ops, op, field) {
  const o = (ops || []).find((x) => x.op === op);
  const schema = o && o.args_schema && o.args_schema.properties && o.args_schema.properties[field];
  return (schema && (schema.enum || (schema.oneOf || []).flatMap((s) => s.enum || []))) || [];
}

function Pad({ d, relays, onShot }) {
  const [ops] = useData(() => get('/api/v1/operations?kind=tv'));
  const [volume, setVolume] = useState((d.tv && d.tv.volume) ?? 7);
  const [picked, setRelay] = useState('');
  // The edge's relays arrive after the page: until one is picked, the first.
  const relay = relays.includes(picked) ? picked : relays[0] || '';
  const [last, setLast] = useState(null);
  const send = async (op, args = {}, device = d.device) => {
    setLast({ op, status: 'sending' });
    try {
      const r = await command(d.edge, device, op, args);
      setLast({ op, status: r.status, detail: r.detail });
      return r;
    } catch (e) {
      setLast({ op, status: 'refused', detail: e.message });
      return null;
    }
  };
  const key = (k, label) => html`<button aria-label=${label} onClick=${() => send('key', { key: k })}>${label}</button>`;
  const sources = argsEnum(ops, 'input', 'source');
  return html`<section aria-label="Remote">
    <h2>Remote</h2>
    <div class="pad">
      <div class="buttons">
        <button onClick=${() => send('power', { on: true })}>Screen on</button>
        <button onClick=${() => send('power', { on: false })}>Standby</button>
        ${relays.length > 0 && html`<label>Relay <select value=${relay} onChange=${(e) => setRelay(e.target.value)}>${relays.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
          <button onClick=${() => send('cycle', { off_ms: 3000 }, relay)}>Power cycle</button>`}
      </div>
      <div class="buttons">
        <label>Source <select onChange=${(e) => e.target.value && send('input', { source: e.target.value })}>
          <option value="">${(d.tv && d.tv.input) || 'choose'}</option>${sources.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></label>
      </div>
      <div class="buttons">
        <button onClick=${() => send('volume_down')} aria-label="Volume down">Vol −</button>
        <label>Volume <input type="range" min="0" max="15" value=${volume} onInput=${(e) => setVolume(Number(e.target.value))} /></label>
        <output>${volume}</output>
        <button onClick=${() => send('volume', { level: volume })}>Set volume</button>
        <button onClick=${() => send('volume_up')} aria-label="Volume up">Vol +</button>
        <button onClick=${() => send('mute')}>Mute</button>
      </div>
      <div class="dpad">
        <span></span>${key('dpad_up', 'Up')}<span></span>
        ${key('dpad_left', 'Left')}${key('dpad_center', 'OK')}${key('dpad_right', 'Right')}
        ${key('back', 'Back')}${key('dpad_down', 'Down')}${key('home', 'Home')}
      </div>
      <div class="buttons">
        <button onClick=${() => send('play')}>Play</button>
        <button onClick=${() => send('pause')}>Pause</button>
        <button onClick=${() => send('next')}>Next</button>
        <button onClick=${async () => { const r = await send('screenshot'); if (r && r.status === 'succeeded') onShot(); }}>Take screenshot</button>
      </div>
      ${last && html`<p class="note" data-testid="pad-result" data-status=${last.status}>${last.op}: ${last.status}${last.detail ? ' — ' + last.detail : ''}</p>`}
    </div>
  </section>`;
}

// Each card being edited gets a key of its own (not saved), so typing a title or moving a card
// keeps its inputs.
let nextKey = 0;
const editable = (cards) => cards.map((c) => ({ ...c, key: ++nextKey }));

// A list the hand reorders: SortableJS moves the held element in the page while it is dragged,
// and reports the move when it is dropped. Preact puts children back where its last render had
// them, so a render in the middle of a drag (the TV page renders again on every live update)
// would undo the move unseen: none happens until the drop. `onMove(from, to)` gets the indexes.
class Reorderable extends Component {
  componentDidMount() {
    if (!window.Sortable) return;
    this.sortable = window.Sortable.create(this.base, {
      handle: '.drag',
      forceFallback: true,
      onStart: () => {
        this.dragging = true;
      },
      onEnd: (e) => {
        this.dragging = false;
        if (e.oldIndex === e.newIndex) return this.forceUpdate();
        // Put the element back where it was and let the page move it, so the DOM and the
        // list's order cannot disagree.
        e.from.removeChild(e.item);
        e.from.insertBefore(e.item, e.from.children[e.oldIndex] || null);
        this.props.onMove(e.oldIndex, e.newIndex);
      },
    });
  }
  componentWillUnmount() {
    if (this.sortable) this.sortable.destroy();
  }
  shouldComponentUpdate() {
    return !this.dragging;
  }
  render({ children }) {
    return html`<div class="card-list">${children}</div>`;
  }
}

function CardEditor({ session, d, layouts, onSaved }) {
  const [scope, setScope] = useState(`tv:${d.edge}:${d.device}`);
  const [cards, setCards] = useState(editable(layouts[scope] || []));
  const [problem, setProblem] = useState(null);
  useEffect(() => setCards(editable(layouts[scope] || [])), [scope]);
  const move = (from, to) =>
    setCards((cs) => {
      const next = [...cs];
      const [moved] = next.splice(from, 1);
      next.splice(to, 0, moved);
      return next;
    });
  const change = (i, f) => setCards((cs) => cs.map((c, j) => (j === i ? f({ ...c }) : c)));
  const save = async () => {
    setProblem(null);
    try {
      const saved = await api('PUT', `/api/v1/cards/${encodeURIComponent(scope)}`, {
        cards: cards.map(({ key, ...card }) => card),
      });
      onSaved(scope, saved.cards);
    } catch (e) {
      setProblem(e.message);
    }
  };
  if (!may(session, 'operator')) return null;
  return html`<section aria-label="Card editor">
    <h2>Card editor</h2>
    <div class="toolbar">
      <label>Cards of <select value=${scope} onChange=${(e) => setScope(e.target.value)}>
        ${scopesOf(d).map((s) => html`<option value=${s}>${s.startsWith('tag:') ? 'group ' + s.slice(4) : 'this TV'}</option>`)}
      </select></label>
      <button onClick=${() => setCards([...cards, ...editable([{ title: 'New card', width: 1, fields: [], buttons: [] }])])}>Add card</button>
      <button onClick=${save}>Save cards</button>
    </div>
    <${Problem} error=${problem} />
    <${Reorderable} onMove=${move}>
      ${cards.map((c, i) => html`<div class="card editing" key=${c.key}>
        <span class="drag" title="Drag to move" aria-label="Drag card ${c.title}">⠿</span>
        <label>Title <input value=${c.title} onInput=${(e) => change(i, (x) => ({ ...x, title: e.target.value }))} /></label>
        <label>Width <select value=${c.width} onChange=${(e) => change(i, (x) => ({ ...x, width: Number(e.target.value) }))}><option value="1">1</option><option value="2">2</option></select></label>
        ${c.fields.map((f, k) => html`<div class="row">
          <label>Field <input value=${f.label} onInput=${(e) => change(i, (x) => ({ ...x, fields: x.fields.map((g, m) => (m === k ? { ...g, label: e.target.value } : g)) }))} /></label>
          <label>shows <select value=${f.binding} onChange=${(e) => change(i, (x) => ({ ...x, fields: x.fields.map((g, m) => (m === k ? { ...g, binding: e.target.value } : g)) }))}>
            ${BINDINGS.map((b) => html`<option value=${b}>${b}</option>`)}</select></label>
          <button aria-label="Remove field" onClick=${() => change(i, (x) => ({ ...x, fields: x.fields.filter((_, m) => m !== k) }))}>×</button></div>`)}
        ${c.buttons.map((b, k) => html`<div class="row">
          <label>Button <input value=${b.label} onInput=${(e) => change(i, (x) => ({ ...x, buttons: x.buttons.map((g, m) => (m === k ? { ...g, label: e.target.value } : g)) }))} /></label>
          <label>sends <input value=${b.op} size="10" onInput=${(e) => change(i, (x) => ({ ...x, buttons: x.buttons.map((g, m) => (m === k ? { ...g, op: e.target.value } : g)) }))} /></label>
          <label>with <input value=${JSON.stringify(b.args)} size="16" onChange=${(e) => { try { const args = JSON.parse(e.target.value); change(i, (x) => ({ ...x, buttons: x.buttons.map((g, m) => (m === k ? { ...g, args } : g)) })); } catch { setProblem('arguments are JSON, for example {"level": 3}'); } }} /></label>
          <button aria-label="Remove button" onClick=${() => change(i, (x) => ({ ...x, buttons: x.buttons.filter((_, m) => m !== k) }))}>×</button></div>`)}
        <div class="buttons">
          <button onClick=${() => change(i, (x) => ({ ...x, fields: [...x.fields, { label: 'Volume', binding: 'tv.volume' }] }))}>Add field</button>
          <button onClick=${() => change(i, (x) => ({ ...x, buttons: [...x.buttons, { label: 'Quiet', op: 'volume', args: { level: 3 } }] }))}>Add button</button>
          <button onClick=${() => setCards(cards.filter((_, j) => j !== i))}>Remove card</button>
        </div>
      </div>`)}
    <//>
  </section>`;
}

const BINDINGS = ['tv.up', 'tv.screen_on', 'tv.volume', 'tv.input', 'tv.app', 'tv.ethernet', 'tv.last_seen', 'tv.healing.step', 'tv.last_screenshot.at', 'status'];

export function Tv({ session, edge, device }) {
  const [d, error, reload, setD] = useData(() => get(`/api/v1/devices/${edge}/${device}`), [edge, device]);
  const [layouts, , , setLayouts] = useData(loadLayouts);
  const [edges] = useData(() => get('/api/v1/edges'));
  const events = (type) => () => get(`/api/v1/edges/${edge}/events?device=${device}&type=${type}&order=desc&limit=20`);
  const [telemetry, , reloadTelemetry] = useData(events('tv.telemetry'), [edge, device]);
  const [healing, , reloadHealing] = useData(events('tv.recovery'), [edge, device]);
  useEffect(() => {
    const later = throttle(() => {
      reloadTelemetry();
      reloadHealing();
    }, 2000);
    return subscribe(`kinds=device,event&edge=${encodeURIComponent(edge)}&device=${encodeURIComponent(device)}`, (kind, data) => {
      if (kind === 'reset') return reload();
      if (kind === 'device') setD(() => data);
      if (kind === 'event') later();
    });
  }, [edge, device]);
  if (!d) return html`<${Problem} error=${error} /><p class="loading">Loading ${device}…</p>`;
  const t = d.tv || {};
  const shot = t.last_screenshot;
  const relays = ((edges || []).find((e) => e.id === edge)?.devices || []).filter((x) => x.kind === 'relay').map((x) => x.id);
  return html`
    <h1>${device} <span class="status status-${d.status}" data-testid="tv-status">${d.status}</span></h1>
    <p class="note">edge ${edge}, site ${d.site}${d.tags.length ? ', groups ' + d.tags.join(', ') : ''}; last seen ${ago(t.last_seen)}</p>
    <${Problem} error=${error} />
    <div class="columns">
      <section aria-label="Screen">
        <h2>Screen <small>${shot ? `screenshot taken ${time(shot.at)}` : 'no screenshot yet'}</small></h2>
        ${shot && html`<img class="screenshot" data-testid="screenshot" src=${shot.url} alt="screenshot of ${device}, ${time(shot.at)}" />`}
        <dl class="figures" data-testid="tv-state">
          <dt>screen</dt><dd>${t.screen_on == null ? '—' : t.screen_on ? 'on' : 'standby'}</dd>
          <dt>input</dt><dd data-testid="tv-input">${t.input || '—'}</dd>
          <dt>volume</dt><dd data-testid="tv-volume">${t.volume ?? '—'}</dd>
          <dt>app</dt><dd>${t.app || '—'}</dd>
          <dt>network</dt><dd>${t.ethernet || '—'}</dd>
          <dt>self-healing</dt><dd>${t.healing ? `${t.healing.step} (${ago(t.healing.at)})` : 'nothing needed'}</dd>
        </dl>
      </section>
      ${may(session, 'operator') ? html`<${Pad} d=${d} relays=${relays} onShot=${reload} />` : html`<section><h2>Remote</h2><p class="note">Your role (${session.role}) can watch, not press.</p></section>`}
    </div>
    ${layouts && html`<${Cards} session=${session} d=${d} layouts=${layouts} />`}
    ${layouts && html`<${CardEditor} session=${session} d=${d} layouts=${layouts} onSaved=${(scope, cards) => setLayouts((l) => ({ ...l, [scope]: cards }))} />`}
    <div class="columns">
      <section aria-label="Telemetry">
        <h2>Telemetry</h2>
        <table class="compact"><thead><tr><th>time</th><th>answers</th><th>screen</th><th>volume</th><th>input</th><th>app</th></tr></thead>
          <tbody>${(telemetry ? telemetry.events : []).map((e) => html`<tr><td>${time(e.time)}</td><td>${e.answers ? 'yes' : 'no'}</td><td>${e.screen_on == null ? '—' : e.screen_on ? 'on' : 'off'}</td><td>${e.volume ?? '—'}</td><td>${e.input || '—'}</td><td>${e.app || '—'}</td></tr>`)}</tbody></table>
      </section>
      <section aria-label="Self-healing">
        <h2>Self-healing steps</h2>
        <table class="compact"><thead><tr><th>time</th><th>step</th><th>detail</th></tr></thead>
          <tbody>${(healing ? healing.events : []).map((e) => html`<tr><td>${time(e.time)}</td><td>${e.step}</td><td>${e.detail}</td></tr>`)}</tbody></table>
        ${healing && !healing.events.length && html`<p class="note">No step was needed.</p>`}
      </section>
    </div>`;
}

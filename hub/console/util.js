// Small helpers every page uses: loading data, times in the user's zone, money, CSV.

import { html, useState, useEffect, useCallback, useRef } from './vendor/htm-preact-standalone.module.js';

// Loads `load()` now and whenever `reload()` is called; keeps the last good value on error.
export function useData(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const loading = useRef(0);
  const reload = useCallback(() => {
    const n = ++loading.current;
    load().then(
      (data) => n === loading.current && setState({ data, error: null }),
      (error) => n === loading.current && setState((s) => ({ data: s.data, error: error.message })),
    );
  }, deps);
  useEffect(reload, [reload]);
  return [state.data, state.error, reload, (f) => setState((s) => ({ ...s, data: f(s.data) }))];
}

// Calls `f` at most once per `ms` (trailing), for refetches triggered by the live stream.
export function throttle(f, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      f();
    }, ms);
  };
}

export const time = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
export const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '—');

export function ago(iso) {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export const money = (amount, currency) => (amount == null ? '—' : `${amount} ${currency || ''}`.trim());

export function Problem({ error }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : null;
}

// Offers `rows` (objects) as a CSV file named `name`.
export function downloadCsv(name, rows) {
  if (!rows.length) return;
  const columns = Object.keys(rows[0]);
  const cell = (v) => {
    const text = v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const csv = [columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\n');
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([csv + '\n'], { type: 'text/csv' }));
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

// The console's only way to the hub: the public REST API and its live stream.
//
// Invariants: every request that changes something carries the session's CSRF token; a 401
// sends the user back to the login page; the live stream reconnects by itself (the browser's
// EventSource resumes with Last-Event-ID) and a `reset` item makes every page refetch.

let csrf = null;
let onLoggedOut = () => {};

export function setSession(session) {
  csrf = session ? session.csrf_token : null;
}

export function whenLoggedOut(callback) {
  onLoggedOut = callback;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    if (response.status === 401 && path !== '/api/v1/session') onLoggedOut();
    throw new ApiError(response.status, (data && data.error) || response.statusText);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});

// Live streams, one EventSource per distinct query, shared by the pages that listen to it.
// The default query leaves out raw events (telemetry can be hundreds a second); the machine page
// asks for its own machine's events.
const streams = new Map();

export const LIVE_STATE = 'kinds=device,figures,alert';

export function subscribe(query, listener) {
  let stream = streams.get(query);
  if (!stream) {
    stream = { source: new EventSource('/api/v1/stream?' + query), listeners: new Set() };
    const deliver = (kind) => (message) => {
      let data = null;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      for (const l of stream.listeners) l(kind, data);
    };
    for (const kind of ['event', 'device', 'figures', 'alert', 'reset']) {
      stream.source.addEventListener(kind, deliver(kind));
    }
    // Every (re)connection is a reset: what happened before the stream was open, between a
    // page's first fetch and now or while it was cut off, is not replayed, so pages reload.
    stream.source.onopen = () => {
      document.body.classList.remove('offline');
      for (const l of stream.listeners) l('reset', null);
    };
    stream.source.onerror = () => document.body.classList.add('offline');
    streams.set(query, stream);
  }
  stream.listeners.add(listener);
  return () => {
    stream.listeners.delete(listener);
    if (stream.listeners.size === 0) {
      stream.source.close();
      streams.delete(query);
    }
  };
}

export function closeStreams() {
  for (const stream of streams.values()) stream.source.close();
  streams.clear();
}

// What each role may do, as the API decides it (the API refuses anyway; the console hides).
export const RANK = { viewer: 0, operator: 1, supervisor: 2, admin: 3 };
export const may = (session, role) => session && RANK[session.role] >= RANK[role];

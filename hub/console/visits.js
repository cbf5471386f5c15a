// Guest visits provisioned into HikCentral: create with a photo, follow the state and history,
// cancel, retry.

import { html, useState, useEffect } from './vendor/htm-preact-standalone.module.js';
import { get, post, may } from './api.js';
import { useData, time, Problem } from './util.js';

// The API takes a photo of at most 200 KiB: a larger one is scaled down and re-encoded as JPEG
// in the browser until it fits.
const MAX_PHOTO_BYTES = 200 * 1024;

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

export async function fitPhoto(file) {
  if (file.size <= MAX_PHOTO_BYTES && /^image\/(jpeg|png)$/.test(file.type)) {
    return { dataUrl: await readAsDataUrl(file), resized: false, bytes: file.size };
  }
  const image = await createImageBitmap(file);
  let scale = Math.min(1, 1024 / Math.max(image.width, image.height));
  for (let attempt = 0; attempt < 8; attempt++) {
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(image.width * scale));
    canvas.height = Math.max(1, Math.round(image.height * scale));
    canvas.getContext('2d').drawImage(image, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((r) => canvas.toBlob(r, 'image/jpeg', 0.85));
    if (blob && blob.size <= MAX_PHOTO_BYTES) {
      return { dataUrl: await readAsDataUrl(blob), resized: true, bytes: blob.size };
    }
    scale *= 0.7;
  }
  throw new Error('the photo cannot be made small enough (200 KiB)');
}

// `datetime-local` gives local time without an offset; the API wants RFC 3339 with one.
function withOffset(local) {
  const date = new Date(local);
  const minutes = -date.getTimezoneOffset();
  const sign = minutes >= 0 ? '+' : '-';
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  return `${local.length === 16 ? local + ':00' : local}${sign}${pad(minutes / 60)}:${pad(minutes % 60)}`;
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function NewVisit({ onCreated }) {
  const [photo, setPhoto] = useState(null);
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const now = new Date();
  const choose = async (e) => {
    setProblem(null);
    setPhoto(null);
    const file = e.target.files[0];
    if (!file) return;
    try {
      setPhoto(await fitPhoto(file));
    } catch (err) {
      setProblem(err.message);
    }
  };
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    if (!photo) return setProblem('choose a photo of the guest');
    setBusy(true);
    setProblem(null);
    try {
      await post('/api/v1/visits', {
        guest_name: form.get('guest_name'),
        access_level: form.get('access_level'),
        begin: withOffset(form.get('begin')),
        end: withOffset(form.get('end')),
        photo: photo.dataUrl,
      });
      // Ready for the next guest: the times and access level stay.
      e.target.elements.guest_name.value = '';
      e.target.elements.photo.value = '';
      setPhoto(null);
      onCreated();
    } catch (err) {
      setProblem(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-label="New visit">
    <h2>New visit</h2>
    <form class="form" onSubmit=${submit}>
      <label>Guest name <input name="guest_name" required maxlength="64" /></label>
      <label>Access level <input name="access_level" required value="1" /></label>
      <label>From <input name="begin" type="datetime-local" required value=${localInput(now)} /></label>
      <label>Until <input name="end" type="datetime-local" required value=${localInput(new Date(now.getTime() + 4 * 3600e3))} /></label>
      <label>Photo <input name="photo" type="file" accept="image/*" onChange=${choose} /></label>
      ${photo && html`<p class="note" data-testid="photo-note"><img class="photo" src=${photo.dataUrl} alt="the guest's photo" />
        ${photo.resized ? `scaled down to ${Math.round(photo.bytes / 1024)} KiB` : `${Math.round(photo.bytes / 1024)} KiB`}</p>`}
      <${Problem} error=${problem} />
      <button type="submit" disabled=${busy}>Create visit</button>
    </form>
  </section>`;
}

export function Visits({ session }) {
  const [state, setState] = useState('');
  const [visits, error, reload] = useData(() => get(`/api/v1/visits${state ? '?state=' + state : ''}`), [state]);
  const [open, setOpen] = useState(null);
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    const t = setInterval(reload, 2000);
    return () => clearInterval(t);
  }, [reload]);
  const act = async (v, what) => {
    setProblem(null);
    try {
      await post(`/api/v1/visits/${v.id}/${what}`, {});
      reload();
    } catch (e) {
      setProblem(e.message);
    }
  };
  return html`
    <h1>Guest visits</h1>
    ${may(session, 'operator') && html`<${NewVisit} onCreated=${reload} />`}
    <label>State <select value=${state} onChange=${(e) => setState(e.target.value)}>
      ${['', 'new', 'person_ready', 'face_ready', 'access_assigned', 'active', 'revoking', 'revoked', 'blocked'].map((s) => html`<option value=${s}>${s || 'all'}</option>`)}
    </select></label>
    <${Problem} error=${problem || error} />
    <table data-testid="visits">
      <thead><tr><th>guest</th><th>access level</th><th>from</th><th>until</th><th>state</th><th>by</th><th></th></tr></thead>
      <tbody>${(visits || []).map((v) => html`
        <tr data-guest=${v.guest_name} data-state=${v.state}>
          <td><button class="link-like" onClick=${() => setOpen(open === v.id ? null : v.id)}>${v.guest_name}</button></td>
          <td>${v.access_level}</td><td>${time(v.begin)}</td><td>${time(v.end)}</td>
          <td>${v.state.replace(/_/g, ' ')}${v.last_error ? html`<br /><small>${v.last_error}</small>` : ''}</td><td>${v.created_by}</td>
          <td>${may(session, 'operator') && html`
            ${!['revoking', 'access_removed', 'revoke_applied', 'revoked'].includes(v.state) && html`<button onClick=${() => act(v, 'cancel')}>Cancel</button>`}
            ${v.state === 'blocked' && html`<button onClick=${() => act(v, 'retry')}>Retry</button>`}`}</td>
        </tr>
        ${open === v.id && html`<tr><td colspan="7"><ol class="history">${v.history.map((h) => html`<li>${time(new Date(h.at_ms).toISOString())}: ${h.state.replace(/_/g, ' ')}${h.note ? ' — ' + h.note : ''}</li>`)}</ol></td></tr>`}`)}
      </tbody>
    </table>`;
}

// Attachments: checks before upload, uploads with a progress bar each, and how a message shows
// them (image thumbnails, PDF and Word icons; a click downloads with the token).

import { h, icon } from '../dom.js';
import { t, size } from '../i18n.js';

export const MAX_FILES = 10;
export const MAX_BYTES = 20 * 1024 * 1024;
const ALLOWED = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  pdf: 'application/pdf',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
};
export const ACCEPT = Object.keys(ALLOWED).map((e) => `.${e}`).join(',');

// The reason a file is refused before upload, or null (the server checks the content again).
export function refusal(file) {
  const ext = (file.name.split('.').pop() || '').toLowerCase();
  if (!(ext in ALLOWED) || file.name.indexOf('.') < 0) return t('file_type_refused', { name: file.name });
  if (file.size > MAX_BYTES) return t('file_too_large', { name: file.name, max: size(MAX_BYTES) });
  if (file.size === 0) return t('file_empty', { name: file.name });
  return null;
}

export function serverRefusal(err, name) {
  if (err.code === 'unsupported_type') return t('file_type_refused', { name });
  if (err.code === 'too_large') return t('file_too_large', { name, max: size(MAX_BYTES) });
  if (err.code === 'feature_disabled') return t('file_disabled');
  return t('file_failed', { name, reason: err.message || err.code });
}

const urls = new Map();

async function blobUrl(store, path) {
  if (!urls.has(path)) {
    urls.set(path, store.api.blob(path).then((b) => URL.createObjectURL(b)));
  }
  return urls.get(path);
}

export async function download(store, a) {
  const url = await blobUrl(store, `/api/attachments/${encodeURIComponent(a.id)}`);
  const link = h('a', { href: url, download: a.name, class: 'hidden' });
  document.body.append(link);
  link.click();
  link.remove();
}

export function attachmentList(store, attachments) {
  return h('ul', { class: 'files' }, attachments.map((a) => h('li', {}, attachmentItem(store, a))));
}

function attachmentItem(store, a) {
  // the accessible name: "Télécharger dessin.png 12 Ko", the visible text included
  const verb = h('span', { class: 'visually-hidden', text: `${t('download_file')} ` });
  if (a.type && a.type.startsWith('image/')) {
    const img = h('img', { class: 'thumb', alt: `${a.name} ${size(a.size)}`, width: 160, height: 120 });
    blobUrl(store, `/api/attachments/${encodeURIComponent(a.id)}/preview`)
      .then((url) => { img.src = url; })
      .catch(() => img.replaceWith(h('span', { class: 'file-name', text: a.name })));
    return h('button', { type: 'button', class: 'file image', onclick: () => download(store, a) }, verb, img);
  }
  const kind = a.type === 'application/pdf' ? 'pdf' : 'doc';
  return h('button', { type: 'button', class: `file ${kind}`, onclick: () => download(store, a) },
    verb,
    icon(kind),
    h('span', { class: 'file-name', text: a.name }),
    h('span', { class: 'file-size', text: size(a.size) }));
}

// The files being attached to one message: upload each at once, with a progress bar.
export class Uploads {
  constructor(store, onChange) {
    this.store = store;
    this.onChange = onChange;
    this.items = [];
    this.list = h('ul', { class: 'uploads', 'aria-live': 'polite' });
  }

  add(fileList) {
    for (const file of fileList) {
      const accepted = this.items.filter((i) => !i.error).length;
      let error = refusal(file);
      if (!error && accepted >= MAX_FILES) error = t('file_too_many', { max: MAX_FILES });
      const item = { file, progress: 0, result: null, error, upload: null };
      this.items.push(item);
      if (!error) this.start(item);
    }
    this.render();
  }

  start(item) {
    item.upload = this.store.api.upload(item.file, (fraction) => {
      item.progress = fraction;
      this.renderProgress(item);
    });
    item.upload.promise.then((result) => {
      item.result = result;
      item.progress = 1;
    }).catch((err) => {
      if (err.code !== 'aborted') item.error = serverRefusal(err, item.file.name);
    }).finally(() => this.render());
  }

  remove(item) {
    if (item.upload && !item.result) item.upload.abort();
    this.items = this.items.filter((i) => i !== item);
    this.render();
  }

  busy() {
    return this.items.some((i) => !i.error && !i.result);
  }

  ready() {
    return this.items.filter((i) => i.result).map((i) => i.result);
  }

  clear() {
    this.items = [];
    this.render();
  }

  renderProgress(item) {
    if (item.bar) item.bar.value = item.progress;
  }

  render() {
    this.list.replaceChildren(...this.items.map((item) => {
      const name = h('span', { class: 'file-name', text: item.file.name });
      const remove = h('button', {
        type: 'button', class: 'icon-button',
        'aria-label': t('remove_file', { name: item.file.name }),
        onclick: () => this.remove(item),
      }, icon('close'));
      if (item.error) {
        return h('li', { class: 'upload refused', role: 'alert' }, h('span', { class: 'file-error', text: item.error }), remove);
      }
      item.bar = h('progress', {
        max: 1, value: item.progress,
        'aria-label': t('upload_progress', { name: item.file.name }),
      });
      return h('li', { class: `upload${item.result ? ' done' : ''}` }, name,
        h('span', { class: 'file-size', text: size(item.file.size) }), item.bar, remove);
    }));
    this.onChange();
  }
}

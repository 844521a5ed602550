// The message composer: text, attachments (pick or drop), typing notices, and what stops it
// (a locked conversation, a bulk send without replies).

import { h, icon, uid } from '../dom.js';
import { t } from '../i18n.js';
import { Uploads, ACCEPT } from './files.js';

export class Composer {
  constructor(store, c) {
    this.store = store;
    this.c = c;
    this.uploads = new Uploads(store, () => this.sync());
  }

  broadcastMode() {
    const c = this.c;
    if (c.kind !== 'broadcast' || c.members[0] === this.store.me.id) return null;
    const message = c.messages()[0];
    return message && message.replies === 'private' ? 'private' : 'none';
  }

  element() {
    const id = uid('composer');
    const fileId = uid('files');
    this.text = h('textarea', {
      id, rows: 2, maxlength: 10000,
      oninput: () => {
        this.store.sendTyping(this.c.conv);
        this.sync();
      },
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.submit();
        }
      },
    });
    this.label = h('label', { for: id, class: 'visually-hidden' });
    this.files = h('input', {
      type: 'file', id: fileId, multiple: true, accept: ACCEPT, class: 'visually-hidden',
      onchange: () => {
        this.uploads.add(this.files.files);
        this.files.value = '';
      },
    });
    this.attach = h('label', { for: fileId, class: 'icon-button attach', title: t('attach_files') },
      icon('clip'), h('span', { class: 'visually-hidden', text: t('attach_files') }));
    this.sendButton = h('button', { type: 'submit', class: 'primary send' },
      icon('send'), h('span', { text: t('send') }));
    this.error = h('p', { class: 'error', role: 'alert' });
    this.note = h('p', { class: 'composer-note' });
    this.form = h('form', {
      class: 'composer',
      onsubmit: (e) => {
        e.preventDefault();
        this.submit();
      },
    },
    this.note,
    this.uploads.list,
    this.error,
    h('div', { class: 'composer-row' }, this.label, this.files, this.attach, this.text, this.sendButton));
    this.dropTarget = null;
    this.onDrop = (e) => {
      if (!e.dataTransfer || !e.dataTransfer.files.length || this.blocked()) return;
      e.preventDefault();
      this.uploads.add(e.dataTransfer.files);
    };
    this.onDragOver = (e) => {
      if (!this.blocked()) e.preventDefault();
    };
    document.addEventListener('drop', this.onDrop);
    document.addEventListener('dragover', this.onDragOver);
    this.sync();
    return this.form;
  }

  destroy() {
    document.removeEventListener('drop', this.onDrop);
    document.removeEventListener('dragover', this.onDragOver);
  }

  attachmentsAllowed() {
    const school = this.store.schools.get(this.c.school);
    return !school || school.features.attachments;
  }

  blocked() {
    const c = this.c;
    const ownBroadcast = c.kind === 'broadcast' && c.members[0] === this.store.me.id;
    return c.locked || this.broadcastMode() === 'none' || ownBroadcast;
  }

  sync() {
    if (!this.text) return;
    const c = this.c;
    const mode = this.broadcastMode();
    const sender = this.store.name(c.members[0]);
    const ownBroadcast = c.kind === 'broadcast' && c.members[0] === this.store.me.id;
    const blocked = this.blocked();
    this.text.disabled = blocked;
    this.attach.classList.toggle('hidden', blocked || !this.attachmentsAllowed());
    this.files.disabled = blocked;
    this.label.textContent = mode === 'private' ? t('reply_privately_to', { name: sender }) : t('your_message');
    this.text.placeholder = c.locked ? t('composer_locked')
      : mode === 'private' ? t('reply_privately_to', { name: sender })
        : mode === 'none' ? t('replies_closed')
          : ownBroadcast ? t('own_broadcast_note') : t('write_message');
    let note = '';
    if (c.locked) note = t('composer_locked');
    else if (mode === 'private') note = t('private_reply_note', { name: sender });
    else if (mode === 'none') note = t('replies_closed');
    this.note.textContent = note;
    this.note.classList.toggle('hidden', !note);
    const empty = !this.text.value.trim() && !this.uploads.ready().length;
    this.sendButton.disabled = blocked || empty || this.uploads.busy();
    this.form.classList.toggle('locked', c.locked);
  }

  focus() {
    if (this.text && !this.text.disabled) {
      this.text.focus();
      return true;
    }
    return false;
  }

  showError(text) {
    this.error.textContent = text;
  }

  snapshot() {
    return this.text ? this.text.value : '';
  }

  restore(value) {
    if (this.text) this.text.value = value || '';
    this.sync();
  }

  submit() {
    this.sync();
    if (this.sendButton.disabled) {
      if (this.c.locked) this.showError(t('composer_locked'));
      return;
    }
    const body = this.text.value.trim();
    const attachments = this.uploads.ready();
    this.store.send(this.c.conv, body, attachments);
    this.text.value = '';
    this.error.textContent = '';
    this.uploads.clear();
    this.sync();
    this.text.focus();
  }
}

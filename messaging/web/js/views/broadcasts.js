// Bulk sends: the composer (audience by school, grades, groups or chosen parents with a live
// recipient count, French and English text, attachments, replies, schedule) and the list of
// sends with "seen by N of M" and a reminder to those who have not read.

import { h, replace, uid } from '../dom.js';
import { t, dateTime, zonedToIso } from '../i18n.js';
import { Uploads, ACCEPT } from './files.js';
import { errorText } from './thread.js';

const ANY_AUDIENCE = ['office', 'principal'];

function senderSchools(store) {
  return [...store.schools.values()].filter((s) => s.features.bulk_send
    && (s.roles.some((r) => ANY_AUDIENCE.includes(r)) || ownGroups(store, s.id).length));
}

function ownGroups(store, school) {
  return (store.me.roles || []).filter((r) => r.school === school && r.role === 'teacher').flatMap((r) => r.groups);
}

export function canBroadcast(store) {
  return store.isStaff() && senderSchools(store).length > 0;
}

function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), control, hint ? h('p', { class: 'hint', text: hint }) : null);
}

export class BroadcastsView {
  constructor(store) {
    this.store = store;
    this.schools = senderSchools(store);
    this.school = this.schools.length ? this.schools[0].id : null;
    this.kind = 'school';
    this.picked = new Set();
    this.uploads = new Uploads(store, () => {});
    this.sends = [];
  }

  isManager() {
    return (this.store.schools.get(this.school) || { roles: [] }).roles.some((r) => ANY_AUDIENCE.includes(r));
  }

  mount(main) {
    if (!this.isManager()) this.kind = 'groups';
    this.form = h('form', { class: 'card broadcast-form', onsubmit: (e) => { e.preventDefault(); this.submit(); } });
    this.history = h('section', { class: 'card sends', 'aria-labelledby': 'sends-title' });
    this.root = h('div', { class: 'page two-columns' }, this.form, this.history);
    main.append(this.root);
    this.renderForm();
    this.loadHistory();
  }

  destroy() {}

  snapshot() {
    return {
      school: this.school, kind: this.kind, picked: new Set(this.picked),
      body: this.body.value, bodyEn: this.bodyEn.value, when: this.when.value,
      replies: this.replies.value, sends: this.sends,
    };
  }

  restore(keep) {
    Object.assign(this, { school: keep.school, kind: keep.kind, picked: keep.picked, sends: keep.sends });
    this.renderForm();
    this.body.value = keep.body;
    this.bodyEn.value = keep.bodyEn;
    this.when.value = keep.when;
    this.replies.value = keep.replies;
    this.renderHistory();
  }

  update(detail) {
    if (detail.directory) this.renderCount();
  }

  groupsHere() {
    const school = this.store.schools.get(this.school);
    const groups = school ? school.groups : [];
    if (this.isManager()) return groups;
    const own = ownGroups(this.store, this.school);
    return groups.filter((g) => own.includes(g.id));
  }

  renderForm() {
    const store = this.store;
    const kinds = this.isManager()
      ? [['school', t('aud_school')], ['grades', t('aud_grades')], ['groups', t('aud_groups')], ['parents', t('aud_parents')]]
      : [['groups', t('aud_groups')]];
    this.count = h('p', { class: 'count', role: 'status', 'aria-live': 'polite' });
    this.choices = h('div', { class: 'aud-choices' });
    this.body = h('textarea', { rows: 5, maxlength: 10000, required: true, lang: 'fr', oninput: () => this.error && (this.error.textContent = '') });
    this.bodyEn = h('textarea', { rows: 5, maxlength: 10000, lang: 'en' });
    this.replies = h('select', {},
      h('option', { value: 'private', text: t('replies_private') }),
      h('option', { value: 'none', text: t('replies_none') }));
    this.when = h('input', { type: 'datetime-local' });
    const fileId = uid('bfiles');
    this.files = h('input', {
      type: 'file', id: fileId, multiple: true, accept: ACCEPT, class: 'visually-hidden',
      onchange: () => { this.uploads.add(this.files.files); this.files.value = ''; },
    });
    this.error = h('p', { class: 'error', role: 'alert' });
    this.done = h('p', { class: 'ok', role: 'status' });
    const schoolSelect = this.schools.length > 1 ? field(t('school'), h('select', {
      onchange: (e) => { this.school = e.target.value; this.picked.clear(); this.renderForm(); },
    }, this.schools.map((s) => h('option', { value: s.id, text: s.name, selected: s.id === this.school })))) : null;
    replace(this.form,
      h('h2', { text: t('new_broadcast') }),
      schoolSelect,
      h('fieldset', { class: 'audience' },
        h('legend', { text: t('audience') }),
        h('div', { class: 'radios' }, kinds.map(([value, label]) => {
          const id = uid('aud');
          return h('span', { class: 'radio' },
            h('input', {
              type: 'radio', name: 'audience-kind', id, value, checked: this.kind === value,
              onchange: () => { this.kind = value; this.renderChoices(); },
            }),
            h('label', { for: id, text: label }));
        })),
        this.choices,
        this.count),
      field(t('text_fr'), this.body),
      field(t('text_en'), this.bodyEn, t('text_en_hint')),
      h('div', { class: 'field' },
        h('span', { class: 'label', text: t('attachments') }),
        this.files,
        h('label', { for: fileId, class: 'secondary button-like', text: t('attach_files') }),
        this.uploads.list),
      field(t('replies'), this.replies),
      field(t('schedule'), this.when, t('schedule_hint')),
      this.error,
      this.done,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', text: t('send_broadcast') })));
    this.renderChoices();
  }

  renderChoices() {
    const store = this.store;
    let content = null;
    if (this.kind === 'grades') {
      const grades = [...new Set(this.groupsHere().map((g) => g.grade).filter((g) => g !== null))].sort((a, b) => a - b);
      content = this.checks(grades.map((g) => [String(g), t('grade_n', { n: g })]));
    } else if (this.kind === 'groups') {
      content = this.checks(this.groupsHere().map((g) => [g.id, g.name]));
    } else if (this.kind === 'parents') {
      const parents = store.dir.people.filter((p) => p.kind === 'parent' && p.children.some((id) => (store.students.get(id) || {}).school === this.school));
      const search = h('input', { type: 'search', class: 'search', 'aria-label': t('search_people'), placeholder: t('search_people') });
      const list = h('div', { class: 'pick-list short' });
      const draw = () => {
        const q = search.value.trim().toLowerCase();
        replace(list, this.checks(parents.filter((p) => !q || p.name.toLowerCase().includes(q))
          .map((p) => [p.id, `${p.name} — ${p.children.map((id) => (store.students.get(id) || {}).name).filter(Boolean).join(', ')}`])));
      };
      search.addEventListener('input', draw);
      draw();
      content = [search, list];
    }
    replace(this.choices, content);
    this.renderCount();
  }

  checks(options) {
    return h('div', { class: 'checks' }, options.map(([value, label]) => {
      const id = uid('chk');
      return h('span', { class: 'check' },
        h('input', {
          type: 'checkbox', id, value, checked: this.picked.has(`${this.kind}:${value}`),
          onchange: (e) => {
            const key = `${this.kind}:${value}`;
            if (e.target.checked) this.picked.add(key);
            else this.picked.delete(key);
            this.renderCount();
          },
        }),
        h('label', { for: id, text: label }));
    }));
  }

  audience() {
    const values = [...this.picked].filter((k) => k.startsWith(`${this.kind}:`)).map((k) => k.slice(this.kind.length + 1));
    if (this.kind === 'school') return { school: true };
    if (this.kind === 'grades') return values.length ? { grades: values.map(Number) } : null;
    if (this.kind === 'groups') return values.length ? { groups: values } : null;
    return values.length ? { parents: values } : null;
  }

  // The same resolution as the server: active parents of the audience's students, each once.
  recipients() {
    const audience = this.audience();
    if (!audience) return 0;
    const parents = new Set();
    for (const s of this.store.students.values()) {
      if (s.school !== this.school) continue;
      const match = audience.school
        || (audience.grades && audience.grades.includes(s.grade))
        || (audience.groups && s.groups.some((g) => audience.groups.includes(g)));
      for (const p of s.parents) {
        if (match || (audience.parents && audience.parents.includes(p))) parents.add(p);
      }
    }
    return parents.size;
  }

  renderCount() {
    if (this.count) this.count.textContent = t('recipients_n', { n: this.recipients() });
  }

  async submit() {
    this.error.textContent = '';
    this.done.textContent = '';
    const audience = this.audience();
    if (!audience) {
      this.error.textContent = t('audience_missing');
      return;
    }
    if (!this.body.value.trim()) {
      this.error.textContent = t('text_fr_missing');
      this.body.focus();
      return;
    }
    if (this.uploads.busy()) {
      this.error.textContent = t('uploads_busy');
      return;
    }
    const doc = {
      school: this.school,
      audience,
      body: this.body.value.trim(),
      replies: this.replies.value,
      attachments: this.uploads.ready().map((a) => a.id),
    };
    if (this.bodyEn.value.trim()) doc.body_en = this.bodyEn.value.trim();
    if (this.when.value) doc.send_at = zonedToIso(this.when.value, this.store.timezone(this.school));
    try {
      const sent = await this.store.api.post('/api/broadcasts', doc);
      this.done.textContent = sent.scheduled
        ? t('broadcast_scheduled', { n: sent.recipients })
        : t('broadcast_sent', { n: sent.recipients });
      this.body.value = '';
      this.bodyEn.value = '';
      this.when.value = '';
      this.uploads.clear();
      this.loadHistory();
    } catch (err) {
      this.error.textContent = err.message || errorText(err);
    }
  }

  async loadHistory() {
    try {
      const { broadcasts } = await this.store.api.get(`/api/broadcasts?school=${encodeURIComponent(this.school)}`);
      this.sends = broadcasts;
    } catch (err) {
      this.sends = [];
      this.historyError = errorText(err);
    }
    this.renderHistory();
  }

  audienceText(a) {
    if (!a) return '';
    if (a.school) return t('aud_school');
    if (a.grades) return a.grades.map((g) => t('grade_n', { n: g })).join(', ');
    if (a.groups) return a.groups.map((g) => (this.store.group(g) || { name: g }).name).join(', ');
    return t('aud_parents_n', { n: a.parents.length });
  }

  renderHistory() {
    const tz = this.store.timezone(this.school);
    const rows = this.sends.map((b) => {
      const state = b.state === 'scheduled'
        ? t('state_scheduled', { when: dateTime(b.send_at, tz) })
        : b.state === 'cancelled' ? t('state_cancelled') : t('seen_by', { n: b.read, m: b.recipients });
      const remind = b.state === 'sent' && b.read < b.recipients
        ? h('button', { type: 'button', class: 'secondary small', text: t('remind'), onclick: (e) => this.remind(b, e.currentTarget) })
        : null;
      const cancel = b.state === 'scheduled'
        ? h('button', { type: 'button', class: 'secondary small', text: t('cancel_send'), onclick: () => this.cancel(b) })
        : null;
      return h('li', { class: 'send', dataset: { broadcast: b.broadcast } },
        h('div', { class: 'send-head' },
          h('span', { class: 'send-when', text: dateTime(b.sent_at || b.send_at || b.created_at, tz) }),
          h('span', { class: 'send-who', text: this.store.name(b.sender) })),
        b.body ? h('p', { class: 'send-body', text: b.body }) : null,
        h('p', { class: 'send-aud', text: this.audienceText(b.audience) }),
        h('p', { class: 'send-state', text: state }),
        remind || cancel ? h('div', { class: 'send-actions' }, remind, cancel) : null);
    });
    replace(this.history,
      h('h2', { id: 'sends-title', text: t('sends') }),
      this.historyError ? h('p', { class: 'error', text: this.historyError }) : null,
      rows.length ? h('ul', { class: 'send-list' }, rows) : h('p', { class: 'empty', text: t('no_sends') }));
  }

  // A reminder is a new bulk send to the recipients who have not read, quoting the original.
  async remind(b, button) {
    button.disabled = true;
    try {
      const stats = await this.store.api.get(`/api/broadcasts/${encodeURIComponent(b.broadcast)}`);
      const unread = stats.unread.map((u) => u.id);
      const original = await this.originalText(b, stats);
      if (!unread.length || !original) throw new Error(t('remind_unavailable'));
      const doc = {
        school: b.school,
        audience: { parents: unread },
        body: `Rappel : ${original.fr}`,
        replies: b.replies,
      };
      if (original.en) doc.body_en = `Reminder: ${original.en}`;
      const sent = await this.store.api.post('/api/broadcasts', doc);
      button.replaceWith(h('span', { class: 'ok', role: 'status', text: t('reminder_sent', { n: sent.recipients }) }));
      this.loadHistory();
    } catch (err) {
      button.disabled = false;
      button.after(h('span', { class: 'error', role: 'alert', text: err.message || errorText(err) }));
    }
  }

  async originalText(b, stats) {
    const fr = b.body || stats.body;
    if (fr) return { fr, en: b.body_en || stats.body_en || null };
    if (!b.conv) return null;
    try {
      const page = await this.store.api.get(`/api/conversations/${encodeURIComponent(b.conv)}/events?limit=5`);
      const message = page.events.find((e) => e.kind === 'message');
      return message && message.body ? { fr: message.body, en: message.body_en || null } : null;
    } catch {
      return null;
    }
  }

  async cancel(b) {
    try {
      await this.store.api.del(`/api/broadcasts/${encodeURIComponent(b.broadcast)}`);
    } catch (err) {
      this.historyError = errorText(err);
    }
    this.loadHistory();
  }
}

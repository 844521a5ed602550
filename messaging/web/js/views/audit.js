// The principal's oversight: search the school's conversations, read one whole (deleted and
// removed messages shown and marked), lock or unlock it with a reason, remove a message,
// export it, and see the trail of audit reads.

import { h, replace, uid, icon } from '../dom.js';
import { t, dateTime } from '../i18n.js';
import { errorText } from './thread.js';

function principalSchools(store) {
  return [...store.schools.values()].filter((s) => s.roles.includes('principal'));
}

export function canAudit(store) {
  return store.isStaff() && principalSchools(store).length > 0;
}

export class AuditView {
  constructor(store) {
    this.store = store;
    this.schools = principalSchools(store);
    this.school = this.schools.length ? this.schools[0].id : null;
    this.results = null;
    this.view = null;
    this.mode = 'search';
  }

  mount(main) {
    this.left = h('section', { class: 'card audit-search', 'aria-labelledby': 'audit-title' });
    this.right = h('section', { class: 'card audit-detail', 'aria-label': t('audit_detail') });
    this.root = h('div', { class: 'page two-columns audit' }, this.left, this.right);
    main.append(this.root);
    this.renderSearch();
    this.renderDetail();
    if (this.results === null) this.search();
  }

  destroy() {}

  update() {}

  snapshot() {
    const { school, results, view, mode, q, from, to, reads } = this;
    return { school, results, view, mode, q, from, to, reads };
  }

  restore(keep) {
    Object.assign(this, keep);
    this.renderSearch();
    this.renderDetail();
  }

  tz() {
    return this.store.timezone(this.school);
  }

  renderSearch() {
    const q = h('input', { type: 'search', id: uid('q'), value: this.q || '' });
    const from = h('input', { type: 'date', id: uid('from'), value: this.from || '' });
    const to = h('input', { type: 'date', id: uid('to'), value: this.to || '' });
    this.resultList = h('div', { class: 'results', 'aria-live': 'polite' });
    const schoolSelect = this.schools.length > 1 ? h('div', { class: 'field' },
      h('label', { for: 'audit-school', text: t('school') }),
      h('select', { id: 'audit-school', onchange: (e) => { this.school = e.target.value; this.search(); } },
        this.schools.map((s) => h('option', { value: s.id, text: s.name, selected: s.id === this.school })))) : null;
    replace(this.left,
      h('h2', { id: 'audit-title', text: t('audit_title') }),
      h('p', { class: 'note', text: t('audit_note') }),
      h('form', {
        class: 'audit-form',
        onsubmit: (e) => {
          e.preventDefault();
          this.q = q.value;
          this.from = from.value;
          this.to = to.value;
          this.search();
        },
      },
      schoolSelect,
      h('div', { class: 'field' }, h('label', { for: q.id, text: t('audit_query') }), q),
      h('div', { class: 'field-row' },
        h('div', { class: 'field' }, h('label', { for: from.id, text: t('date_from') }), from),
        h('div', { class: 'field' }, h('label', { for: to.id, text: t('date_to') }), to)),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: 'primary', text: t('search') }),
        h('button', { type: 'button', class: 'secondary', text: t('audit_reads'), onclick: () => this.showReads() }))),
      this.resultList);
    this.renderResults();
  }

  async search() {
    const params = new URLSearchParams({ school: this.school });
    if (this.q) params.set('q', this.q);
    if (this.from) params.set('from', this.from);
    if (this.to) params.set('to', this.to);
    try {
      const found = await this.store.api.get(`/api/audit/conversations?${params}`);
      this.results = found.conversations;
      this.searchError = null;
    } catch (err) {
      this.results = [];
      this.searchError = err.message || errorText(err);
    }
    this.renderResults();
  }

  renderResults() {
    if (!this.resultList) return;
    if (this.results === null) {
      replace(this.resultList, h('p', { class: 'empty', text: t('loading') }));
      return;
    }
    replace(this.resultList,
      this.searchError ? h('p', { class: 'error', role: 'alert', text: this.searchError }) : null,
      h('p', { class: 'count', text: t('results_n', { n: this.results.length }) }),
      h('ul', { class: 'result-list' }, this.results.map((c) => h('li', {},
        h('button', {
          type: 'button', class: 'result', dataset: { conv: c.conv },
          onclick: () => this.open(c.conv),
        },
        h('span', { class: 'result-title' },
          c.locked ? icon('lock', t('locked_short')) : null,
          h('span', { text: this.resultTitle(c) })),
        h('span', { class: 'result-meta', text: `${t(`kind_${c.kind}`)} · ${t('members_count', { n: c.member_count })} · ${c.last_activity ? dateTime(c.last_activity, this.tz()) : ''}` }))))));
  }

  resultTitle(c) {
    if (c.kind === 'broadcast') {
      const owner = c.members.find((m) => m.id === c.owner);
      return t('broadcast_from', { name: owner ? owner.name : c.owner });
    }
    return c.title || c.members.map((m) => m.name || m.id).join(', ');
  }

  async open(conv) {
    try {
      this.view = await this.store.api.get(`/api/audit/conversations/${encodeURIComponent(conv)}`);
      this.mode = 'conv';
      this.detailError = null;
    } catch (err) {
      this.detailError = err.message || errorText(err);
    }
    this.renderDetail();
    const heading = this.right.querySelector('h2');
    if (heading) heading.focus();
  }

  renderDetail() {
    if (this.mode === 'reads') return this.renderReads();
    const v = this.view;
    if (!v) {
      replace(this.right, h('div', { class: 'placeholder' }, h('p', { text: t('audit_pick') })));
      return;
    }
    const conv = v.conversation;
    const tz = v.school.timezone;
    const names = v.people || {};
    const reason = h('input', { type: 'text', id: uid('reason'), maxlength: 1000 });
    const events = v.events.map((ev) => this.auditEvent(ev, names, tz, conv));
    replace(this.right,
      h('h2', { tabindex: '-1', text: conv.title || v.members.map((m) => m.name || m.id).join(', ') }),
      h('p', { class: 'note', text: `${t(`kind_${conv.kind}`)} · ${v.members.map((m) => m.name || m.id).join(', ')}` }),
      this.detailError ? h('p', { class: 'error', role: 'alert', text: this.detailError }) : null,
      h('div', { class: `lock-state ${conv.locked ? 'is-locked' : ''}`, role: 'status' },
        conv.locked ? icon('lock') : null,
        h('span', { text: conv.locked ? t('audit_locked') : t('audit_unlocked') })),
      h('form', {
        class: 'lock-form',
        onsubmit: (e) => { e.preventDefault(); this.toggleLock(conv, reason.value); },
      },
      conv.locked ? null : h('div', { class: 'field' }, h('label', { for: reason.id, text: t('lock_reason') }), reason),
      h('div', { class: 'form-actions' },
        h('button', { type: 'submit', class: conv.locked ? 'secondary' : 'danger', text: conv.locked ? t('unlock') : t('lock') }),
        h('button', { type: 'button', class: 'secondary', text: t('export_pdf'), onclick: () => this.exportConv(conv.id, 'pdf') }),
        h('button', { type: 'button', class: 'secondary', text: t('export_json'), onclick: () => this.exportConv(conv.id, 'json') }))),
      h('ol', { class: 'audit-events' }, events));
  }

  auditEvent(ev, names, tz, conv) {
    const who = ev.actor_name || names[ev.actor] || ev.actor;
    const when = dateTime(ev.ts, tz);
    if (ev.kind !== 'message') {
      const detail = ev.kind === 'locked' ? (ev.data && ev.data.reason) || ''
        : ev.kind === 'removed' ? (ev.data && ev.data.reason) || '' : '';
      return h('li', { class: 'audit-event system' },
        h('span', { class: 'meta', text: `#${ev.seq} · ${when} · ${who}` }),
        h('span', { text: `${t(`ak_${ev.kind}`)}${ev.target ? ` (#${ev.target})` : ''}${detail ? ` — ${detail}` : ''}` }));
    }
    const withdrawn = ev.deleted || ev.removed;
    const mark = ev.deleted
      ? t('audit_deleted', { name: ev.deleted.by_name || ev.deleted.by, when: dateTime(ev.deleted.at, tz) })
      : ev.removed ? t('audit_removed', { name: ev.removed.by_name || ev.removed.by, when: dateTime(ev.removed.at, tz), reason: ev.removed.reason || '' }) : null;
    const files = (ev.data && ev.data.attachments) || [];
    return h('li', { class: `audit-event message${withdrawn ? ' withdrawn' : ''}`, dataset: { seq: String(ev.seq) } },
      h('span', { class: 'meta', text: `#${ev.seq} · ${when} · ${who}` }),
      h('p', { class: 'body', text: ev.body || '' }),
      files.length ? h('p', { class: 'files-line', text: files.map((f) => f.name).join(', ') }) : null,
      mark ? h('p', { class: 'withdrawn-mark', text: mark }) : null,
      withdrawn ? null : this.removeControl(ev, conv));
  }

  removeControl(ev, conv) {
    const box = h('div', { class: 'remove-box' });
    const start = h('button', {
      type: 'button', class: 'link danger', text: t('remove_message'),
      'aria-label': t('remove_message_n', { n: ev.seq }),
      onclick: () => {
        const reason = h('input', { type: 'text', id: uid('rm'), maxlength: 1000, required: true });
        replace(box, h('form', {
          class: 'inline-form',
          onsubmit: async (e) => {
            e.preventDefault();
            if (!reason.value.trim()) return;
            try {
              await this.store.control({ t: 'moderate', conv: conv.id, seq: ev.seq, action: 'remove', reason: reason.value.trim() });
              await this.open(conv.id);
            } catch (err) {
              box.append(h('p', { class: 'error', role: 'alert', text: err.message || errorText(err) }));
            }
          },
        },
        h('label', { for: reason.id, text: t('remove_reason') }), reason,
        h('button', { type: 'submit', class: 'danger small', text: t('remove_confirm') })));
        reason.focus();
      },
    });
    box.append(start);
    return box;
  }

  async toggleLock(conv, reason) {
    const frame = conv.locked ? { t: 'unlock', conv: conv.id } : { t: 'lock', conv: conv.id };
    if (!conv.locked && reason.trim()) frame.reason = reason.trim();
    try {
      await this.store.control(frame);
      this.detailError = null;
    } catch (err) {
      this.detailError = err.message || errorText(err);
    }
    await this.open(conv.id);
    this.search();
  }

  async exportConv(conv, format) {
    try {
      const blob = await this.store.api.blob(`/api/audit/conversations/${encodeURIComponent(conv)}/export?format=${format}&locale=${document.documentElement.lang}`);
      const url = URL.createObjectURL(blob);
      const link = h('a', { href: url, download: `conversation-${conv}.${format}`, class: 'hidden' });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      this.detailError = errorText(err);
      this.renderDetail();
    }
  }

  async showReads() {
    this.mode = 'reads';
    try {
      const data = await this.store.api.get(`/api/audit/reads?school=${encodeURIComponent(this.school)}&limit=100`);
      this.reads = data.reads;
      this.readsError = null;
    } catch (err) {
      this.reads = [];
      this.readsError = err.message || errorText(err);
    }
    this.renderReads();
    const heading = this.right.querySelector('h2');
    if (heading) heading.focus();
  }

  renderReads() {
    const tz = this.tz();
    replace(this.right,
      h('h2', { tabindex: '-1', text: t('audit_reads') }),
      h('p', { class: 'note', text: t('audit_reads_note') }),
      this.readsError ? h('p', { class: 'error', role: 'alert', text: this.readsError }) : null,
      h('table', { class: 'reads' },
        h('caption', { class: 'visually-hidden', text: t('audit_reads') }),
        h('thead', {}, h('tr', {}, [t('col_when'), t('col_who'), t('col_action'), t('col_conversation')].map((c) => h('th', { scope: 'col', text: c })))),
        h('tbody', {}, (this.reads || []).map((r) => h('tr', {},
          h('td', { text: dateTime(r.at, tz) }),
          h('td', { text: r.reader_name || r.reader }),
          h('td', { text: t(`read_${r.action}`) }),
          h('td', { text: r.conv || (r.search && r.search.q ? `« ${r.search.q} »` : '—') }))))),
      h('button', { type: 'button', class: 'secondary', text: t('back_to_search'), onclick: () => { this.mode = this.view ? 'conv' : 'search'; this.renderDetail(); } }));
  }
}

// One open conversation: its messages, receipts, typing, lock state and the composer.

import { h, replace, icon } from '../dom.js';
import { t, time, day, sameDay, whenAhead } from '../i18n.js';
import { convTitle, convSubtitle, others, offHours } from '../people.js';
import { Composer } from './composer.js';
import { attachmentList } from './files.js';

function systemText(store, ev) {
  const who = store.name(ev.actor);
  switch (ev.kind) {
    case 'created':
      return ev.conv_kind === 'broadcast' ? null : t('ev_created', { name: who });
    case 'locked':
      if (ev.actor === 'system') return t('ev_locked_no_staff');
      return ev.reason ? t('ev_locked_reason', { reason: ev.reason }) : t('ev_locked');
    case 'unlocked':
      return t('ev_unlocked');
    case 'member_added':
      return t('ev_member_added', { name: who, user: store.name(ev.user) });
    case 'member_removed':
      return t('ev_member_left', { user: store.name(ev.user) });
    default:
      return null;
  }
}

export class Thread {
  constructor(store, c, { back }) {
    this.store = store;
    this.c = c;
    this.back = back;
    this.confirming = null;
  }

  mount(box) {
    const store = this.store;
    const c = this.c;
    this.title = h('h2', { class: 'thread-title', id: 'thread-title', text: convTitle(store, c) });
    this.subtitle = h('p', { class: 'thread-sub', text: convSubtitle(store, c) });
    this.lockNote = h('div', { class: 'lock-note', role: 'status' });
    this.log = h('div', {
      class: 'messages',
      role: 'log',
      'aria-live': 'polite',
      'aria-relevant': 'additions',
      'aria-labelledby': 'thread-title',
      tabindex: '0',
    });
    this.typingLine = h('p', { class: 'typing', 'aria-live': 'polite' });
    this.hours = h('p', { class: 'hours-note', role: 'note' });
    this.composer = new Composer(store, c);
    this.root = h('div', { class: 'thread', dataset: { conv: c.conv } },
      h('header', { class: 'thread-head' },
        h('button', { type: 'button', class: 'back icon-button', 'aria-label': t('back_to_list'), onclick: this.back }, icon('back')),
        h('div', { class: 'thread-names' }, this.title, this.subtitle)),
      this.lockNote,
      this.log,
      this.typingLine,
      this.hours,
      this.composer.element());
    replace(box, this.root);
    this.render();
  }

  focus() {
    this.composer.focus() || this.log.focus();
  }

  destroy() {
    this.composer.destroy();
  }

  snapshot() {
    return this.composer.snapshot();
  }

  restore(draft) {
    this.composer.restore(draft);
  }

  update(detail) {
    if (detail.directory) {
      this.title.textContent = convTitle(this.store, this.c);
      this.subtitle.textContent = convSubtitle(this.store, this.c);
    }
    if (detail.conv && detail.conv !== this.c.conv) return;
    if (detail.typing) this.renderTyping();
    else this.render();
  }

  render() {
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
    this.renderLock();
    this.renderMessages();
    this.renderTyping();
    this.renderHours();
    this.composer.sync();
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
  }

  renderLock() {
    const c = this.c;
    this.lockNote.className = `lock-note${c.locked ? '' : ' hidden'}`;
    replace(this.lockNote, c.locked ? [icon('lock'), h('span', {
      text: c.lockReason ? t('locked_banner_reason', { reason: c.lockReason }) : t('locked_banner'),
    })] : []);
  }

  renderMessages() {
    const store = this.store;
    const c = this.c;
    const tz = store.timezone(c.school);
    const items = [];
    if (c.base !== null && c.base > 1) {
      items.push(h('button', {
        type: 'button', class: 'link older', text: t('load_older'),
        onclick: () => store.loadOlder(c),
      }));
    }
    if (c.h === null && c.loading) items.push(h('p', { class: 'empty', text: t('loading') }));
    const seenUpTo = Math.max(0, ...[...c.receipts.entries()]
      .filter(([user]) => user !== store.me.id).map(([, seq]) => seq));
    const mine = c.messages().filter((m) => m.actor === store.me.id && !m.deleted && !m.removed);
    const lastMine = mine.length ? mine[mine.length - 1].seq : null;
    let previous = null;
    for (const ev of c.sorted()) {
      if (!previous || !sameDay(previous.ts, ev.ts, tz)) {
        items.push(h('p', { class: 'day' }, h('span', { text: day(ev.ts, tz) })));
      }
      previous = ev;
      if (ev.kind === 'message') items.push(this.message(ev, tz, ev.seq === lastMine, seenUpTo));
      else {
        const text = systemText(store, ev);
        if (text) items.push(h('p', { class: 'system', text }));
      }
    }
    for (const p of store.pendingFor(c.conv)) items.push(this.pendingItem(p));
    if (!items.length) items.push(h('p', { class: 'empty', text: t('no_messages') }));
    replace(this.log, items);
  }

  message(ev, tz, isLastMine, seenUpTo) {
    const store = this.store;
    const c = this.c;
    const mine = ev.actor === store.me.id;
    const gone = ev.deleted || ev.removed;
    const body = gone
      ? h('p', { class: 'body gone', text: ev.deleted ? t('message_deleted') : t('message_removed') })
      : ev.body ? h('p', { class: 'body', text: ev.body }) : null;
    const quote = ev.quote && !gone ? h('blockquote', { class: 'quote' },
      h('span', { class: 'quote-label', text: t('reply_to_broadcast') }),
      h('span', { text: ev.quote.body })) : null;
    let status = null;
    if (mine && isLastMine && !gone && c.kind !== 'broadcast') {
      const seen = seenUpTo >= ev.seq;
      status = h('span', { class: `status${seen ? ' seen' : ''}`, text: seen ? t('seen') : t('sent') });
    }
    let actions = null;
    if (mine && !gone && !c.locked && c.kind !== 'broadcast') {
      actions = this.confirming === ev.seq
        ? h('span', { class: 'actions' },
          h('button', { type: 'button', class: 'link danger', text: t('confirm_delete'), onclick: () => this.doDelete(ev.seq) }),
          h('button', { type: 'button', class: 'link', text: t('cancel'), onclick: () => { this.confirming = null; this.render(); } }))
        : h('span', { class: 'actions' },
          h('button', {
            type: 'button', class: 'link', text: t('delete'),
            'aria-label': t('delete_message_at', { time: time(ev.ts, tz) }),
            onclick: () => { this.confirming = ev.seq; this.render(); },
          }));
    }
    return h('article', {
      class: `msg ${mine ? 'mine' : 'theirs'}${gone ? ' withdrawn' : ''}`,
      dataset: { seq: String(ev.seq) },
    },
    h('header', { class: 'msg-head' },
      h('span', { class: 'author', text: mine ? t('you') : store.name(ev.actor) }),
      h('time', { datetime: ev.ts, text: time(ev.ts, tz) })),
    quote,
    body,
    !gone && ev.attachments && ev.attachments.length ? attachmentList(store, ev.attachments) : null,
    status || actions ? h('footer', { class: 'msg-foot' }, status, actions) : null);
  }

  pendingItem(p) {
    const failed = p.state === 'failed';
    return h('article', { class: `msg mine pending${failed ? ' failed' : ''}`, dataset: { cid: p.cid } },
      h('header', { class: 'msg-head' }, h('span', { class: 'author', text: t('you') })),
      p.body ? h('p', { class: 'body', text: p.body }) : null,
      p.attachments.length ? attachmentList(this.store, p.attachments) : null,
      h('footer', { class: 'msg-foot' },
        h('span', { class: 'status', role: failed ? 'alert' : null,
          text: failed ? t('send_failed', { reason: errorText(p.error) }) : t('waiting') }),
        failed ? h('span', { class: 'actions' },
          p.error && p.error.code !== 'locked' ? h('button', { type: 'button', class: 'link', text: t('retry'), onclick: () => this.store.retry(p.cid) }) : null,
          h('button', { type: 'button', class: 'link', text: t('discard'), onclick: () => this.store.discard(p.cid) })) : null));
  }

  async doDelete(seq) {
    this.confirming = null;
    try {
      await this.store.deleteMessage(this.c, seq);
    } catch (err) {
      this.composer.showError(errorText(err));
    }
    this.render();
  }

  renderTyping() {
    const now = Date.now();
    const names = [...this.c.typing.entries()]
      .filter(([user, until]) => until > now && user !== this.store.me.id)
      .map(([user]) => this.store.name(user));
    this.typingLine.textContent = names.length ? t('typing', { names: names.join(', ') }) : '';
  }

  renderHours() {
    const off = this.c.locked ? null : offHours(this.store, this.c);
    if (!off) {
      this.hours.textContent = '';
      this.hours.classList.add('hidden');
      return;
    }
    this.hours.classList.remove('hidden');
    const tz = this.store.timezone(this.c.school);
    this.hours.textContent = off.when
      ? t('will_see', { name: off.person.name, when: whenAhead(off.when, tz) })
      : t('will_see_later', { name: off.person.name });
  }
}

export function errorText(err) {
  if (!err) return '';
  const known = {
    locked: 'err_locked',
    forbidden: 'err_forbidden',
    not_found: 'err_not_found',
    rate_limited: 'err_rate_limited',
    unavailable: 'err_unavailable',
    too_large: 'err_too_large',
    unsupported_type: 'err_unsupported_type',
    feature_disabled: 'err_feature_disabled',
    no_staff: 'err_no_staff',
    disconnected: 'err_unavailable',
  };
  return known[err.code] ? t(known[err.code]) : err.message || t('err_internal');
}

export { others };

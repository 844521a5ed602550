// Conversations: the list grouped by school and child, and the open conversation.

import { h, replace, icon } from '../dom.js';
import { t, shortWhen } from '../i18n.js';
import { convTitle, convSubtitle, childrenOf, childLabel } from '../people.js';
import { Thread } from './thread.js';
import { NewConversation } from './newconv.js';

function preview(store, c) {
  const pending = store.pendingFor(c.conv);
  if (pending.length) return t('you_prefix', { text: pending[pending.length - 1].body || t('attachment_only') });
  const last = c.messages().pop();
  if (!last) return '';
  if (last.deleted) return t('message_deleted');
  if (last.removed) return t('message_removed');
  const text = last.body || (last.attachments.length ? t('attachment_only') : '');
  return last.actor === store.me.id ? t('you_prefix', { text }) : text;
}

function sections(store) {
  const bySchool = new Map();
  for (const c of store.convs.values()) {
    if (!bySchool.has(c.school)) bySchool.set(c.school, new Map());
    const groups = bySchool.get(c.school);
    let key;
    let label;
    if (c.kind === 'broadcast') {
      key = '~broadcast';
      label = t('section_broadcasts');
    } else {
      const kids = childrenOf(store, c);
      if (kids.length) {
        key = `child:${kids[0].name}:${kids[0].id}`;
        label = childLabel(store, kids[0]);
      } else if (store.me.kind === 'parent') {
        key = '~school';
        label = t('section_school');
      } else {
        key = '~staff';
        label = t('section_staff');
      }
    }
    if (!groups.has(key)) groups.set(key, { label, convs: [] });
    groups.get(key).convs.push(c);
  }
  const activity = (c) => {
    const last = c.lastActivity();
    return last ? last.ts : '';
  };
  const schools = [...bySchool.entries()].sort(([a], [b]) =>
    ((store.schools.get(a) || {}).name || a).localeCompare((store.schools.get(b) || {}).name || b));
  return schools.map(([school, groups]) => ({
    school,
    groups: [...groups.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([, g]) => ({ ...g, convs: g.convs.sort((x, y) => activity(y).localeCompare(activity(x)) || y.last_seq - x.last_seq) })),
  }));
}

export class ChatsView {
  constructor(store, app) {
    this.store = store;
    this.app = app;
    this.thread = null;
    this.selected = null;
  }

  mount(main) {
    this.list = h('div', { class: 'conv-list' });
    this.threadBox = h('section', { class: 'thread-box', 'aria-label': t('conversation') });
    this.root = h('div', { class: 'chats' },
      h('nav', { class: 'sidebar', 'aria-label': t('conversations') },
        h('div', { class: 'sidebar-head' },
          h('h2', { text: t('conversations') }),
          this.canStart() ? h('button', {
            type: 'button', class: 'primary small', onclick: () => this.newConversation(),
          }, icon('plus'), h('span', { text: t('new_conversation') })) : null),
        this.list),
      this.threadBox);
    main.append(this.root);
    this.renderList();
    if (this.selected && this.store.convs.has(this.selected)) this.select(this.selected, false);
    else this.renderEmpty();
  }

  canStart() {
    return this.store.dir.people.some((p) => p.contact && p.contact.length);
  }

  destroy() {
    if (this.thread) this.thread.destroy();
  }

  snapshot() {
    return { selected: this.selected, draft: this.thread ? this.thread.snapshot() : null };
  }

  restore(keep) {
    if (keep.selected) {
      this.select(keep.selected, false);
      if (keep.draft && this.thread) this.thread.restore(keep.draft);
    }
  }

  update(detail) {
    if (detail.moved && detail.moved.from === this.selected) {
      this.select(detail.moved.to, false);
      return;
    }
    if (detail.conv || detail.list || detail.directory) this.renderListSoon();
    if (this.selected && !this.store.convs.has(this.selected)) {
      this.selected = null;
      this.renderEmpty();
    }
    if (this.thread) this.thread.update(detail);
  }

  renderListSoon() {
    if (this.listTimer) return;
    this.listTimer = setTimeout(() => {
      this.listTimer = null;
      this.renderList();
    }, 30);
  }

  renderList() {
    const store = this.store;
    const all = sections(store);
    if (!all.length) {
      replace(this.list, h('p', { class: 'empty', text: t('no_conversations') }));
      return;
    }
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.conv : null;
    replace(this.list, all.map((s) => h('section', { class: 'school' },
      h('h3', { class: 'school-name', text: (store.schools.get(s.school) || {}).name || s.school }),
      s.groups.map((g) => h('div', { class: 'group' },
        h('h4', { class: 'group-name', text: g.label }),
        h('ul', {}, g.convs.map((c) => this.item(c))))))));
    if (focused) {
      const again = this.list.querySelector(`[data-conv="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  item(c) {
    const store = this.store;
    const last = c.lastActivity();
    const title = convTitle(store, c);
    const unread = c.conv === this.selected ? 0 : c.unread || 0;
    const status = [unread ? t('unread_n', { n: unread }) : null, c.locked ? t('locked_short') : null]
      .filter(Boolean).join(', ');
    return h('li', {},
      h('button', {
        type: 'button',
        class: `conv-item${c.conv === this.selected ? ' selected' : ''}${unread ? ' has-unread' : ''}`,
        'aria-current': c.conv === this.selected ? 'true' : null,
        dataset: { conv: c.conv },
        onclick: () => this.select(c.conv),
      },
      h('span', { class: 'conv-line' },
        h('span', { class: 'conv-title', text: title }),
        last ? h('span', { class: 'conv-when', text: shortWhen(last.ts, store.timezone(c.school)) }) : null),
      h('span', { class: 'conv-line' },
        h('span', { class: 'conv-preview', text: preview(store, c) || convSubtitle(store, c) }),
        c.locked ? icon('lock') : null,
        unread ? h('span', { class: 'badge', 'aria-hidden': 'true', text: String(unread) }) : null,
        status ? h('span', { class: 'visually-hidden', text: `, ${status}` }) : null)));
  }

  renderEmpty() {
    if (this.thread) this.thread.destroy();
    this.thread = null;
    this.root.classList.remove('has-open');
    replace(this.threadBox, h('div', { class: 'placeholder' }, h('p', { text: t('pick_conversation') })));
  }

  select(convId, focus = true) {
    const c = this.store.convs.get(convId);
    if (!c) return;
    if (this.thread) this.thread.destroy();
    this.selected = convId;
    this.root.classList.add('has-open');
    this.thread = new Thread(this.store, c, {
      back: () => {
        this.selected = null;
        this.store.openConv = null;
        this.renderEmpty();
        this.renderList();
        const item = this.list.querySelector(`[data-conv="${CSS.escape(convId)}"]`);
        if (item) item.focus();
      },
    });
    this.thread.mount(this.threadBox);
    this.store.setOpen(convId);
    this.renderList();
    if (focus) this.thread.focus();
  }

  newConversation() {
    new NewConversation(this.store, (conv) => this.select(conv)).open();
  }
}

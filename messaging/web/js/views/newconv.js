// Starting a conversation: the people the rules let the user write to, in a modal dialog.
// One person and no title: a direct conversation; otherwise a group (staff stay members).

import { h, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { roleLabel, childLabel } from '../people.js';
import { errorText } from './thread.js';

export class NewConversation {
  constructor(store, onOpened) {
    this.store = store;
    this.onOpened = onOpened;
    const schools = new Set();
    for (const p of store.dir.people) for (const s of p.contact || []) schools.add(s);
    this.schools = [...store.schools.values()].filter((s) => schools.has(s.id));
    this.closed = [...store.schools.values()].filter((s) => !schools.has(s.id));
    this.school = this.schools.length ? this.schools[0].id : null;
    this.chosen = new Set();
  }

  open() {
    const titleId = uid('dlg');
    this.list = h('div', { class: 'pick-list' });
    this.search = h('input', {
      type: 'search', class: 'search', 'aria-label': t('search_people'), placeholder: t('search_people'),
      oninput: () => this.renderList(),
    });
    this.titleInput = h('input', { type: 'text', maxlength: 200, id: uid('title') });
    this.titleRow = h('div', { class: 'field hidden' },
      h('label', { for: this.titleInput.id, text: t('group_title') }), this.titleInput);
    this.error = h('p', { class: 'error', role: 'alert' });
    this.start = h('button', { type: 'submit', class: 'primary', text: t('start_conversation'), disabled: true });
    const schoolSelect = this.schools.length > 1 ? h('div', { class: 'field' },
      h('label', { for: 'newconv-school', text: t('school') }),
      h('select', {
        id: 'newconv-school',
        onchange: (e) => {
          this.school = e.target.value;
          this.chosen.clear();
          this.renderList();
        },
      }, this.schools.map((s) => h('option', { value: s.id, text: s.name })))) : null;
    const closedNote = this.closed.length && this.store.me.kind === 'parent'
      ? h('p', { class: 'note', text: t('parent_initiated_off', { schools: this.closed.map((s) => s.name).join(', ') }) })
      : null;
    this.dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('form', {
        method: 'dialog',
        onsubmit: (e) => {
          e.preventDefault();
          this.submit();
        },
      },
      h('h2', { id: titleId, text: t('new_conversation') }),
      closedNote,
      schoolSelect,
      this.search,
      this.list,
      this.titleRow,
      this.error,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'secondary', text: t('cancel'), onclick: () => this.close() }),
        this.start)));
    this.dialog.addEventListener('close', () => this.dialog.remove());
    document.body.append(this.dialog);
    this.renderList();
    this.dialog.showModal();
    this.search.focus();
  }

  close() {
    this.dialog.close();
  }

  groups() {
    const store = this.store;
    const school = this.school;
    const query = this.search.value.trim().toLowerCase();
    const people = store.dir.people.filter((p) => (p.contact || []).includes(school)
      && (!query || p.name.toLowerCase().includes(query) || roleLabel(store, p, school).toLowerCase().includes(query)));
    const sections = new Map();
    const put = (key, label, p) => {
      if (!sections.has(key)) sections.set(key, { label, people: [] });
      sections.get(key).people.push(p);
    };
    for (const p of people) {
      if (p.kind === 'staff') {
        const mine = store.me.kind === 'parent'
          ? (store.me.children || []).map((id) => store.students.get(id)).find((child) => child && child.school === school
            && (p.roles || []).some((r) => r.school === school && r.groups.some((g) => child.groups.includes(g))))
          : null;
        if (mine) put(`0:${mine.name}`, t('teachers_of', { name: mine.name }), p);
        else put('1:staff', t('section_staff_people'), p);
      } else {
        const kid = (p.children || []).map((id) => store.students.get(id)).find((s) => s && s.school === school);
        put(kid ? `2:${childLabel(store, kid)}` : '3', kid ? t('parents_in', { group: (store.group(kid.groups[0]) || {}).name || '' }) : t('role_parent'), p);
      }
    }
    return [...sections.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
  }

  renderList() {
    const groups = this.groups();
    if (!groups.length) {
      replace(this.list, h('p', { class: 'empty', text: t('nobody_to_write') }));
    } else {
      replace(this.list, groups.map((g) => h('fieldset', { class: 'pick-group' },
        h('legend', { text: g.label }),
        g.people.map((p) => {
          const id = uid('pick');
          return h('div', { class: 'pick' },
            h('input', {
              type: 'checkbox', id, checked: this.chosen.has(p.id),
              onchange: (e) => {
                if (e.target.checked) this.chosen.add(p.id);
                else this.chosen.delete(p.id);
                this.sync();
              },
            }),
            h('label', { for: id },
              h('span', { class: 'pick-name', text: p.name }),
              h('span', { class: 'pick-what', text: roleLabel(this.store, p, this.school) })));
        }))));
    }
    this.sync();
  }

  sync() {
    this.start.disabled = this.chosen.size === 0;
    const schoolGroups = (this.store.schools.get(this.school) || { features: {} }).features.groups;
    this.titleRow.classList.toggle('hidden', this.chosen.size < 2 && !this.titleInput.value);
    if (this.chosen.size > 1 && !schoolGroups) this.error.textContent = t('groups_disabled');
    else this.error.textContent = '';
  }

  async submit() {
    if (!this.chosen.size) return;
    this.start.disabled = true;
    try {
      const conv = await this.store.open(this.school, [...this.chosen], this.titleInput.value.trim() || null);
      this.close();
      this.onOpened(conv);
    } catch (err) {
      this.error.textContent = errorText(err);
      this.start.disabled = false;
    }
  }
}

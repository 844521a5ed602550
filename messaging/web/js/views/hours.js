// A staff member's working hours: up to four periods a day, saved with
// PUT /api/me/working-hours. Parents writing outside them are told when they will be read.

import { h, replace, uid } from '../dom.js';
import { t } from '../i18n.js';
import { errorText } from './thread.js';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const MAX_PERIODS = 4;

export class HoursView {
  constructor(store) {
    this.store = store;
    const current = store.me.working_hours || {};
    this.hours = Object.fromEntries(DAYS.map((d) => [d, (current[d] || []).map((p) => [...p])]));
  }

  mount(main) {
    this.form = h('form', { class: 'card hours-form', onsubmit: (e) => { e.preventDefault(); this.save(); } });
    main.append(h('div', { class: 'page' }, this.form));
    this.render();
  }

  destroy() {}

  update() {}

  snapshot() {
    return this.hours;
  }

  restore(hours) {
    this.hours = hours;
    this.render();
  }

  render() {
    this.status = h('p', { class: 'ok', role: 'status' });
    this.error = h('p', { class: 'error', role: 'alert' });
    replace(this.form,
      h('h2', { text: t('hours_title') }),
      h('p', { class: 'note', text: t('hours_note') }),
      h('div', { class: 'days' }, DAYS.map((d) => this.dayRow(d))),
      this.error,
      this.status,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', text: t('save') })));
  }

  dayRow(d) {
    const periods = this.hours[d];
    return h('fieldset', { class: 'day-row' },
      h('legend', { text: t(`day_${d}`) }),
      periods.length ? null : h('span', { class: 'off', text: t('not_working') }),
      periods.map((p, i) => {
        const start = h('input', { type: 'time', id: uid('s'), value: p[0], required: true, onchange: (e) => { p[0] = e.target.value; } });
        const end = h('input', { type: 'time', id: uid('e'), value: p[1] === '24:00' ? '23:59' : p[1], required: true, onchange: (e) => { p[1] = e.target.value; } });
        return h('div', { class: 'period' },
          h('label', { for: start.id, text: t('from_n', { n: i + 1 }) }), start,
          h('label', { for: end.id, text: t('to') }), end,
          h('button', {
            type: 'button', class: 'link', text: t('remove'),
            'aria-label': t('remove_period', { day: t(`day_${d}`), n: i + 1 }),
            onclick: () => { periods.splice(i, 1); this.render(); },
          }));
      }),
      periods.length < MAX_PERIODS ? h('button', {
        type: 'button', class: 'link',
        text: t('add_period'),
        'aria-label': t('add_period_to', { day: t(`day_${d}`) }),
        onclick: () => { periods.push(['08:00', '16:00']); this.render(); },
      }) : null);
  }

  async save() {
    this.error.textContent = '';
    this.status.textContent = '';
    try {
      await this.store.api.put('/api/me/working-hours', this.hours);
      this.store.me.working_hours = this.hours;
      this.status.textContent = t('hours_saved');
    } catch (err) {
      this.error.textContent = err.status === 404 || err.status === 405 ? t('hours_unavailable') : err.message || errorText(err);
    }
  }
}

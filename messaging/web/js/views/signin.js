// Development sign-in (MESSAGING_DEV_LOGIN=1): pick any roster user.

import { h, replace } from '../dom.js';
import { t, lang } from '../i18n.js';

function describe(user, schools) {
  if (user.kind === 'parent') {
    return user.children.length ? t('parent_of', { names: user.children.join(', ') }) : t('role_parent');
  }
  return user.roles.map((r) => `${t(`role_${r.role}`)} · ${schools.get(r.school) || r.school}`).join(', ');
}

export function renderSignIn(root, dev, onPick, onLang) {
  const schools = new Map(dev.schools.map((s) => [s.id, s.name]));
  const draw = () => {
    const other = lang() === 'fr' ? 'en' : 'fr';
    const error = h('p', { class: 'error', role: 'alert' });
    const section = (title, users) => h('section', { class: 'signin-group' },
      h('h2', { text: title }),
      h('ul', { class: 'signin-list' }, users.map((u) => h('li', {},
        h('button', {
          type: 'button',
          class: 'signin-user',
          dataset: { user: u.id },
          onclick: async (e) => {
            e.currentTarget.disabled = true;
            try {
              await onPick(u.id);
            } catch {
              error.textContent = t('signin_failed');
              e.currentTarget.disabled = false;
            }
          },
        },
        h('span', { class: 'signin-name', text: u.name }),
        h('span', { class: 'signin-what', text: describe(u, schools) }))))));
    replace(root,
      h('main', { class: 'signin', id: 'main' },
        h('div', { class: 'signin-head' },
          h('h1', { text: t('signin_title') }),
          h('button', {
            type: 'button', class: 'lang', lang: other,
            onclick: () => { onLang(other); draw(); },
            text: other === 'en' ? 'English' : 'Français',
          })),
        h('p', { class: 'note', text: t('signin_note') }),
        error,
        section(t('signin_staff'), dev.users.filter((u) => u.kind === 'staff')),
        section(t('signin_parents'), dev.users.filter((u) => u.kind === 'parent'))));
  };
  draw();
}

// Names and labels derived from the directory: conversation titles, who someone is, and the
// school and child a conversation is filed under.

import { t } from './i18n.js';

export function roleLabel(store, person, school) {
  if (!person) return '';
  if (person.kind === 'parent') {
    const kids = (person.children || [])
      .map((id) => store.students.get(id))
      .filter((s) => s && (!school || s.school === school))
      .map((s) => s.name);
    return kids.length ? t('parent_of', { names: kids.join(', ') }) : t('role_parent');
  }
  const roles = (person.roles || []).filter((r) => !school || r.school === school);
  return roles.map((r) => {
    const groups = r.groups.map((g) => (store.group(g) || {}).name).filter(Boolean);
    const label = t(`role_${r.role}`);
    return groups.length ? `${label} (${groups.join(', ')})` : label;
  }).join(', ');
}

export function others(store, c) {
  return c.members.filter((m) => m !== store.me.id);
}

export function convTitle(store, c) {
  if (c.kind === 'broadcast') {
    const owner = c.members[0];
    if (owner === store.me.id) return t('broadcast_mine');
    return t('broadcast_from', { name: store.name(owner) });
  }
  if (c.title) return c.title;
  const names = others(store, c).map((m) => store.name(m));
  if (!names.length) return t('only_you');
  return names.join(', ');
}

export function convSubtitle(store, c) {
  if (c.kind === 'broadcast') return t('kind_broadcast');
  const rest = others(store, c);
  if (c.kind === 'direct' && rest.length === 1) return roleLabel(store, store.person(rest[0]), c.school);
  return t('members_count', { n: c.members.length });
}

// The child a conversation is about, for filing it: for a parent, the child whose class groups
// the conversation's staff teach; for staff, the children of the parents in it.
export function childrenOf(store, c) {
  const me = store.me;
  const rest = others(store, c).map((m) => store.person(m)).filter(Boolean);
  if (me.kind === 'parent') {
    const mine = (me.children || []).map((id) => store.students.get(id)).filter((s) => s && s.school === c.school);
    return mine.filter((child) => rest.some((p) => (p.roles || []).some(
      (r) => r.school === c.school && r.groups.some((g) => child.groups.includes(g)))));
  }
  const kids = [];
  for (const p of rest) {
    for (const id of p.children || []) {
      const s = store.students.get(id);
      if (s && s.school === c.school && !kids.includes(s)) kids.push(s);
    }
  }
  return kids;
}

export function childLabel(store, child) {
  const groups = child.groups.map((g) => (store.group(g) || {}).name).filter(Boolean);
  return groups.length ? `${child.name} · ${groups.join(', ')}` : child.name;
}

// When staff members of the conversation are off their hours: who, and when they are back.
export function offHours(store, c) {
  if (c.kind === 'broadcast') return null;
  const staff = others(store, c).map((m) => store.person(m)).filter((p) => p && p.kind === 'staff');
  if (!staff.length) return null;
  // Prefer what `ready` said for this conversation; else the directory's figures.
  const fromReady = new Map((c.availability || []).map((a) => [a.user, {
    working_now: a.working, next_working_start: a.next_start,
  }]));
  const states = staff.map((p) => {
    const a = fromReady.get(p.id) || (p.availability || {})[c.school];
    return { person: p, a };
  }).filter((x) => x.a);
  if (!states.length || states.some((x) => x.a.working_now)) return null;
  const next = states
    .filter((x) => x.a.next_working_start)
    .sort((x, y) => x.a.next_working_start.localeCompare(y.a.next_working_start))[0];
  if (!next) return { person: staff[0], when: null };
  if (new Date(next.a.next_working_start) <= new Date()) return null;
  return { person: next.person, when: next.a.next_working_start };
}

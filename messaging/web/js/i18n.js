// Every text of the page, in French and English, and dates and times in the school's zone.

import { FR, EN } from './strings.js';

const TABLES = { fr: FR, en: EN };
let current = 'fr';

export function setLang(lang) {
  current = lang === 'en' ? 'en' : 'fr';
  document.documentElement.lang = current;
}

export function lang() {
  return current;
}

export function t(key, params = {}) {
  const table = TABLES[current];
  let text = table[key];
  if (text === undefined) {
    console.warn('missing text', key);
    text = key;
  }
  if (typeof text === 'function') return text(params);
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

function locale() {
  return current === 'en' ? 'en-CA' : 'fr-CA';
}

function parts(date, tz) {
  const fmt = new Intl.DateTimeFormat('en-CA', {
    timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
  });
  return fmt.format(date); // YYYY-MM-DD
}

export function time(iso, tz) {
  return new Intl.DateTimeFormat(locale(), { timeZone: tz, hour: 'numeric', minute: '2-digit' })
    .format(new Date(iso));
}

export function day(iso, tz) {
  return new Intl.DateTimeFormat(locale(), {
    timeZone: tz, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric',
  }).format(new Date(iso));
}

export function dateTime(iso, tz) {
  return new Intl.DateTimeFormat(locale(), {
    timeZone: tz, day: 'numeric', month: 'short', year: 'numeric', hour: 'numeric', minute: '2-digit',
  }).format(new Date(iso));
}

// "10:42" today, "hier" / "yesterday", a weekday within a week, else a short date.
export function shortWhen(iso, tz, now = new Date()) {
  const date = new Date(iso);
  const d = parts(date, tz);
  if (d === parts(now, tz)) return time(iso, tz);
  if (d === parts(new Date(now.getTime() - 86400000), tz)) return t('yesterday');
  if (now - date < 6 * 86400000) {
    return new Intl.DateTimeFormat(locale(), { timeZone: tz, weekday: 'short' }).format(date);
  }
  return new Intl.DateTimeFormat(locale(), { timeZone: tz, day: 'numeric', month: 'short' }).format(date);
}

// "lundi à 7 h 30" / "Monday at 7:30 a.m.", "aujourd'hui à ...", "demain à ...".
export function whenAhead(iso, tz, now = new Date()) {
  const date = new Date(iso);
  const d = parts(date, tz);
  const at = time(iso, tz);
  if (d === parts(now, tz)) return t('today_at', { time: at });
  if (d === parts(new Date(now.getTime() + 86400000), tz)) return t('tomorrow_at', { time: at });
  if (date - now < 6 * 86400000) {
    const weekday = new Intl.DateTimeFormat(locale(), { timeZone: tz, weekday: 'long' }).format(date);
    return t('weekday_at', { day: weekday, time: at });
  }
  const full = new Intl.DateTimeFormat(locale(), {
    timeZone: tz, weekday: 'long', day: 'numeric', month: 'long',
  }).format(date);
  return t('weekday_at', { day: full, time: at });
}

export function sameDay(a, b, tz) {
  return parts(new Date(a), tz) === parts(new Date(b), tz);
}

export function size(bytes) {
  const units = current === 'en' ? ['B', 'KB', 'MB'] : ['o', 'Ko', 'Mo'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = new Intl.NumberFormat(locale(), { maximumFractionDigits: unit ? 1 : 0 }).format(value);
  return `${shown} ${units[unit]}`;
}

// The wall time `local` ("2026-12-01T08:30") in zone `tz`, as an ISO instant with Z.
export function zonedToIso(local, tz) {
  const [datePart, timePart] = local.split('T');
  const [y, m, dd] = datePart.split('-').map(Number);
  const [hh, mm] = timePart.split(':').map(Number);
  let guess = Date.UTC(y, m - 1, dd, hh, mm);
  for (let i = 0; i < 3; i += 1) {
    const shown = new Intl.DateTimeFormat('en-CA', {
      timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(new Date(guess));
    const get = (type) => Number(shown.find((p) => p.type === type).value);
    const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'));
    const diff = Date.UTC(y, m - 1, dd, hh, mm) - asUtc;
    if (diff === 0) break;
    guess += diff;
  }
  return new Date(guess).toISOString();
}

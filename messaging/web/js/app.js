// Boot: get a token, load the directory, open the WebSocket, and show the screens the user's
// roles allow. Everything visible is re-rendered when the language changes.

import { h, replace, icon } from './dom.js';
import { setLang, t, lang } from './i18n.js';
import * as auth from './auth.js';
import { Api } from './api.js';
import { Store } from './store.js';
import { renderSignIn } from './views/signin.js';
import { ChatsView } from './views/chats.js';
import { BroadcastsView, canBroadcast } from './views/broadcasts.js';
import { AuditView, canAudit } from './views/audit.js';
import { HoursView } from './views/hours.js';

const LANG_KEY = 'messaging.lang';
const root = document.getElementById('app');

function savedLang() {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

function saveLang(value) {
  try {
    localStorage.setItem(LANG_KEY, value);
  } catch {
    /* not kept */
  }
}

function browserLang() {
  return (navigator.language || 'fr').toLowerCase().startsWith('en') ? 'en' : 'fr';
}

class App {
  constructor(token) {
    this.token = token;
    this.api = new Api(() => this.token, () => this.signOut('expired'));
    this.store = new Store({
      api: this.api,
      token: () => this.token,
      onSignedOut: (why) => this.signOut(why),
    });
    this.tab = 'chats';
    this.view = null;
    this.bannerTimer = null;
    this.store.addEventListener('change', (e) => this.onChange(e.detail));
  }

  async start() {
    replace(root, h('p', { class: 'boot', role: 'status', text: t('loading') }));
    try {
      await this.store.start();
    } catch (err) {
      if (err.status === 401 || err.status === 403) return this.signOut('expired');
      replace(root, h('p', { class: 'boot', role: 'alert', text: t('load_failed') }));
      setTimeout(() => location.reload(), 5000);
      return;
    }
    setLang(savedLang() || this.store.me.locale || browserLang());
    this.render();
  }

  tabs() {
    const s = this.store;
    const tabs = [['chats', t('tab_chats')]];
    if (canBroadcast(s)) tabs.push(['broadcasts', t('tab_broadcasts')]);
    if (canAudit(s)) tabs.push(['audit', t('tab_audit')]);
    if (s.isStaff()) tabs.push(['hours', t('tab_hours')]);
    return tabs;
  }

  render() {
    if (this.view) this.view.destroy();
    const me = this.store.me;
    const other = lang() === 'fr' ? 'en' : 'fr';
    this.banner = h('div', { class: 'banner', role: 'status', 'aria-live': 'polite' });
    this.main = h('main', { id: 'main', tabindex: '-1' });
    const tabs = this.tabs();
    const nav = tabs.length > 1
      ? h('nav', { class: 'tabs', 'aria-label': t('sections') },
        tabs.map(([id, label]) => h('button', {
          type: 'button',
          class: 'tab',
          'aria-current': this.tab === id ? 'page' : null,
          onclick: () => this.show(id),
          text: label,
        })))
      : null;
    replace(
      root,
      h('a', { class: 'skip', href: '#main', text: t('skip_to_content') }),
      h('header', { class: 'topbar' },
        h('div', { class: 'brand' }, icon('send'), h('span', { text: t('app_name') })),
        nav,
        h('div', { class: 'who' },
          h('span', { class: 'me', text: me.name }),
          h('button', {
            type: 'button',
            class: 'lang',
            lang: other,
            'aria-label': other === 'en' ? 'Switch to English' : 'Passer en français',
            onclick: () => this.switchLang(other),
            text: other === 'en' ? 'English' : 'Français',
          }),
          h('button', { type: 'button', class: 'link', onclick: () => this.signOut('bye'), text: t('sign_out') }))),
      this.banner,
      this.main,
    );
    this.renderBanner();
    this.mountTab();
  }

  mountTab() {
    const views = { chats: ChatsView, broadcasts: BroadcastsView, audit: AuditView, hours: HoursView };
    const View = views[this.tab] || ChatsView;
    this.view = new View(this.store, this);
    this.view.mount(this.main);
  }

  show(tab, options = {}) {
    this.tab = tab;
    this.render();
    if (options.conv && this.view.select) this.view.select(options.conv);
    this.main.focus();
  }

  switchLang(value) {
    setLang(value);
    saveLang(value);
    const keep = this.view && this.view.snapshot ? this.view.snapshot() : null;
    this.render();
    if (keep && this.view.restore) this.view.restore(keep);
    const button = root.querySelector('button.lang');
    if (button) button.focus();
  }

  onChange(detail) {
    if (detail.status) this.renderBanner(detail.was);
    if (this.view) this.view.update(detail);
  }

  renderBanner(was) {
    if (!this.banner) return;
    const s = this.store;
    clearTimeout(this.bannerTimer);
    let text = '';
    let kind = 'info';
    if (s.status === 'connecting') text = t('status_connecting');
    else if (s.status === 'reconnecting') {
      text = t('status_reconnecting');
      kind = 'warn';
    } else if (s.status === 'revoked') {
      text = t('status_revoked');
      kind = 'error';
    } else if (s.status === 'online' && (was === 'reconnecting' || s.backAt > Date.now() - 6000)) {
      kind = 'ok';
      text = t('status_back', { n: s.recovered });
      this.bannerTimer = setTimeout(() => this.renderBanner(), 2500);
      if (Date.now() - s.backAt > 6000) text = '';
    }
    this.banner.className = `banner banner-${kind}${text ? '' : ' hidden'}`;
    this.banner.dataset.status = s.status;
    this.banner.textContent = text;
  }

  signOut(why) {
    auth.store(null);
    this.store.conn.stop();
    this.token = null;
    if (why === 'bye' || why === 'expired') {
      location.hash = '';
      location.reload();
    }
  }
}

async function boot() {
  setLang(savedLang() || browserLang());
  let token = auth.tokenFromFragment() || auth.stored();
  if (!token) token = await auth.tokenFromHost();
  if (!token) {
    const dev = await auth.devLoginAvailable();
    if (dev) {
      renderSignIn(root, dev, async (user) => {
        const fresh = await auth.devLogin(user);
        auth.store(fresh);
        new App(fresh).start();
      }, (value) => {
        setLang(value);
        saveLang(value);
      });
      return;
    }
    replace(root, h('div', { class: 'boot' },
      h('h1', { text: t('app_name') }),
      h('p', { text: t('no_token') })));
    return;
  }
  auth.store(token);
  new App(token).start();
}

boot();

// The client's state: conversations and their events by seq, unsent messages, receipts and
// typing, and the directory of names. Follows the recommended algorithm of docs/protocol.md
// section 5: dedupe by (conv, seq), fetch gaps, resume by seq, resend unsent with the same cid.

import { Connection, ProtocolError } from './connection.js';

const INITIAL_PAGE = 30;
const RESUME_MAX = 200;
const TYPING_MS = 5000;
const TYPING_SEND_MS = 3000;
const LOAD_CONCURRENCY = 4;

function newCid() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return 'w-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Conversation {
  constructor(entry) {
    this.events = new Map();
    this.h = null; // highest contiguous seq held (null: nothing loaded yet)
    this.base = null; // lowest seq held
    this.receipts = new Map();
    this.typing = new Map();
    this.loading = null;
    this.more = false;
    this.lockReason = null;
    this.update(entry);
  }

  update(entry) {
    this.conv = entry.conv;
    this.school = entry.school;
    this.kind = entry.kind;
    this.title = entry.title;
    this.members = entry.members || [];
    this.last_seq = Math.max(this.last_seq || 0, entry.last_seq || 0);
    this.read_seq = Math.max(this.read_seq || 0, entry.read_seq || 0);
    if (entry.unread !== undefined) this.unread = entry.unread;
    this.locked = Boolean(entry.locked);
    // staff availability as `ready` carries it: [{user, name, working, next_start, notice}]
    if (Array.isArray(entry.availability)) this.availability = entry.availability;
  }

  sorted() {
    return [...this.events.values()].sort((a, b) => a.seq - b.seq);
  }

  messages() {
    return this.sorted().filter((e) => e.kind === 'message');
  }

  lastActivity() {
    let last = null;
    for (const e of this.events.values()) if (!last || e.seq > last.seq) last = e;
    return last;
  }
}

export class Store extends EventTarget {
  constructor({ api, token, onSignedOut }) {
    super();
    this.api = api;
    this.token = token;
    this.onSignedOut = onSignedOut;
    this.me = null;
    this.dir = null;
    this.people = new Map();
    this.students = new Map();
    this.schools = new Map();
    this.convs = new Map();
    this.pending = new Map(); // cid -> unsent message
    this.status = 'connecting';
    this.openConv = null;
    this.recovered = 0;
    this.lastTyping = new Map();
    this.dirRefresh = null;
    this.conn = new Connection({
      url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
      token,
      resume: () => this.resumeMap(),
      onReady: (frame) => this.onReady(frame),
      onFrame: (frame) => this.onFrame(frame),
      onStatus: (status) => this.setStatus(status),
      onAuthFailure: () => this.checkToken(),
      onStopped: (why) => this.setStatus(why),
    });
  }

  changed(detail = {}) {
    this.dispatchEvent(new CustomEvent('change', { detail }));
  }

  async start() {
    await this.loadDirectory();
    this.conn.start();
    setInterval(() => this.loadDirectory().catch(() => {}), 5 * 60 * 1000);
  }

  // Directory ------------------------------------------------------------------------------------

  async loadDirectory() {
    const dir = await this.api.get('/api/directory');
    this.dir = dir;
    this.me = { ...this.me, ...dir.me };
    this.people = new Map(dir.people.map((p) => [p.id, p]));
    this.people.set(dir.me.id, dir.me);
    this.students = new Map(dir.students.map((s) => [s.id, s]));
    this.schools = new Map(dir.schools.map((s) => [s.id, s]));
    this.changed({ directory: true });
  }

  refreshDirectorySoon() {
    if (this.dirRefresh) return;
    this.dirRefresh = setTimeout(() => {
      this.loadDirectory().catch(() => {}).finally(() => {
        setTimeout(() => (this.dirRefresh = null), 10000);
      });
    }, 200);
  }

  person(id) {
    const p = this.people.get(id);
    if (!p && id && id !== 'system') this.refreshDirectorySoon();
    return p;
  }

  name(id) {
    const p = this.person(id);
    return p ? p.name : id;
  }

  group(id) {
    for (const s of this.schools.values()) {
      const g = s.groups.find((x) => x.id === id);
      if (g) return g;
    }
    return null;
  }

  timezone(school) {
    const s = this.schools.get(school);
    return (s && s.timezone) || 'America/Toronto';
  }

  rolesIn(school) {
    return (this.me.roles || []).filter((r) => r.school === school).map((r) => r.role);
  }

  isStaff() {
    return this.me && this.me.kind === 'staff';
  }

  // Connection -----------------------------------------------------------------------------------

  setStatus(status) {
    const was = this.status;
    this.status = status;
    if (status === 'online' && was === 'reconnecting') {
      this.recovered = 0;
      this.backAt = Date.now();
      this.recoveredUntil = Date.now() + 3000;
    }
    this.changed({ status: true, was });
  }

  async checkToken() {
    try {
      await this.api.get('/api/me');
      return true; // the token is fine: the network failed; try again
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        this.onSignedOut('expired');
        return false;
      }
      return true;
    }
  }

  resumeMap() {
    const resume = {};
    for (const c of this.convs.values()) if (c.h !== null) resume[c.conv] = c.h;
    return resume;
  }

  onReady(frame) {
    const first = !this.me || !this.me.readyOnce;
    this.me = { ...this.me, ...frame.user, readyOnce: true };
    const listed = new Set();
    for (const entry of frame.conversations) {
      listed.add(entry.conv);
      const known = this.convs.get(entry.conv);
      if (known) known.update(entry);
      else this.convs.set(entry.conv, new Conversation(entry));
    }
    for (const id of [...this.convs.keys()]) if (!listed.has(id)) this.convs.delete(id);
    this.changed({ list: true });
    if (first) this.loadAll();
    else {
      for (const c of this.convs.values()) {
        if (c.h === null) continue;
        if (c.last_seq - c.h > RESUME_MAX) this.fetchAfter(c, c.h + RESUME_MAX);
      }
    }
    this.resendPending();
  }

  async loadAll() {
    const queue = [...this.convs.values()];
    const worker = async () => {
      while (queue.length) {
        const c = queue.shift();
        await this.loadInitial(c).catch(() => {});
      }
    };
    await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, worker));
  }

  async loadInitial(c) {
    if (c.h !== null) return;
    if (c.loading) return c.loading;
    c.loading = this.api
      .get(`/api/conversations/${encodeURIComponent(c.conv)}/events?limit=${INITIAL_PAGE}`)
      .then((page) => {
        c.more = page.more;
        this.insertMany(c, page.events, { initial: true });
      })
      .finally(() => (c.loading = null));
    return c.loading;
  }

  async loadOlder(c) {
    if (c.base === null || c.base <= 1) return;
    const page = await this.api.get(
      `/api/conversations/${encodeURIComponent(c.conv)}/events?before=${c.base}&limit=50`,
    );
    c.more = page.more;
    this.insertMany(c, page.events, { older: true });
  }

  async fetchAfter(c, after) {
    if (c.fetching) return;
    c.fetching = true;
    try {
      let more = true;
      let from = after;
      while (more) {
        const reply = await this.conn.request({ t: 'fetch', conv: c.conv, after: from, limit: 200 });
        this.insertMany(c, reply.events, { recovered: true });
        more = reply.more && reply.events.length > 0;
        if (reply.events.length) from = reply.events[reply.events.length - 1].seq;
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
    } finally {
      c.fetching = false;
    }
  }

  // Events ---------------------------------------------------------------------------------------

  onFrame(frame) {
    switch (frame.t) {
      case 'event':
        return this.onEvent(frame);
      case 'receipt':
        return this.onReceipt(frame);
      case 'typing':
        return this.onTyping(frame);
      case 'resync':
        return this.resync(frame.conv);
      default:
        return undefined;
    }
  }

  onEvent(ev) {
    let c = this.convs.get(ev.conv);
    if (!c) {
      if (ev.kind !== 'created' && ev.kind !== 'member_added') {
        this.refreshList();
        return;
      }
      c = new Conversation({
        conv: ev.conv,
        school: ev.school,
        kind: ev.conv_kind || 'group',
        title: ev.title,
        members: ev.members || [],
        last_seq: 0,
        read_seq: 0,
        unread: 0,
        locked: false,
      });
      this.convs.set(ev.conv, c);
      if (ev.kind !== 'created' || ev.seq !== 1) {
        this.refreshList();
        this.loadInitial(c);
      } else {
        c.h = 0;
        c.base = 1;
      }
    }
    this.insertMany(c, [ev], { live: true });
  }

  insertMany(c, events, how = {}) {
    let newMessages = 0;
    for (const ev of events) {
      if (c.events.has(ev.seq)) {
        // a fetched copy may carry the redaction a live copy predates
        if (ev.deleted || ev.removed) c.events.set(ev.seq, ev);
        continue;
      }
      c.events.set(ev.seq, ev);
      if (c.base === null || ev.seq < c.base) c.base = ev.seq;
      c.last_seq = Math.max(c.last_seq, ev.seq);
      this.applyEffects(c, ev);
      if (ev.kind === 'message' && ev.actor !== this.me.id) {
        newMessages += 1;
        if ((how.live || how.recovered) && ev.seq > c.read_seq) c.unread = (c.unread || 0) + 1;
      }
      if (ev.kind === 'message') c.typing.delete(ev.actor);
    }
    if (how.recovered || (how.live && this.status === 'online' && this.inRecoveryWindow())) {
      this.recovered += newMessages;
    }
    this.advance(c, how);
    this.changed({ conv: c.conv });
    if (c.conv === this.openConv) this.markRead(c);
  }

  inRecoveryWindow() {
    return this.recoveredUntil && Date.now() < this.recoveredUntil;
  }

  applyEffects(c, ev) {
    if (ev.kind === 'locked') {
      c.locked = true;
      c.lockReason = ev.reason || null;
    } else if (ev.kind === 'unlocked') {
      c.locked = false;
      c.lockReason = null;
    } else if (ev.kind === 'deleted' || ev.kind === 'removed') {
      const target = c.events.get(ev.target);
      if (target) {
        c.events.set(ev.target, {
          ...target,
          body: null,
          attachments: [],
          [ev.kind]: true,
        });
      }
    } else if (ev.kind === 'member_added' && !c.members.includes(ev.user)) {
      c.members = [...c.members, ev.user];
    } else if (ev.kind === 'member_removed') {
      c.members = c.members.filter((m) => m !== ev.user);
      if (ev.user === this.me.id) this.convs.delete(c.conv);
    }
  }

  // Track the highest contiguous seq; a hole means events were missed: fetch them.
  advance(c, how) {
    if (c.h === null) {
      if (!how.initial && !how.older) return;
      c.h = c.base - 1;
    }
    while (c.events.has(c.h + 1)) c.h += 1;
    const highest = Math.max(...c.events.keys());
    if (highest > c.h && this.conn.online) {
      clearTimeout(c.gapTimer);
      c.gapTimer = setTimeout(() => {
        if (c.h !== null && Math.max(...c.events.keys()) > c.h) this.fetchAfter(c, c.h);
      }, 250);
    }
  }

  onReceipt(frame) {
    const c = this.convs.get(frame.conv);
    if (!c) return;
    if (frame.user === this.me.id) {
      if (frame.seq > c.read_seq) {
        c.read_seq = frame.seq;
        c.unread = 0;
      }
    } else {
      c.receipts.set(frame.user, Math.max(c.receipts.get(frame.user) || 0, frame.seq));
    }
    this.changed({ conv: c.conv });
  }

  onTyping(frame) {
    const c = this.convs.get(frame.conv);
    if (!c) return;
    c.typing.set(frame.user, Date.now() + TYPING_MS);
    this.changed({ conv: c.conv, typing: true });
    setTimeout(() => this.changed({ conv: c.conv, typing: true }), TYPING_MS + 50);
  }

  async resync(conv) {
    const targets = conv ? [this.convs.get(conv)].filter(Boolean) : [...this.convs.values()];
    if (!conv) await this.refreshList();
    for (const c of targets) if (c.h !== null && c.last_seq > c.h) this.fetchAfter(c, c.h);
  }

  async refreshList() {
    const { conversations } = await this.api.get('/api/conversations');
    for (const entry of conversations) {
      const known = this.convs.get(entry.conv);
      if (known) known.update(entry);
      else {
        const c = new Conversation(entry);
        this.convs.set(entry.conv, c);
        this.loadInitial(c);
      }
    }
    this.changed({ list: true });
  }

  // Actions --------------------------------------------------------------------------------------

  setOpen(convId) {
    this.openConv = convId;
    const c = this.convs.get(convId);
    if (c) {
      this.loadInitial(c).then(() => this.markRead(c));
      this.markRead(c);
    }
  }

  markRead(c) {
    if (document.visibilityState === 'hidden' || c.h === null) return;
    const seq = c.h;
    if (seq <= c.read_seq) {
      if (c.unread) {
        c.unread = 0;
        this.changed({ conv: c.conv });
      }
      return;
    }
    c.read_seq = seq;
    c.unread = 0;
    this.changed({ conv: c.conv });
    this.conn.request({ t: 'read', conv: c.conv, seq }).catch(() => {
      c.read_seq = Math.min(c.read_seq, seq - 1);
    });
  }

  sendTyping(convId) {
    const now = Date.now();
    if (now - (this.lastTyping.get(convId) || 0) < TYPING_SEND_MS) return;
    this.lastTyping.set(convId, now);
    this.conn.notify({ t: 'typing', conv: convId });
  }

  // Queue a message: it stays in `pending` with its cid until the server acknowledges it, and is
  // sent again with the same cid after a reconnection.
  send(convId, body, attachments = []) {
    const cid = newCid();
    const item = {
      cid,
      conv: convId,
      body,
      attachments,
      state: 'queued',
      error: null,
      created: new Date().toISOString(),
    };
    this.pending.set(cid, item);
    this.changed({ conv: convId });
    this.transmit(item);
    return cid;
  }

  resendPending() {
    for (const item of this.pending.values()) if (item.state === 'queued') this.transmit(item);
  }

  retry(cid) {
    const item = this.pending.get(cid);
    if (item) {
      item.state = 'queued';
      item.error = null;
      this.transmit(item);
    }
  }

  discard(cid) {
    const item = this.pending.get(cid);
    this.pending.delete(cid);
    if (item) this.changed({ conv: item.conv });
  }

  async transmit(item) {
    if (!this.conn.online || item.state === 'sending') return;
    item.state = 'sending';
    const frame = { t: 'send', conv: item.conv, cid: item.cid, body: item.body };
    if (item.attachments.length) frame.attachments = item.attachments.map((a) => a.id);
    try {
      const ok = await this.conn.request(frame);
      this.pending.delete(item.cid);
      let c = this.convs.get(ok.conv);
      if (!c) {
        // a private reply to a bulk send lands in the direct conversation with its sender
        await this.refreshList();
        c = this.convs.get(ok.conv);
      }
      if (c) {
        this.insertMany(c, [
          {
            t: 'event',
            conv: ok.conv,
            seq: ok.seq,
            ts: ok.ts,
            kind: 'message',
            actor: this.me.id,
            body: item.body,
            cid: item.cid,
            attachments: item.attachments,
          },
        ]);
      }
      if (ok.conv !== item.conv) this.changed({ moved: { from: item.conv, to: ok.conv } });
      this.changed({ conv: item.conv });
    } catch (err) {
      if (err.code === 'disconnected') {
        item.state = 'queued';
      } else {
        item.state = 'failed';
        item.error = err;
        if (err.code === 'locked') {
          const c = this.convs.get(item.conv);
          if (c) c.locked = true;
        }
      }
      this.changed({ conv: item.conv });
    }
  }

  pendingFor(convId) {
    return [...this.pending.values()].filter((p) => p.conv === convId);
  }

  async deleteMessage(c, seq) {
    const ok = await this.conn.request({ t: 'delete', conv: c.conv, seq });
    this.insertMany(c, [
      { conv: c.conv, seq: ok.seq, ts: new Date().toISOString(), kind: 'deleted', actor: this.me.id, target: seq },
    ]);
  }

  async open(school, members, title) {
    const frame = { t: 'open', school, members };
    if (title) frame.title = title;
    const ok = await this.conn.request(frame);
    let c = this.convs.get(ok.conv);
    if (!c) {
      c = new Conversation({
        conv: ok.conv,
        school,
        kind: members.length === 1 && !title ? 'direct' : 'group',
        title: title || null,
        members: [this.me.id, ...members],
        last_seq: 0,
        read_seq: 0,
        unread: 0,
        locked: false,
      });
      this.convs.set(ok.conv, c);
      await this.loadInitial(c);
    }
    this.changed({ list: true });
    return ok.conv;
  }

  async control(frame) {
    return this.conn.request(frame);
  }
}

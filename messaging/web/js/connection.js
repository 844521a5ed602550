// The WebSocket session of PROTOCOL.md: hello with resume, requests matched by id, and
// reconnection with backoff. What to resume and what to resend is the store's business.

const SUBPROTOCOL = 'messaging.v1.json';
const BACKOFF_MS = [300, 1000, 2000, 4000, 8000, 15000];

export class ProtocolError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class Connection {
  constructor({ url, token, resume, onReady, onFrame, onStatus, onAuthFailure, onStopped }) {
    this.url = url;
    this.token = token;
    this.resume = resume;
    this.onReady = onReady;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onAuthFailure = onAuthFailure;
    this.onStopped = onStopped;
    this.ws = null;
    this.isReady = false;
    this.everReady = false;
    this.attempt = 0;
    this.nextId = 1;
    this.replies = new Map();
    this.timer = null;
    this.stopped = false;
    window.addEventListener('online', () => this.retryNow());
  }

  start() {
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  get online() {
    return this.isReady && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  open() {
    clearTimeout(this.timer);
    this.timer = null;
    this.onStatus(this.everReady ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.url, [SUBPROTOCOL]);
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    this.isReady = false;
    let helloSent = false;
    ws.onopen = () => {
      const hello = { t: 'hello', token: this.token() };
      const resume = this.resume();
      if (Object.keys(resume).length) hello.resume = resume;
      ws.send(JSON.stringify(hello));
      helloSent = true;
    };
    ws.onmessage = (message) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.t === 'ready') {
        this.isReady = true;
        this.everReady = true;
        this.attempt = 0;
        this.onStatus('online');
        this.onReady(frame);
        return;
      }
      if ((frame.t === 'ok' || frame.t === 'error') && this.replies.has(frame.id)) {
        const { resolve, reject } = this.replies.get(frame.id);
        this.replies.delete(frame.id);
        if (frame.t === 'ok') resolve(frame);
        else reject(new ProtocolError(frame.code, frame.message));
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      const wasReady = this.isReady;
      this.isReady = false;
      for (const { reject } of this.replies.values()) reject(new ProtocolError('disconnected'));
      this.replies.clear();
      if (this.stopped) return;
      if (event.code === 4003) {
        this.stopped = true;
        this.onStopped('revoked');
        return;
      }
      if (!wasReady && helloSent) {
        // Refusals at hello arrive as a bare close (docs/protocol.md section 2): the token may
        // have expired. The store checks it over HTTP and calls retryNow() or signs out.
        this.onStatus('reconnecting');
        this.onAuthFailure().then((ok) => (ok ? this.schedule() : this.stop()));
        return;
      }
      this.schedule(event.code === 4029 ? 10000 : 0);
    };
  }

  schedule(atLeast = 0) {
    if (this.stopped || this.timer) return;
    this.onStatus(this.everReady ? 'reconnecting' : 'connecting');
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const wait = Math.max(atLeast, base * (0.75 + Math.random() * 0.5));
    this.timer = setTimeout(() => this.open(), wait);
  }

  retryNow() {
    if (this.stopped || this.online) return;
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) return;
    this.attempt = 0;
    this.open();
  }

  // A request with an id; resolves with `ok`, rejects with ProtocolError (code `disconnected`
  // when the connection is not ready or drops before the reply).
  request(frame) {
    if (!this.online) return Promise.reject(new ProtocolError('disconnected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.replies.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  // Fire and forget (typing).
  notify(frame) {
    if (this.online) this.ws.send(JSON.stringify(frame));
  }
}

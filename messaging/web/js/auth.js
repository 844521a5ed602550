// Where the page's token comes from (docs/web-client.md):
//   1. a URL fragment `#token=...` set by the host application (read once, then erased);
//   2. a postMessage {type: "messaging:token", token} from a host origin of the allow-list
//      (the page in an iframe asks with {type: "messaging:token-request"});
//   3. under MESSAGING_DEV_LOGIN=1 only, the sign-in page that lists the demo users.
// The token is kept in sessionStorage (this tab only) and never put in a URL query.

const KEY = 'messaging.token';

function hostOrigins() {
  const meta = document.querySelector('meta[name="messaging-host-origins"]');
  const raw = meta ? meta.getAttribute('content') : '';
  return raw.split(/\s+/).filter((o) => /^https?:\/\//.test(o));
}

export function tokenFromFragment() {
  const hash = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  const params = new URLSearchParams(hash);
  const token = params.get('token');
  if (!token) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return token;
}

export function stored() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function store(token) {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    /* private mode: the token lives in memory only */
  }
}

export function embedded() {
  return window.parent !== window;
}

// Ask the host page (this page being in its iframe) for a token; resolves null after a wait.
export function tokenFromHost(timeoutMs = 5000) {
  const allowed = hostOrigins();
  if (!embedded() || !allowed.length) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs, null);
    function done(token) {
      clearTimeout(timer);
      window.removeEventListener('message', onMessage);
      resolve(token);
    }
    function onMessage(event) {
      if (!allowed.includes(event.origin) || event.source !== window.parent) return;
      const data = event.data;
      if (data && data.type === 'messaging:token' && typeof data.token === 'string') done(data.token);
    }
    window.addEventListener('message', onMessage);
    for (const origin of allowed) {
      window.parent.postMessage({ type: 'messaging:token-request' }, origin);
    }
  });
}

export async function devLoginAvailable() {
  try {
    const response = await fetch('/api/dev/users', { cache: 'no-store', credentials: 'omit' });
    if (!response.ok) return null;
    return await response.json();
  } catch {
    return null;
  }
}

export async function devLogin(user) {
  const response = await fetch('/api/dev/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user }),
    credentials: 'omit',
  });
  if (!response.ok) throw new Error('login refused');
  const data = await response.json();
  return data.token;
}

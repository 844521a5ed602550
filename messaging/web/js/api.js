// The HTTP API with the bearer token; uploads through XMLHttpRequest for their progress.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token, onUnauthenticated) {
    this.token = token;
    this.onUnauthenticated = onUnauthenticated;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token()}`, ...extra };
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers(), cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'unavailable');
    }
    return this.decode(response);
  }

  async decode(response) {
    const type = response.headers.get('content-type') || '';
    const data = type.includes('json') ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const err = (data && data.error) || {};
      if (response.status === 401) this.onUnauthenticated();
      throw new ApiError(response.status, err.code || 'internal', err.message);
    }
    return data;
  }

  get(path) { return this.request('GET', path); }
  post(path, body) { return this.request('POST', path, body); }
  put(path, body) { return this.request('PUT', path, body); }
  del(path) { return this.request('DELETE', path); }

  async blob(path) {
    const response = await fetch(path, { headers: this.headers(), credentials: 'omit' });
    if (!response.ok) throw new ApiError(response.status, 'not_found');
    return response.blob();
  }

  // Upload one file as the raw body; `onProgress(fraction)`. Returns { promise, abort }.
  upload(file, onProgress) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      xhr.open('POST', '/api/attachments');
      xhr.setRequestHeader('Authorization', `Bearer ${this.token()}`);
      xhr.setRequestHeader('X-Filename', encodeURIComponent(file.name));
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.responseType = 'json';
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      };
      xhr.onload = () => {
        const data = xhr.response;
        if (xhr.status === 201) resolve(data);
        else {
          const err = (data && data.error) || {};
          reject(new ApiError(xhr.status, err.code || 'internal', err.message));
        }
      };
      xhr.onerror = () => reject(new ApiError(0, 'unavailable'));
      xhr.onabort = () => reject(new ApiError(0, 'aborted'));
      xhr.send(file);
    });
    return { promise, abort: () => xhr.abort() };
  }
}

// ChunkUpload page: resumable.js (default), flow.js (?lib=flow), Fine Uploader (?lib=fineuploader) or Uppy's
// Dashboard with tus (?lib=uppy) against the ChunkUpload server. Server contract: GET /config, GET+POST /upload
// (resumable.js, flow.js), POST /fineuploader and /fineuploader/done (Fine Uploader), tus at /tus (Uppy),
// GET+DELETE /uploads/{id}, GET /files/{id}; errors are application/problem+json with a human-readable `detail`, or
// Fine Uploader's JSON with `error`.
(function () {
  'use strict';

  var params = new URLSearchParams(location.search);
  var LIB = ({ flow: 'flow', fineuploader: 'fineuploader', uppy: 'uppy' })[params.get('lib')] || 'resumable';
  var MAX_RETRY_DELAY_MS = 30000;
  var MAX_RETRY_AFTER_MS = 300000;
  var MAX_CHUNK_RETRIES = 200;
  // Fine Uploader retries after a fixed delay (no backoff, no Retry-After); the count starts again after each part.
  var FU_RETRY_DELAY_S = 2;
  var FU_MAX_AUTO_ATTEMPTS = 30;

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    drop: $('drop-zone'), fileInput: $('file-input'), folderInput: $('folder-input'), folderPicker: $('folder-picker'),
    limits: $('limits'), pageError: $('page-error'), list: $('file-list'), template: $('file-template'),
    overallBar: $('overall-progress'), overallText: $('overall-text'), announcer: $('announcer'),
    pauseAll: $('pause-all'), resumeAll: $('resume-all'), cancelAll: $('cancel-all'),
    libraryName: $('library-name'), librarySwitch: $('library-switch'), pickers: $('pickers'),
    dropHint: $('drop-hint')
  };

  var config = null;
  var uploader = null;
  var adapter = null;
  var items = new Map(); // identifier -> item (one row)
  var lastFailure = new Map(); // identifier -> last failed chunk response

  // ---------- formatting ----------
  function formatBytes(n) {
    if (!isFinite(n)) return '?';
    var units = ['B', 'KB', 'MB', 'GB', 'TB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
  }
  function formatDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return 'unknown';
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + ' s';
    var m = Math.floor(seconds / 60);
    if (m < 60) return m + ' min ' + (seconds % 60) + ' s';
    var h = Math.floor(m / 60);
    return h + ' h ' + (m % 60) + ' min';
  }
  function percent(x) { return Math.floor(x * 100) + '%'; }

  function announce(text) {
    // Re-setting the text makes screen readers read repeated messages too.
    els.announcer.textContent = '';
    setTimeout(function () { els.announcer.textContent = text; }, 50);
  }
  function showPageError(text) {
    els.pageError.textContent = text;
    els.pageError.hidden = !text;
  }

  // ---------- problem+json ----------
  function problemDetail(text, status) {
    if (text) {
      try {
        var p = JSON.parse(text);
        if (p && (p.detail || p.title)) return p.detail || p.title;
        if (p && typeof p.error === 'string' && p.error) return p.error; // Fine Uploader's JSON
      } catch (e) { /* not JSON */ }
    }
    return describeStatus(status);
  }
  function describeStatus(status) {
    switch (status) {
      case 0: return 'The connection to the server was lost.';
      case 400: return 'The server rejected this upload as invalid.';
      case 404: return 'The server does not know this upload.';
      case 409: return 'This upload conflicts with another upload of the same file.';
      case 413: return 'This chunk is larger than the server accepts.';
      case 503: return 'The server is busy.';
      case 507: return 'The server has run out of storage space.';
      default: return status >= 500 ? 'The server had a problem (HTTP ' + status + ').' : 'The request failed (HTTP ' + status + ').';
    }
  }
  function fetchJson(url, options) {
    return fetch(url, options).then(function (res) {
      return res.text().then(function (text) {
        if (res.ok) return text ? JSON.parse(text) : null;
        var err = new Error(problemDetail(text, res.status));
        err.status = res.status;
        throw err;
      });
    });
  }

  // ---------- watching the libraries' chunk requests ----------
  // Both libraries drop a failed chunk's response before they announce the retry, so the page keeps the
  // last failed response per upload (status, Retry-After, problem detail) to pick the retry delay and
  // to say why it retries. readystatechange fires before the libraries' own load/error handlers.
  var originalOpen = XMLHttpRequest.prototype.open;
  var originalSend = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url) {
    this._chunkUpload = { method: String(method).toUpperCase(), url: String(url) };
    return originalOpen.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function (body) {
    var info = this._chunkUpload;
    if (info && info.method !== 'GET' && /\/upload(\?|$)/.test(info.url)) {
      var q = new URL(info.url, location.href).searchParams;
      var get = function (name) {
        return q.get('resumable' + name) || q.get('flow' + name) ||
          (body instanceof FormData ? (body.get('resumable' + name) || body.get('flow' + name)) : null);
      };
      info.id = get('Identifier');
      info.chunk = Number(get('ChunkNumber'));
      var xhr = this;
      xhr.addEventListener('readystatechange', function () {
        if (xhr.readyState === 4) onChunkResponse(xhr, info);
      });
    } else if (info && info.method !== 'GET' && /\/fineuploader(\/done)?(\?|$)/.test(info.url)) {
      watchFineUploader(this, info, body);
    }
    return originalSend.apply(this, arguments);
  };
  function onChunkResponse(xhr, info) {
    if (!info.id) return;
    var item = items.get(info.id);
    if (xhr.status === 200 || xhr.status === 201) {
      if (item) {
        delete item.attempts[info.chunk];
        item.lastFailureText = '';
      }
      return;
    }
    var retryAfter = Number(xhr.getResponseHeader('Retry-After'));
    lastFailure.set(info.id, {
      status: xhr.status,
      chunk: info.chunk,
      retryAfterMs: isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 0,
      detail: problemDetail(xhr.responseText, xhr.status)
    });
  }

  // Fine Uploader reads a failed part's answer, then aborts the file's other parts, and with them the failed
  // request itself (its status turns 0) before it reports the failure: keep the first failure of each burst here,
  // ahead of the library's own handler, which it sets before send().
  function watchFineUploader(xhr, info, body) {
    var q = new URL(info.url, location.href).searchParams;
    var uuid = q.get('qquuid') ||
      (body instanceof FormData ? body.get('qquuid') : typeof body === 'string' ? new URLSearchParams(body).get('qquuid') : null);
    var handler = xhr.onreadystatechange;
    if (!uuid || !handler) return;
    xhr.onreadystatechange = function () {
      if (xhr.readyState === 4) {
        var json = null;
        try { json = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300 && json && json.success && !json.reset) {
          lastFailure.delete(uuid);
        } else if (!lastFailure.has(uuid)) {
          lastFailure.set(uuid, {
            status: xhr.status, chunk: 0, retryAfterMs: 0, text: xhr.responseText,
            detail: problemDetail(xhr.responseText, xhr.status)
          });
        }
      }
      return handler.apply(this, arguments);
    };
  }

  // ---------- library adapters ----------
  function chunkSent(c) {
    var len = c.endByte - c.startByte;
    return Math.max(0, Math.min(c.loaded || 0, len));
  }
  function commonOptions() {
    return {
      target: '/upload',
      chunkSize: config.chunkSize,
      simultaneousUploads: config.simultaneousUploads,
      testChunks: true,
      maxChunkRetries: MAX_CHUNK_RETRIES,
      chunkRetryInterval: 1000,
      permanentErrors: config.permanentErrors
    };
  }

  var adapters = {
    resumable: {
      title: 'resumable.js',
      available: function () { return typeof window.Resumable === 'function'; },
      create: function () {
        var opts = commonOptions();
        opts.minFileSize = 0; // the server accepts empty files
        if (config.maxFileSize) opts.maxFileSize = config.maxFileSize;
        opts.maxFileSizeErrorCallback = function (file) {
          showPageError((file.name || file.fileName) + ' is too large: this server accepts files up to ' + formatBytes(config.maxFileSize) + '.');
        };
        var r = new window.Resumable(opts);
        r.on('filesAdded', function (files, skipped) { filesAdded(files, skipped || []); });
        r.on('fileSuccess', function (file) { chunksDone(file.uniqueIdentifier); });
        r.on('fileError', function (file, message) { fileFailed(file.uniqueIdentifier, message); });
        r.on('fileRetry', function (file) { retrying(file.uniqueIdentifier, function (ms) { file.opts.chunkRetryInterval = ms; }); });
        return r;
      },
      id: function (f) { return f.uniqueIdentifier; },
      name: function (f) { return f.fileName; },
      path: function (f) { return f.relativePath; },
      // resumable.js divides by the file size: an empty file reports NaN.
      progress: function (f) { return f.size === 0 ? (f.isComplete() && f.chunks.length ? 1 : 0) : f.progress(); },
      sent: function (f) { return f.chunks.reduce(function (n, c) { return n + chunkSent(c); }, 0); },
      start: function () { kickResumable(); },
      pause: function (f) { f.pause(true); f.abort(); kickResumable(); },
      resume: function (f) { f.pause(false); kickResumable(); },
      cancel: function (f) { f.cancel(); },
      retry: function (f) { f.bootstrap(); setTimeout(kickResumable, 0); },
      forget: function (f) { uploader.removeFile(f); }
    },
    flow: {
      title: 'flow.js',
      available: function () { return typeof window.Flow === 'function'; },
      create: function () {
        var opts = commonOptions();
        var f = new window.Flow(opts);
        f.on('filesSubmitted', function (files) { filesAdded(files, []); });
        f.on('fileSuccess', function (file) { chunksDone(file.uniqueIdentifier); });
        f.on('fileError', function (file, message) { fileFailed(file.uniqueIdentifier, message); });
        f.on('fileRetry', function (file) { retrying(file.uniqueIdentifier, function (ms) { uploader.opts.chunkRetryInterval = ms; }); });
        return f;
      },
      id: function (f) { return f.uniqueIdentifier; },
      name: function (f) { return f.name; },
      path: function (f) { return f.relativePath; },
      progress: function (f) { return f.progress(); },
      sent: function (f) { return f.chunks.reduce(function (n, c) { return n + chunkSent(c); }, 0); },
      start: function () { uploader.upload(); },
      pause: function (f) { f.pause(); },
      resume: function (f) { f.resume(); },
      cancel: function (f) { f.cancel(); },
      retry: function (f) { f.retry(); },
      forget: function (f) { uploader.removeFile(f); }
    },
    fineuploader: {
      title: 'Fine Uploader',
      available: function () { return !!(window.qq && typeof window.qq.FineUploaderBasic === 'function'); },
      create: createFineUploader,
      id: function (f) { return f.uniqueIdentifier; },
      name: function (f) { return f.name; },
      path: function (f) { return f.relativePath; },
      progress: function (f) { return f.size === 0 ? (f.finished ? 1 : 0) : f.loaded / f.size; },
      sent: function (f) { return f.loaded; },
      start: function () { uploader.fu.uploadStoredFiles(); },
      // Pausing aborts the parts in flight; their failures are not problems to report.
      pause: function (f) {
        f.pausing = true;
        uploader.fu.pauseUpload(f.fuId);
        f.pausing = false;
        lastFailure.delete(f.uniqueIdentifier);
      },
      resume: function (f) { uploader.fu.continueUpload(f.fuId); },
      cancel: function (f) { uploader.fu.cancel(f.fuId); },
      // The client refuses to retry a file the server answered with preventRetry: say so again.
      retry: function (f) { if (!uploader.fu.retry(f.fuId)) fileFailed(f.uniqueIdentifier, f.lastResponse); },
      forget: function () {}
    },
    // Uppy's Dashboard has its own add, pause, resume, retry and remove controls (the page's buttons are hidden,
    // so no actions here); the rows follow Uppy's events (see createUppy) and show what the server reports.
    uppy: {
      title: 'Uppy (tus)',
      available: function () { return !!(window.Uppy && window.Uppy.Uppy && window.Uppy.Dashboard && window.Uppy.Tus); },
      create: createUppy,
      id: function (f) { return f.id; },
      name: function (f) { return f.name; },
      path: function (f) { return typeof f.meta.relativePath === 'string' ? f.meta.relativePath : null; },
      progress: function (f) {
        var now = uploader.getFile(f.id) || f;
        if (now.progress.uploadComplete) return 1;
        return now.size ? (now.progress.bytesUploaded || 0) / now.size : 0;
      },
      sent: function (f) { var now = uploader.getFile(f.id) || f; return now.progress.bytesUploaded || 0; }
    }
  };

  // Fine Uploader (core build, qq.FineUploaderBasic) against /fineuploader: chunked with parts in parallel and a
  // completion request, resumable from its localStorage records after a reload, retried automatically. It has no
  // file objects of its own; each file becomes { uniqueIdentifier: its qquuid, ... } for the rest of the page.
  function createFineUploader() {
    var files = {}; // Fine Uploader id -> file
    var submitted = [];
    var fu = new window.qq.FineUploaderBasic({
      autoUpload: false, // the page asks the server what it already has first (checkServer), then starts
      warnBeforeUnload: false, // leaving is safe: the same file resumes later
      maxConnections: config.simultaneousUploads,
      request: { endpoint: '/fineuploader' },
      chunking: {
        enabled: true,
        partSize: config.chunkSize,
        concurrent: { enabled: true },
        success: { endpoint: '/fineuploader/done' }
      },
      resume: { enabled: true },
      retry: { enableAuto: true, maxAutoAttempts: FU_MAX_AUTO_ATTEMPTS, autoAttemptDelay: FU_RETRY_DELAY_S },
      validation: { allowEmpty: true, sizeLimit: config.maxFileSize || 0 },
      callbacks: {
        onSubmitted: function (id, name) {
          var blob = fu.getFile(id);
          var f = files[id] = {
            fuId: id, uniqueIdentifier: fu.getUuid(id), name: name, size: fu.getSize(id),
            relativePath: blob && (blob.webkitRelativePath || droppedPaths.get(blob)), loaded: 0, finished: false, lastResponse: ''
          };
          submitted.push(f);
          if (submitted.length === 1) {
            setTimeout(function () { var batch = submitted; submitted = []; filesAdded(batch, []); }, 0);
          }
        },
        onProgress: function (id, name, loaded) { if (files[id]) files[id].loaded = loaded; },
        // A resumed file whose upload the server no longer has starts over from its first part: answered by the
        // server instead ("reset"), it would break Fine Uploader while other parts are in flight.
        onResume: function (id) {
          var item = files[id] && items.get(files[id].uniqueIdentifier);
          return !(item && item.serverMissing);
        },
        // The answer itself was kept by watchFineUploader; a failure without one (a file that can no longer be
        // read) or a refused file (id null) has only the library's reason.
        onError: function (id, name, reason) {
          var f = files[id];
          if (id === null || id === undefined || !f) { showPageError(reason); return; }
          if (!f.pausing && !lastFailure.has(f.uniqueIdentifier)) {
            lastFailure.set(f.uniqueIdentifier, { status: 0, chunk: 0, retryAfterMs: 0, text: '', detail: reason });
          }
        },
        onAutoRetry: function (id) {
          var f = files[id];
          if (f && !f.pausing) retrying(f.uniqueIdentifier, function () {}, FU_RETRY_DELAY_S * 1000);
        },
        onComplete: function (id, name, response) {
          var f = files[id];
          if (!f) return;
          if (response && response.success) {
            f.finished = true;
            f.loaded = f.size;
            chunksDone(f.uniqueIdentifier);
          } else if (!f.pausing) {
            var failure = lastFailure.get(f.uniqueIdentifier);
            f.lastResponse = failure && failure.text ? failure.text : JSON.stringify({ error: failure ? failure.detail : (response && response.error) || '' });
            fileFailed(f.uniqueIdentifier, f.lastResponse);
            lastFailure.delete(f.uniqueIdentifier);
          }
        }
      }
    });
    var droppedPaths = new WeakMap(); // File -> path inside a dropped folder
    var add = function (list) { if (list && list.length) fu.addFiles(Array.prototype.slice.call(list)); };
    return {
      fu: fu,
      assignBrowse: function (input) {
        input.addEventListener('change', function () { add(input.files); input.value = ''; });
      },
      assignDrop: function (zone) {
        zone.addEventListener('dragover', function (e) { e.preventDefault(); });
        zone.addEventListener('drop', function (e) {
          e.preventDefault();
          if (e.dataTransfer) droppedFiles(e.dataTransfer, droppedPaths, add);
        });
      }
    };
  }

  // The files of a drop, folders walked (Fine Uploader's core build has no drop support of its own).
  function droppedFiles(dataTransfer, paths, done) {
    var items = dataTransfer.items;
    if (!items || !items.length || typeof items[0].webkitGetAsEntry !== 'function') {
      done(dataTransfer.files);
      return;
    }
    var files = [];
    var pending = 1;
    var finish = function () { if (--pending === 0) done(files); };
    var walk = function (entry) {
      pending++;
      if (entry.isFile) {
        entry.file(function (file) {
          if (entry.fullPath.lastIndexOf('/') > 0) paths.set(file, entry.fullPath.replace(/^\//, ''));
          files.push(file);
          finish();
        }, finish);
      } else if (entry.isDirectory) {
        var reader = entry.createReader();
        var readMore = function () {
          reader.readEntries(function (list) {
            if (!list.length) { finish(); return; }
            list.forEach(walk);
            readMore();
          }, finish);
        };
        readMore();
      } else {
        finish();
      }
    };
    var entries = [];
    for (var i = 0; i < items.length; i++) {
      var entry = items[i].kind === 'file' && items[i].webkitGetAsEntry();
      if (entry) entries.push(entry);
    }
    if (!entries.length) {
      done(dataTransfer.files);
      return;
    }
    entries.forEach(walk);
    finish();
  }

  // resumable.js's upload() does nothing while any chunk is in flight, and pausing one file frees its
  // slots without refilling them; fill every free slot with the next pending chunk.
  function kickResumable() {
    var busy = 0;
    uploader.files.forEach(function (f) {
      f.chunks.forEach(function (c) { if (c.status() === 'uploading') busy++; });
    });
    for (var i = busy; i < config.simultaneousUploads; i++) {
      if (!uploader.uploadNextChunk()) break;
    }
  }

  // ---------- items (one per file row) ----------
  function createItem(file) {
    var id = adapter.id(file);
    var row = els.template.content.firstElementChild.cloneNode(true);
    var name = adapter.path(file) || adapter.name(file);
    row.dataset.id = id;
    row.querySelector('.name').textContent = name;
    row.querySelector('.size').textContent = formatBytes(file.size);
    row.querySelector('.bar').setAttribute('aria-label', 'Upload progress of ' + name);
    var item = {
      // serverId is the upload's id on the server: the resumable.js/flow.js identifier; for tus the last segment
      // of the upload URL, known once the server created it.
      id: id, serverId: LIB === 'uppy' ? null : id, file: file, name: name, size: file.size, row: row, state: 'queued',
      attempts: {}, retryUntil: 0, lastFailureText: '', errorText: '', serverAlready: 0,
      samples: [], speed: 0, sha256: null, polling: false, cancelled: false
    };
    var buttons = ['pause', 'resume', 'retry', 'cancel', 'remove'];
    var labels = { pause: 'Pause', resume: 'Resume', retry: 'Try again', cancel: 'Cancel', remove: 'Remove from list' };
    buttons.forEach(function (b) {
      var button = row.querySelector('.' + b);
      button.setAttribute('aria-label', labels[b] + ' ' + name);
      button.addEventListener('click', function () { actions[b](item); });
    });
    row.querySelector('.actions').setAttribute('aria-label', name);
    items.set(id, item);
    els.list.appendChild(row);
    return item;
  }

  function setState(item, state, announcement) {
    var changed = item.state !== state;
    item.state = state;
    if (changed && server.lastRefresh) refreshServer();
    if (announcement) announce(item.name + ': ' + announcement);
    render(item);
    renderOverall();
  }

  var actions = {
    pause: function (item) {
      if (item.state !== 'uploading' && item.state !== 'queued' && item.state !== 'retrying') return;
      adapter.pause(item.file);
      item.retryUntil = 0;
      setState(item, 'paused', 'paused');
      focusAfter(item, 'resume');
    },
    resume: function (item) {
      if (item.state !== 'paused') return;
      setState(item, 'uploading', 'resumed');
      adapter.resume(item.file);
      focusAfter(item, 'pause');
    },
    retry: function (item) {
      if (item.state !== 'error') return;
      item.errorText = '';
      item.attempts = {};
      setState(item, 'uploading', 'trying again');
      if (item.chunksDone) { pollUntilComplete(item); return; }
      adapter.retry(item.file);
    },
    cancel: function (item) {
      if (item.cancelled) return;
      item.cancelled = true;
      item.retryUntil = 0;
      if (!item.chunksDone || item.state !== 'complete') adapter.cancel(item.file);
      setState(item, 'cancelled', 'cancelled');
      deleteOnServer(item);
      focusAfter(item, null);
    },
    remove: function (item) {
      adapter.forget(item.file);
      items.delete(item.id);
      item.row.remove();
      renderOverall();
      $('files-title').focus();
    }
  };

  function focusAfter(item, buttonClass) {
    var target = buttonClass ? item.row.querySelector('.' + buttonClass) : item.row.querySelector('.remove');
    // Keep keyboard users in place when the button they pressed disappears.
    setTimeout(function () { if (target && !target.hidden) target.focus(); }, 0);
  }

  // DELETE removes stored chunks and any (partial) file. A chunk that was already on the wire when the
  // user cancelled can still land after the first DELETE, so check once more and delete again.
  function deleteOnServer(item) {
    if (!item.serverId) return;
    var url = '/uploads/' + encodeURIComponent(item.serverId);
    var del = function () { return fetch(url, { method: 'DELETE' }); };
    del().then(function () {
      return new Promise(function (resolve) { setTimeout(resolve, 1500); });
    }).then(function () {
      return fetch(url);
    }).then(function (res) {
      if (res.status !== 404) return del();
    }).catch(function (e) {
      item.errorText = 'Could not remove the upload from the server: ' + e.message;
      render(item);
    });
  }

  // ---------- events from the libraries ----------
  function filesAdded(files, skipped) {
    showPageError('');
    if (skipped.length) {
      showPageError(skipped.length + ' file(s) skipped: already in the list.');
    }
    if (!files.length) return;
    var added = files.map(createItem);
    announce(added.length + (added.length === 1 ? ' file added' : ' files added'));
    // Ask the server what it already has before sending anything, to say "resuming: 62% ...".
    Promise.all(added.map(checkServer)).then(function () {
      added.forEach(function (item) { if (item.state === 'queued') item.state = 'uploading'; });
      adapter.start();
      tick();
    });
  }

  function chunkSizeAt(status, n) {
    var size = status.chunkSize;
    if (n < status.totalChunks) return size;
    return status.totalSize - (status.totalChunks - 1) * size;
  }

  function checkServer(item) {
    return fetchJson('/uploads/' + encodeURIComponent(item.serverId)).then(function (status) {
      if (!status || status.totalSize !== item.size) return;
      var missing = (status.missingChunks || []).reduce(function (n, c) { return n + chunkSizeAt(status, c); }, 0);
      var present = status.state === 'complete' ? status.totalSize : status.totalSize - missing;
      item.serverAlready = present;
      if (status.state === 'complete') {
        setNote(item, 'Already complete on the server; checking…');
      } else if (present > 0) {
        setNote(item, 'resuming: ' + percent(present / Math.max(1, status.totalSize)) + ' already on the server');
      }
    }).catch(function (e) {
      if (e.status === 404) item.serverMissing = true;
      else setNote(item, 'Could not ask the server about earlier progress: ' + e.message);
    });
  }

  function setNote(item, text) {
    var note = item.row.querySelector('.note');
    note.textContent = text;
    note.hidden = !text;
  }

  // fixedDelayMs: the library waits that long whatever the page says (Fine Uploader).
  function retrying(id, setDelay, fixedDelayMs) {
    var item = items.get(id);
    var failure = lastFailure.get(id);
    lastFailure.delete(id);
    var chunk = failure ? failure.chunk : 0;
    var attempt = item ? (item.attempts[chunk] = (item.attempts[chunk] || 0) + 1) : 1;
    var delay = fixedDelayMs || Math.min(1000 * Math.pow(2, attempt - 1), MAX_RETRY_DELAY_MS);
    if (failure && failure.retryAfterMs) delay = Math.max(delay, Math.min(failure.retryAfterMs, MAX_RETRY_AFTER_MS));
    setDelay(delay);
    if (!item || item.cancelled) return;
    item.retryUntil = Math.max(item.retryUntil, Date.now() + delay);
    item.lastFailureText = failure ? failure.detail : 'The connection to the server was lost.';
    if (item.state !== 'retrying' && item.state !== 'paused') setState(item, 'retrying', 'problem: ' + item.lastFailureText + ' Retrying.');
  }

  function fileFailed(id, message) {
    var item = items.get(id);
    if (!item || item.cancelled) return;
    var failure = lastFailure.get(id);
    item.errorText = problemDetail(message, failure ? failure.status : 0);
    item.retryUntil = 0;
    setState(item, 'error', 'upload failed. ' + item.errorText);
  }

  function chunksDone(id) {
    var item = items.get(id);
    if (!item || item.cancelled) return;
    item.chunksDone = true;
    item.retryUntil = 0;
    setState(item, 'verifying');
    pollUntilComplete(item);
  }

  // Completion is asynchronous on the server: poll GET /uploads/{id} until it reports complete.
  function pollUntilComplete(item) {
    if (item.polling) return;
    item.polling = true;
    var delay = 250;
    var tick = function () {
      if (item.cancelled) { item.polling = false; return; }
      fetchJson('/uploads/' + encodeURIComponent(item.serverId)).then(function (status) {
        if (status.state === 'complete') {
          item.polling = false;
          item.sha256 = status.sha256;
          setState(item, 'complete', 'upload complete');
          return;
        }
        if (status.state === 'failed') {
          item.polling = false;
          item.errorText = 'The server could not assemble the file. Try again, or cancel and upload it anew.';
          setState(item, 'error', 'upload failed. ' + item.errorText);
          return;
        }
        delay = Math.min(delay * 1.5, 2000);
        setTimeout(tick, delay);
      }).catch(function (e) {
        if (e.status === 404 || e.status === 400 || e.status === 409) {
          item.polling = false;
          item.errorText = e.message;
          setState(item, 'error', 'upload failed. ' + e.message);
          return;
        }
        delay = Math.min(delay * 2, 10000);
        setTimeout(tick, delay); // network trouble or 503: keep asking
      });
    };
    tick();
  }

  // ---------- Uppy (tus) ----------
  // Uppy's tus plugin (tus-js-client inside) remembers each upload URL in localStorage under the file's Uppy id
  // (name, type, relative path, size, modification time): after a reload, adding the same file HEADs that URL and
  // sends only what the server is missing.
  var tusRequestFile = new WeakMap(); // tus request -> Uppy file id (onBeforeRequest is told the file, onAfterResponse not)
  var TUS_RETRY_DELAYS = [100, 1000, 3000, 5000, 10000, 20000, 30000, 30000, 30000, 30000];

  function createUppy() {
    var U = window.Uppy;
    var uppy = new U.Uppy({
      autoProceed: true,
      restrictions: { maxFileSize: config.maxFileSize || null }
    });
    uppy.use(U.Dashboard, {
      inline: true,
      target: '#uppy-dashboard',
      width: '100%',
      height: 340,
      fileManagerSelectionType: 'both',
      showProgressDetails: true,
      proudlyDisplayPoweredByUppy: false
    });
    uppy.use(U.Tus, {
      endpoint: new URL('/tus', location.href).href,
      chunkSize: config.chunkSize,
      limit: config.simultaneousUploads,
      retryDelays: TUS_RETRY_DELAYS,
      onBeforeRequest: function (req, file) { tusRequestFile.set(req, file.id); },
      onAfterResponse: function (req, res) { tusResponse(items.get(tusRequestFile.get(req)), req, res); }
    });

    uppy.on('file-added', function (file) {
      showPageError('');
      var old = items.get(file.id);
      if (old) { items.delete(old.id); old.row.remove(); } // added again after it was removed
      createItem(file);
      announce(file.name + ' added');
      renderOverall();
    });
    uppy.on('restriction-failed', function (file, error) { showPageError(error.message); });
    uppy.on('upload-progress', function (file) {
      var item = items.get(file.id);
      if (item && item.state === 'queued') setState(item, 'uploading');
    });
    uppy.on('upload-pause', function (file, isPaused) {
      var item = items.get(file.id);
      if (item) setState(item, isPaused ? 'paused' : 'uploading', isPaused ? 'paused' : 'resumed');
    });
    uppy.on('pause-all', function () { eachUppyItem('uploading', 'paused'); });
    uppy.on('resume-all', function () { eachUppyItem('paused', 'uploading'); });
    uppy.on('upload-retry', function (file) { retryUppyItem(items.get(file.id)); });
    uppy.on('retry-all', function (files) { files.forEach(function (f) { retryUppyItem(items.get(f.id)); }); });
    uppy.on('upload-success', function (file, response) {
      var item = items.get(file.id);
      if (!item || item.cancelled) return;
      item.serverId = serverIdOf(response.uploadURL) || item.serverId;
      chunksDone(item.id);
    });
    uppy.on('upload-error', function (file, error, response) {
      var item = items.get(file.id);
      if (!item || item.cancelled) return;
      var xhr = response && response.body && response.body.xhr;
      item.errorText = xhr && xhr.status ? problemDetail(xhr.responseText, xhr.status) : (item.lastFailureText || describeStatus(0));
      setState(item, 'error', 'upload failed. ' + item.errorText);
    });
    uppy.on('file-removed', function (file) {
      var item = items.get(file.id);
      if (!item || item.cancelled || item.state === 'complete') return;
      // Uppy terminates an upload it is running (tus DELETE); one that failed or never started is deleted here.
      item.cancelled = true;
      setState(item, 'cancelled', 'cancelled');
      deleteOnServer(item);
    });
    return uppy;
  }

  function eachUppyItem(from, to) {
    items.forEach(function (item) { if (item.state === from) setState(item, to); });
  }

  function retryUppyItem(item) {
    if (!item) return;
    item.errorText = '';
    item.lastFailureText = '';
    setState(item, 'uploading', 'trying again');
  }

  // The upload's id on the server: the last segment of its tus URL.
  function serverIdOf(url) {
    if (!url) return null;
    var path = new URL(url, location.href).pathname;
    return decodeURIComponent(path.slice(path.lastIndexOf('/') + 1)) || null;
  }

  // Every tus answer: learns the upload's id, says how much a resumed upload already has on the server (the HEAD
  // tus-js-client sends first), and keeps the server's words for a failure (shown if the retries give up).
  function tusResponse(item, req, res) {
    if (!item) return;
    var status = res.getStatus();
    if (req.getMethod() === 'POST' && status === 201) item.serverId = serverIdOf(res.getHeader('Location'));
    else if (req.getMethod() !== 'POST') item.serverId = item.serverId || serverIdOf(req.getURL());
    if (req.getMethod() === 'HEAD' && status === 200) {
      var offset = Number(res.getHeader('Upload-Offset'));
      var length = Number(res.getHeader('Upload-Length'));
      item.serverAlready = offset;
      if (offset >= length) setNote(item, 'Already complete on the server; checking…');
      else if (offset > 0) setNote(item, 'resuming: ' + percent(offset / Math.max(1, length)) + ' already on the server');
    } else if (status >= 400) {
      item.lastFailureText = problemDetail(res.getBody(), status);
    }
  }

  // ---------- rendering ----------
  function measure(item, now) {
    var sent = adapter.sent(item.file);
    item.samples.push({ t: now, sent: sent });
    while (item.samples.length > 2 && now - item.samples[0].t > 5000) item.samples.shift();
    var first = item.samples[0];
    var rate = 0;
    if (now - first.t > 400) {
      // sum only increases: a retried chunk restarts from zero and must not count as negative speed
      var gained = 0;
      for (var i = 1; i < item.samples.length; i++) gained += Math.max(0, item.samples[i].sent - item.samples[i - 1].sent);
      rate = gained / ((now - first.t) / 1000);
    }
    item.speed = rate;
  }

  function safeProgress(item) {
    var p = adapter.progress(item.file);
    return isFinite(p) ? Math.min(1, Math.max(0, p)) : 0;
  }

  function render(item) {
    var row = item.row;
    var now = Date.now();
    var state = item.state;
    var retryLeft = Math.ceil((item.retryUntil - now) / 1000);
    if (state === 'retrying' && retryLeft <= 0 && !item.cancelled) state = item.state = 'uploading';
    row.dataset.state = state;
    var progress = state === 'complete' || state === 'verifying' ? 1 : safeProgress(item);
    if (state === 'cancelled') progress = 0;
    row.querySelector('.bar').value = progress;
    var status;
    switch (state) {
      case 'queued': status = 'Checking the server…'; break;
      case 'uploading':
        if (!navigator.onLine) { status = percent(progress) + ' · offline: waiting for the network'; break; }
        var left = item.speed > 0 ? formatDuration(item.size * (1 - progress) / item.speed) + ' left' : 'estimating time left';
        status = percent(progress) + ' · ' + formatBytes(item.speed) + '/s · ' + left;
        break;
      case 'retrying':
        status = percent(progress) + ' · ' + item.lastFailureText + ' Retrying in ' + retryLeft + ' s.';
        break;
      case 'paused': status = percent(progress) + ' · Paused'; break;
      case 'verifying': status = 'All chunks sent; the server is assembling and checking the file…'; break;
      case 'complete': status = 'Complete'; break;
      case 'error': status = 'Failed: ' + item.errorText; break;
      case 'cancelled': status = 'Cancelled; removed from the server.'; break;
      default: status = state;
    }
    if (state !== 'error' && item.errorText && state === 'cancelled') status += ' ' + item.errorText;
    row.querySelector('.status').textContent = status;

    var result = row.querySelector('.result');
    result.hidden = state !== 'complete';
    if (state === 'complete') {
      row.querySelector('.sha256').textContent = item.sha256 || 'not reported';
      var link = row.querySelector('.download');
      link.href = '/files/' + encodeURIComponent(item.serverId);
      link.setAttribute('download', item.name.split('/').pop());
      link.textContent = 'Download ' + item.name;
    }
    var active = state === 'uploading' || state === 'queued' || state === 'retrying';
    row.querySelector('.pause').hidden = !active;
    row.querySelector('.resume').hidden = state !== 'paused';
    row.querySelector('.retry').hidden = state !== 'error';
    row.querySelector('.cancel').hidden = state === 'cancelled' || state === 'complete';
    row.querySelector('.remove').hidden = !(state === 'cancelled' || state === 'complete' || state === 'error');
  }

  function renderOverall() {
    var total = 0, done = 0, speed = 0, counts = {};
    items.forEach(function (item) {
      counts[item.state] = (counts[item.state] || 0) + 1;
      if (item.state === 'cancelled') return;
      var p = item.state === 'complete' || item.state === 'verifying' ? 1 : safeProgress(item);
      total += item.size;
      done += p * item.size;
      if (item.state === 'uploading') speed += item.speed;
    });
    var n = items.size;
    var fraction = total > 0 ? done / total : (n && !(counts.uploading || counts.queued) ? 1 : 0);
    els.overallBar.value = isFinite(fraction) ? fraction : 0;
    if (!n) {
      els.overallText.textContent = 'No files yet.';
    } else {
      var parts = [percent(fraction) + ' of ' + formatBytes(total)];
      if (speed > 0) parts.push(formatBytes(speed) + '/s', formatDuration((total - done) / speed) + ' left');
      var summary = ['complete', 'uploading', 'retrying', 'paused', 'verifying', 'error', 'cancelled']
        .filter(function (s) { return counts[s]; })
        .map(function (s) { return counts[s] + ' ' + (s === 'error' ? 'failed' : s); });
      els.overallText.textContent = parts.join(' · ') + ' — ' + summary.join(', ');
    }
    var any = function (pred) { var r = false; items.forEach(function (i) { if (pred(i)) r = true; }); return r; };
    els.pauseAll.disabled = !any(function (i) { return i.state === 'uploading' || i.state === 'retrying'; });
    els.resumeAll.disabled = !any(function (i) { return i.state === 'paused'; });
    els.cancelAll.disabled = !any(function (i) { return ['uploading', 'retrying', 'paused', 'queued', 'verifying', 'error'].indexOf(i.state) >= 0; });
    document.title = n && (counts.uploading || counts.retrying) ? percent(fraction) + ' · ChunkUpload' : 'ChunkUpload';
  }

  function tick() {
    var now = Date.now();
    items.forEach(function (item) {
      if (item.state === 'uploading' || item.state === 'retrying') measure(item, now);
      render(item);
    });
    renderOverall();
  }

  // ---------- start-up ----------
  function setUpDropZone() {
    var depth = 0;
    els.drop.addEventListener('dragenter', function () { depth++; els.drop.classList.add('dragging'); });
    els.drop.addEventListener('dragleave', function () { if (--depth <= 0) { depth = 0; els.drop.classList.remove('dragging'); } });
    els.drop.addEventListener('drop', function () { depth = 0; els.drop.classList.remove('dragging'); });
    // Dropping next to the zone must not navigate away from the uploads.
    ['dragover', 'drop'].forEach(function (type) {
      window.addEventListener(type, function (e) { if (!els.drop.contains(e.target)) e.preventDefault(); });
    });
  }

  // "use X or Y instead": links to the page with each other library.
  function renderLibrarySwitch() {
    var others = Object.keys(adapters).filter(function (k) { return k !== LIB; });
    els.librarySwitch.textContent = 'use ';
    others.forEach(function (k, i) {
      if (i > 0) els.librarySwitch.appendChild(document.createTextNode(i === others.length - 1 ? ' or ' : ', '));
      var link = document.createElement('a');
      link.href = k === 'resumable' ? location.pathname : '?lib=' + k;
      link.textContent = adapters[k].title;
      els.librarySwitch.appendChild(link);
    });
    els.librarySwitch.appendChild(document.createTextNode(' instead'));
  }

  // Uppy's prebuilt bundle (npm package "uppy") is fetched only for ?lib=uppy; the others are in index.html.
  function loadLibrary() {
    if (LIB !== 'uppy') return Promise.resolve();
    return new Promise(function (resolve) {
      var css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = '/lib/uppy.min.css';
      document.head.appendChild(css);
      var script = document.createElement('script');
      script.src = '/lib/uppy.min.js';
      script.onload = resolve;
      script.onerror = resolve; // adapter.available() reports it
      document.head.appendChild(script);
    });
  }

  function start() {
    startServerList();
    adapter = adapters[LIB];
    els.libraryName.textContent = adapter.title;
    renderLibrarySwitch();
    document.documentElement.dataset.library = LIB;
    loadLibrary().then(startLibrary);
  }

  function startLibrary() {
    if (!adapter.available()) {
      showPageError(adapter.title + ' did not load. The server installs it with "npm ci"; ask the administrator to run it.');
      return;
    }
    if (!('webkitdirectory' in document.createElement('input'))) els.folderPicker.hidden = true;
    fetchJson('/config').then(function (c) {
      config = c;
      uploader = adapter.create();
      if (LIB === 'uppy') {
        els.pickers.hidden = true;
        els.dropHint.hidden = true;
        els.limits.textContent = 'Files are sent with the tus protocol in ' + formatBytes(config.chunkSize) + ' requests, ' +
          config.simultaneousUploads + ' files at a time' + (config.maxFileSize ? '; largest file ' + formatBytes(config.maxFileSize) : '') +
          '. After a reload, add the same file again to resume it.';
      } else {
        uploader.assignBrowse(els.fileInput, false);
        uploader.assignBrowse(els.folderInput, true);
        uploader.assignDrop(els.drop);
        els.limits.textContent = 'Files are sent in ' + formatBytes(config.chunkSize) + ' chunks, ' + config.simultaneousUploads +
          ' at a time' + (config.maxFileSize ? '; largest file ' + formatBytes(config.maxFileSize) : '') + '.';
      }
      setUpDropZone();
      els.pauseAll.addEventListener('click', function () {
        items.forEach(function (i) { actions.pause(i); });
      });
      els.resumeAll.addEventListener('click', function () {
        items.forEach(function (i) { actions.resume(i); });
      });
      els.cancelAll.addEventListener('click', function () {
        items.forEach(function (i) { if (i.state !== 'complete' && i.state !== 'cancelled') actions.cancel(i); });
      });
      window.addEventListener('online', tick);
      window.addEventListener('offline', tick);
      setInterval(tick, 500);
      document.documentElement.dataset.ready = 'true';
    }).catch(function (e) {
      els.limits.textContent = '';
      showPageError('The upload server is not reachable: ' + e.message + ' Reload the page to try again.');
    });
  }

  // ---------- "On the server": GET /uploads (the caller's uploads, newest first) ----------
  // Refreshed every 2 s while an upload is in progress (on the server or on this page), every 15 s otherwise,
  // and at once when an upload on this page changes state. DELETE /uploads/{id} removes one.
  var server = {
    body: $('server-list'), scroll: $('server-scroll'), status: $('server-status'), template: $('server-row-template'),
    refreshButton: $('server-refresh'), busy: false, again: false, inProgress: false, lastRefresh: 0,
    STATES: { receiving: 'Receiving', assembling: 'Assembling', complete: 'Complete', failed: 'Failed' }
  };
  function formatAge(iso) {
    var seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (!isFinite(seconds)) return '?';
    return formatDuration(Math.max(0, seconds)) + ' ago';
  }
  function localActive() {
    var active = false;
    items.forEach(function (i) {
      if (i.state === 'uploading' || i.state === 'queued' || i.state === 'retrying' || i.state === 'verifying') active = true;
    });
    return active;
  }
  function renderServerRow(row, u) {
    var size = u.totalSize;
    var fraction = size > 0 ? Math.min(1, u.storedBytes / size) : (u.state === 'complete' ? 1 : 0);
    row.dataset.id = u.identifier;
    row.dataset.state = u.state;
    row.querySelector('.name').textContent = u.fileName;
    row.querySelector('.size').textContent = size == null ? formatBytes(u.storedBytes) + ' so far' : formatBytes(size);
    row.querySelector('.protocol').textContent = u.protocol;
    row.querySelector('.state').textContent = server.STATES[u.state] || u.state;
    var bar = row.querySelector('progress');
    bar.value = fraction;
    bar.setAttribute('aria-label', 'Stored on the server: ' + u.fileName);
    row.querySelector('.percent').textContent = percent(fraction);
    row.querySelector('.age').textContent = formatAge(u.createdAt);
    row.querySelector('.age').title = u.createdAt;
    var link = row.querySelector('a.download');
    link.hidden = !u.downloadUrl;
    if (u.downloadUrl) {
      link.href = u.downloadUrl;
      link.setAttribute('aria-label', u.fileName + ': download the copy on the server');
    } else {
      link.removeAttribute('href');
    }
    var del = row.querySelector('button.delete');
    del.setAttribute('aria-label', u.fileName + ': delete from the server');
    del.dataset.url = u.statusUrl;
    del.dataset.name = u.fileName;
  }
  function renderServerList(page) {
    var rows = new Map();
    Array.prototype.forEach.call(server.body.querySelectorAll('tr.server-upload'), function (r) { rows.set(r.dataset.id, r); });
    var focused = document.activeElement;
    page.uploads.forEach(function (u, index) {
      var row = rows.get(u.identifier);
      if (row) rows.delete(u.identifier);
      else row = server.template.content.firstElementChild.cloneNode(true);
      renderServerRow(row, u);
      if (server.body.children[index] !== row) server.body.insertBefore(row, server.body.children[index] || null);
    });
    rows.forEach(function (r) { r.remove(); });
    if (focused && focused !== document.body && !document.body.contains(focused)) $('server-title').focus(); // its row is gone
    server.inProgress = page.uploads.some(function (u) { return u.state === 'receiving' || u.state === 'assembling'; });
    server.scroll.hidden = page.uploads.length === 0;
    server.status.textContent = page.uploads.length === 0 ? 'Nothing stored for you yet.'
      : page.uploads.length + (page.next ? ' newest uploads shown.' : (page.uploads.length === 1 ? ' upload.' : ' uploads.'));
  }
  function refreshServer() {
    if (server.busy) { server.again = true; return Promise.resolve(); }
    server.busy = true;
    server.lastRefresh = Date.now();
    return fetchJson('uploads?limit=50', { headers: { Accept: 'application/json' } }).then(renderServerList, function (e) {
      server.status.textContent = 'The list could not be loaded: ' + e.message;
    }).then(function () {
      server.busy = false;
      if (server.again) { server.again = false; return refreshServer(); }
    });
  }
  function deleteListedUpload(button) {
    var name = button.dataset.name;
    button.disabled = true;
    fetchJson(button.dataset.url, { method: 'DELETE' }).then(function () {
      announce(name + ': deleted from the server');
    }, function (e) {
      if (e.status !== 404) showPageError(name + ' could not be deleted: ' + e.message);
    }).then(refreshServer);
  }
  function startServerList() {
    server.refreshButton.addEventListener('click', refreshServer);
    server.body.addEventListener('click', function (e) {
      var button = e.target.closest && e.target.closest('button.delete');
      if (button) deleteListedUpload(button);
    });
    setInterval(function () {
      var every = server.inProgress || localActive() ? 2000 : 15000;
      if (Date.now() - server.lastRefresh >= every - 100) refreshServer();
    }, 500);
    refreshServer();
  }

  // For tests and the curious: read-only view of the page's state.
  window.ChunkUploadPage = {
    library: LIB,
    items: function () {
      var out = [];
      items.forEach(function (i) { out.push({ id: i.id, serverId: i.serverId, name: i.name, size: i.size, state: i.state, sha256: i.sha256 }); });
      return out;
    }
  };

  start();
})();

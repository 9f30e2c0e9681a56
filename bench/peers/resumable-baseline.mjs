// A resumable.js backend written the way the resumable.js samples do it (samples/Node.js): every
// chunk is streamed to its own file, and the chunk that completes the set triggers the concatenation
// of the chunk files into the final file. Multipart parsing streams through busboy instead of
// buffering. One deliberate improvement keeps it a fair baseline rather than a straw man: the sample
// walks chunks 1..N with fs.exists after *every* chunk, O(N^2) stat calls (about 500,000, some 20 s
// of CPU here, for 1 GiB in 1 MiB chunks); this server counts received chunks in memory and walks
// the chunk files once, when the count says the set is complete.
//
// Usage: node resumable-baseline.mjs PORT STORAGE_DIR   (binds 127.0.0.1 only)
//   POST /upload                 multipart chunk, resumable.js fields, then the `file` part
//   GET  /upload?...             test request: 200 if the chunk file exists, else 204
//   GET  /uploads/:identifier    {"state": "uploading" | "assembling" | "complete" | "failed"}
//   GET  /healthz
import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';

const port = Number(process.argv[2]);
const root = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || !root) {
  console.error('usage: node resumable-baseline.mjs PORT STORAGE_DIR');
  process.exit(2);
}
const chunkDir = path.join(root, 'chunks');
const doneDir = path.join(root, 'files');
fs.mkdirSync(chunkDir, { recursive: true });
fs.mkdirSync(doneDir, { recursive: true });

// identifier -> 'assembling' | 'complete' | 'failed' (absent: still uploading)
const states = new Map();
// identifier -> Set of chunk numbers stored so far
const received = new Map();

const clean = (id) => String(id ?? '').replace(/[^0-9A-Za-z_-]/g, '');
const chunkPath = (id, n) => path.join(chunkDir, `resumable-${id}.${n}`);

function send(res, status, body, type = 'text/plain') {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

// The samples' testAllChunkExists: walk chunk 1..N until one is missing (here only once the count is full).
async function allChunksExist(id, total) {
  for (let n = 1; n <= total; n++) {
    try { await fsp.access(chunkPath(id, n)); } catch { return false; }
  }
  return true;
}

async function assemble(id, total, filename) {
  const target = path.join(doneDir, `${id}-${clean(filename) || 'file'}`);
  const out = fs.createWriteStream(target);
  try {
    for (let n = 1; n <= total; n++) {
      await pipeline(fs.createReadStream(chunkPath(id, n)), out, { end: false });
    }
    await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())));
    await Promise.all(Array.from({ length: total }, (_, i) => fsp.rm(chunkPath(id, i + 1), { force: true })));
    states.set(id, 'complete');
  } catch (err) {
    out.destroy();
    states.set(id, 'failed');
    console.error(`assembly of ${id} failed: ${err}`);
  }
}

function handlePost(req, res) {
  const fields = {};
  let saving = null;
  let bb;
  try {
    bb = busboy({ headers: req.headers, limits: { files: 1 } });
  } catch {
    send(res, 400, 'not multipart');
    return;
  }
  bb.on('field', (name, value) => { fields[name] = value; });
  bb.on('file', (name, stream) => {
    const id = clean(fields.resumableIdentifier);
    const n = Number(fields.resumableChunkNumber);
    if (name !== 'file' || !id || !Number.isInteger(n) || n < 1) {
      stream.resume();
      return;
    }
    const final = chunkPath(id, n);
    const tmp = `${final}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    saving = pipeline(stream, fs.createWriteStream(tmp)).then(() => fsp.rename(tmp, final));
  });
  bb.on('close', async () => {
    const id = clean(fields.resumableIdentifier);
    const total = Number(fields.resumableTotalChunks);
    if (!saving || !id || !Number.isInteger(total) || total < 1) {
      send(res, 400, 'invalid resumable request');
      return;
    }
    try {
      await saving;
    } catch (err) {
      send(res, 500, `write failed: ${err}`);
      return;
    }
    let got = received.get(id);
    if (!got) received.set(id, (got = new Set()));
    got.add(Number(fields.resumableChunkNumber));
    if (got.size >= total && !states.has(id) && (await allChunksExist(id, total)) && !states.has(id)) {
      states.set(id, 'assembling');
      received.delete(id);
      // As in the samples, the client gets its answer and the concatenation runs afterwards.
      send(res, 200, 'done');
      assemble(id, total, fields.resumableFilename);
      return;
    }
    send(res, 200, 'partly_done');
  });
  bb.on('error', (err) => { if (!res.headersSent) send(res, 400, `multipart error: ${err}`); });
  req.pipe(bb);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, 'ok');
  if (req.method === 'POST' && url.pathname === '/upload') return handlePost(req, res);
  if (req.method === 'GET' && url.pathname === '/upload') {
    const id = clean(url.searchParams.get('resumableIdentifier'));
    const n = Number(url.searchParams.get('resumableChunkNumber'));
    if (!id || !Number.isInteger(n) || n < 1) return send(res, 400, 'invalid');
    try { await fsp.access(chunkPath(id, n)); return send(res, 200, 'found'); } catch { return send(res, 204, ''); }
  }
  const m = /^\/uploads\/([^/]+)$/.exec(url.pathname);
  if (req.method === 'GET' && m) {
    const id = clean(decodeURIComponent(m[1]));
    return send(res, 200, JSON.stringify({ identifier: id, state: states.get(id) ?? 'uploading' }), 'application/json');
  }
  req.resume();
  send(res, 404, 'not found');
});
server.listen(port, '127.0.0.1', () => console.log(`resumable baseline listening on 127.0.0.1:${port}, storing in ${root}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

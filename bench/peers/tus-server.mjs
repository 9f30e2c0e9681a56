// @tus/server 2.4.5 with @tus/file-store 2.1.1, as its README configures it, for the ChunkUpload
// benchmark. Usage: node tus-server.mjs PORT STORAGE_DIR   (binds 127.0.0.1 only)
import http from 'node:http';
import fs from 'node:fs';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const port = Number(process.argv[2]);
const directory = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || !directory) {
  console.error('usage: node tus-server.mjs PORT STORAGE_DIR');
  process.exit(2);
}
fs.mkdirSync(directory, { recursive: true });

const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
    return;
  }
  tus.handle(req, res);
});
server.listen(port, '127.0.0.1', () => console.log(`tus peer listening on 127.0.0.1:${port}, storing in ${directory}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

// Shared by the scenario scripts: runs one tus-js-client Upload with the options a scenario chose, records every
// HTTP request it makes (method, tus headers, body bytes handed to the socket, status, answered offset) and prints
// ONE line of JSON on stdout for the xunit test to assert on. Nothing here changes what tus-js-client sends.
import { createHash } from 'node:crypto'
import { createReadStream, readFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { Readable, Transform } from 'node:stream'
import * as tus from 'tus-js-client'

/** The scenario's arguments: one JSON object in argv[2] (endpoint, file, name, ...). */
export function scenarioArguments() {
  const text = process.argv[2]
  if (!text) throw new Error('usage: node <scenario>.mjs \'{"endpoint": "...", "file": "...", ...}\'')
  return JSON.parse(text)
}

/** tus-js-client's Node source for a file on disk: a ReadStream with a path, which it re-opens per slice. */
export function fileSource(path) {
  return createReadStream(path)
}

/**
 * The scenario's source: the file as a ReadStream, or read into a Buffer when `args.buffer` is set. The IETF modes need
 * a Buffer: with a ReadStream tus-js-client 4.3.1 never sends Upload-Complete: ?1 (PROTOCOLS.md 11).
 */
export function sourceOf(args) {
  return args.buffer ? readFileSync(args.file) : fileSource(args.file)
}

/** tus-js-client's `protocol` option when the scenario names one ('ietf-draft-03', 'ietf-draft-05'); else its default. */
export function protocolOf(args) {
  return args.protocol ? { protocol: args.protocol } : {}
}

export function metadataOf(args) {
  return { filename: args.name, filetype: args.type ?? 'application/octet-stream' }
}

/**
 * Wraps tus-js-client's own Node HTTP stack; every request it creates is recorded in `requests`. `onBodyBytes`
 * (optional) hears the running total of body bytes sent by all requests.
 */
export class RecordingHttpStack {
  constructor(onBodyBytes = null) {
    this.inner = new tus.DefaultHttpStack()
    this.requests = []
    this.pending = new Set()
    this.bodyBytes = 0
    this.onBodyBytes = onBodyBytes
  }

  getName() {
    return 'RecordingHttpStack'
  }

  createRequest(method, url) {
    const req = this.inner.createRequest(method, url)
    const send = req.send.bind(req)
    req.send = (body = null) => {
      const entry = {
        method: req.getMethod(),
        url: req.getURL(),
        uploadOffset: numberOrNull(req.getHeader('Upload-Offset')),
        uploadLength: numberOrNull(req.getHeader('Upload-Length')),
        uploadConcat: req.getHeader('Upload-Concat') ?? null,
        uploadChecksum: req.getHeader('Upload-Checksum') ?? null,
        uploadComplete: req.getHeader('Upload-Complete') ?? null,
        interopVersion: req.getHeader('Upload-Draft-Interop-Version') ?? null,
        contentType: req.getHeader('Content-Type') ?? null,
        declaredBytes: body?.size ?? 0,
        sentBytes: 0,
        status: null,
        responseOffset: null,
        responseComplete: null,
        location: null,
        error: null,
      }
      this.requests.push(entry)
      let counted = body
      if (body instanceof Readable || body instanceof Uint8Array) {
        // Counts the body bytes tus-js-client hands to the request (what left the client, not what arrived). A
        // Buffer (a Buffer source's slice) goes to the socket in 64 KiB pieces through the same counter: the same
        // bytes and headers (Content-Length comes from its `size`, as for the Buffer itself), countable as they go.
        const stack = this
        const source = body instanceof Readable ? body : Readable.from(pieces(body), { objectMode: false })
        counted = new Transform({
          transform(chunk, _encoding, callback) {
            entry.sentBytes += chunk.length
            stack.bodyBytes += chunk.length
            callback(null, chunk)
            stack.onBodyBytes?.(stack.bodyBytes)
          },
        })
        counted.size = body.size
        source.on('error', (err) => counted.destroy(err))
        source.pipe(counted)
      } else if (body != null) {
        throw new Error(`unexpected body type ${typeof body}: the scenarios upload files from disk or Buffers`)
      }

      const promise = send(counted).then(
        (res) => {
          entry.status = res.getStatus()
          entry.responseOffset = numberOrNull(res.getHeader('Upload-Offset'))
          entry.responseComplete = res.getHeader('Upload-Complete') ?? null
          entry.location = res.getHeader('Location') ?? null
          return res
        },
        (err) => {
          entry.error = String(err?.message ?? err)
          throw err
        },
      )
      const settled = promise.catch(() => {})
      this.pending.add(settled)
      settled.finally(() => this.pending.delete(settled))
      return promise
    }
    return req
  }

  /** Waits until every request sent so far has its answer or its error recorded. */
  async settled() {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending])
  }
}

/**
 * Runs `upload` (already configured by the scenario, with `stack` as its httpStack) to its end: success, error,
 * or an abort the scenario triggers through `control.abort()`. Resolves with the result object to print.
 */
export function run(upload, stack, control = {}) {
  return new Promise((resolve) => {
    let acknowledged = 0
    let progress = 0
    let finished = false
    const finish = async (outcome, error = null) => {
      if (finished) return
      finished = true
      await stack.settled()
      resolve({
        outcome,
        url: upload.url,
        size: upload._size,
        acknowledged,
        progress,
        error,
        requests: stack.requests,
      })
    }

    const options = upload.options
    const onProgress = options.onProgress
    options.onProgress = (sent, total) => {
      progress = Math.max(progress, sent)
      onProgress?.(sent, total)
    }
    options.onChunkComplete = (_chunk, accepted) => {
      acknowledged = Math.max(acknowledged, accepted)
    }
    options.onSuccess = () => finish('success')
    options.onError = (err) =>
      finish('error', {
        message: String(err?.message ?? err),
        status: err?.originalResponse?.getStatus() ?? null,
        body: err?.originalResponse?.getBody() ?? null,
        method: err?.originalRequest?.getMethod() ?? null,
      })
    control.abort = () => upload.abort().then(() => finish('aborted'))
    upload.start()
  })
}

/** A correct Upload-Checksum (sha1, base64) for the bytes [offset, end) of the file. */
export async function sha1Of(path, offset, end) {
  const hash = createHash('sha1')
  const handle = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(1024 * 1024)
    for (let at = offset; at < end; ) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - at), at)
      if (bytesRead === 0) throw new Error(`${path} ended at ${at}, before ${end}`)
      hash.update(buffer.subarray(0, bytesRead))
      at += bytesRead
    }
  } finally {
    await handle.close()
  }
  return hash.digest('base64')
}

/** Prints the result as one JSON line and exits (keep-alive sockets must not hold the process). */
export function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
}

/** Any exception in a scenario becomes a JSON result too, so the test shows it. */
export function main(scenario) {
  scenario().then(emit, (err) =>
    emit({ outcome: 'crashed', error: { message: String(err?.stack ?? err) }, requests: [] }),
  )
}

function* pieces(buffer) {
  for (let at = 0; at < buffer.length; at += 64 * 1024) yield buffer.subarray(at, at + 64 * 1024)
}

function numberOrNull(value) {
  if (value === undefined || value === null || value === '') return null
  const n = Number(value)
  return Number.isFinite(n) ? n : String(value)
}

export { tus }

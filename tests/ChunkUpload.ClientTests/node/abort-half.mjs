// Uploads in chunks and calls upload.abort() once half the file's bytes have been handed to the connection: in
// the middle of a PATCH when no chunk ends at the half (e.g. 5 MiB chunks of a 16 MiB file). The upload URL is
// remembered in a URL storage file under the file's fingerprint (path, size, mtime, endpoint), as tus-js-client
// does when storeFingerprintForResuming is on (its default).
//   node abort-half.mjs '{"endpoint": "...", "file": "...", "name": "...", "chunkSize": 5242880, "urlStorage": "/tmp/urls.json"}'
// Optional for every scenario: "protocol": "ietf-draft-03" | "ietf-draft-05" (tus-js-client's IETF modes, endpoint
// /rufh/) and "buffer": true (the file read into a Buffer, which those modes need; see lib/harness.mjs sourceOf).
import { stat } from 'node:fs/promises'
import { RecordingHttpStack, main, metadataOf, protocolOf, run, scenarioArguments, sourceOf, tus } from './lib/harness.mjs'

main(async () => {
  const args = scenarioArguments()
  const half = (await stat(args.file)).size / 2
  const control = {}
  let aborting = false
  const stack = new RecordingHttpStack((sent) => {
    if (!aborting && sent >= half) {
      aborting = true
      control.abort()
    }
  })
  const upload = new tus.Upload(sourceOf(args), {
    ...protocolOf(args),
    endpoint: args.endpoint,
    metadata: metadataOf(args),
    chunkSize: args.chunkSize,
    urlStorage: new tus.FileUrlStorage(args.urlStorage),
    storeFingerprintForResuming: true,
    httpStack: stack,
  })
  return run(upload, stack, control)
})

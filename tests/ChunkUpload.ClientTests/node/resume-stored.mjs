// A later run for the same file: finds the earlier upload in the URL storage by the file's fingerprint
// (findPreviousUploads), resumes it (resumeFromPreviousUpload: HEAD, then PATCH from the server's offset).
//   node resume-stored.mjs '{"endpoint": "...", "file": "...", "name": "...", "chunkSize": 5242880, "urlStorage": "/tmp/urls.json"}'
// Optional for every scenario: "protocol": "ietf-draft-03" | "ietf-draft-05" (tus-js-client's IETF modes, endpoint
// /rufh/) and "buffer": true (the file read into a Buffer, which those modes need; see lib/harness.mjs sourceOf).
import { RecordingHttpStack, main, metadataOf, protocolOf, run, scenarioArguments, sourceOf, tus } from './lib/harness.mjs'

main(async () => {
  const args = scenarioArguments()
  const stack = new RecordingHttpStack()
  const upload = new tus.Upload(sourceOf(args), {
    ...protocolOf(args),
    endpoint: args.endpoint,
    metadata: metadataOf(args),
    chunkSize: args.chunkSize,
    urlStorage: new tus.FileUrlStorage(args.urlStorage),
    httpStack: stack,
  })
  const previous = await upload.findPreviousUploads()
  if (previous.length === 0) return { outcome: 'nothing-to-resume', requests: [] }
  upload.resumeFromPreviousUpload(previous[0])
  const result = await run(upload, stack)
  return { ...result, resumedUrl: previous[0].uploadUrl, storedUploads: previous.length }
})

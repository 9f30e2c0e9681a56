// A later run for the same file: finds the earlier upload in the URL storage by the file's fingerprint
// (findPreviousUploads), resumes it (resumeFromPreviousUpload: HEAD, then PATCH from the server's offset).
//   node resume-stored.mjs '{"endpoint": "...", "file": "...", "name": "...", "chunkSize": 5242880, "urlStorage": "/tmp/urls.json"}'
import { RecordingHttpStack, fileSource, main, metadataOf, run, scenarioArguments, tus } from './lib/harness.mjs'

main(async () => {
  const args = scenarioArguments()
  const stack = new RecordingHttpStack()
  const upload = new tus.Upload(fileSource(args.file), {
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

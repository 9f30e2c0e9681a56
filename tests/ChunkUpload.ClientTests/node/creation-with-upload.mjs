// uploadDataDuringCreation: true: the creation POST carries the first chunk (creation-with-upload); the rest
// follows in PATCHes from the offset the POST's answer reports.
//   node creation-with-upload.mjs '{"endpoint": "...", "file": "...", "name": "...", "chunkSize": 4194304}'
import { RecordingHttpStack, fileSource, main, metadataOf, run, scenarioArguments, tus } from './lib/harness.mjs'

main(async () => {
  const args = scenarioArguments()
  const stack = new RecordingHttpStack()
  const upload = new tus.Upload(fileSource(args.file), {
    endpoint: args.endpoint,
    metadata: metadataOf(args),
    uploadDataDuringCreation: true,
    chunkSize: args.chunkSize,
    httpStack: stack,
  })
  return run(upload, stack)
})

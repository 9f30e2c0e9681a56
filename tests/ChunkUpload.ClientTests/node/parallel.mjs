// parallelUploads: 4: tus-js-client splits the file into 4 partial uploads (Upload-Concat: partial) sent at
// once, then POSTs the final upload (Upload-Concat: final;<url1> <url2> <url3> <url4>).
//   node parallel.mjs '{"endpoint": "...", "file": "...", "name": "..."}'
import { RecordingHttpStack, fileSource, main, metadataOf, run, scenarioArguments, tus } from './lib/harness.mjs'

main(async () => {
  const args = scenarioArguments()
  const stack = new RecordingHttpStack()
  const upload = new tus.Upload(fileSource(args.file), {
    endpoint: args.endpoint,
    metadata: metadataOf(args),
    parallelUploads: 4,
    httpStack: stack,
  })
  return run(upload, stack)
})

// A whole file with tus-js-client's defaults: chunkSize Infinity (one PATCH for the whole file), the default
// retryDelays [0, 1000, 3000, 5000]. Also the client of the connection-cut scenario, whose endpoint is a proxy
// that drops the connection mid-PATCH: the default retry then HEADs the upload and resumes from its offset.
//   node whole-file.mjs '{"endpoint": "http://127.0.0.1:5000/tus", "file": "/tmp/a.bin", "name": "a.bin"}'
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
    httpStack: stack,
  })
  return run(upload, stack)
})

// tus-js-client computes no checksum: onBeforeRequest adds Upload-Checksum (sha1 of the chunk the PATCH carries)
// to every PATCH. With "corruptAt" the PATCH at that offset carries a WRONG digest (the sha1 of other bytes); the
// server must answer 460 and keep nothing of that body. With "uploadUrl" (and no corruptAt) the upload is resumed
// from the server's offset with correct digests.
//   node checksum.mjs '{"endpoint": "...", "file": "...", "name": "...", "chunkSize": 1048576, "corruptAt": 2097152}'
//   node checksum.mjs '{"endpoint": "...", "file": "...", "name": "...", "chunkSize": 1048576, "uploadUrl": "..."}'
import { stat } from 'node:fs/promises'
import { RecordingHttpStack, fileSource, main, metadataOf, run, scenarioArguments, sha1Of, tus } from './lib/harness.mjs'

main(async () => {
  const args = scenarioArguments()
  const { size } = await stat(args.file)
  const stack = new RecordingHttpStack()
  const upload = new tus.Upload(fileSource(args.file), {
    endpoint: args.endpoint,
    uploadUrl: args.uploadUrl ?? null,
    metadata: metadataOf(args),
    chunkSize: args.chunkSize,
    httpStack: stack,
    onBeforeRequest: async (req) => {
      if (req.getMethod() !== 'PATCH') return
      const offset = Number(req.getHeader('Upload-Offset'))
      const end = Math.min(offset + args.chunkSize, size)
      // The wrong digest is that of as many bytes from the file's start: other bytes, as corruptAt > 0.
      const digest =
        offset === args.corruptAt
          ? await sha1Of(args.file, 0, end - offset)
          : await sha1Of(args.file, offset, end)
      req.setHeader('Upload-Checksum', `sha1 ${digest}`)
    },
  })
  return run(upload, stack)
})

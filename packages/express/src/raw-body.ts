import type { IncomingMessage, ServerResponse } from 'node:http'

const RAW_BODY = Symbol('tollgate.rawBody')

interface WithRawBody {
  [RAW_BODY]?: Buffer
}

/**
 * Pass as `verify` to `express.json()` (or `express.text()`, `express.raw()`) on
 * forward routes so the bytes the parser read are forwarded as they were:
 * `app.use(express.json({ verify: keepRawBody }))`.
 */
export function keepRawBody(req: IncomingMessage, _res: ServerResponse, buffer: Buffer): void {
  ;(req as WithRawBody)[RAW_BODY] = buffer
}

export function keptRawBody(req: IncomingMessage): Buffer | undefined {
  return (req as WithRawBody)[RAW_BODY]
}

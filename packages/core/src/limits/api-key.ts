import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { clientKeyFromIp } from './ip-key.js'

const BEARER = /^\s*bearer\s+(\S+)\s*$/i

/**
 * A `keyGenerator` that keys clients by their API key: `Authorization: Bearer …`, else
 * `x-api-key`. The key is hashed (SHA-256, first 128 bits as hex), so neither Redis nor a
 * memory counter ever holds the secret; a request without one is keyed by its IP.
 */
export function apiKeyKey(request: { headers: IncomingHttpHeaders; ip?: string | undefined }): string {
  const headers = request.headers
  let secret: string | undefined
  const authorization = headers.authorization
  if (typeof authorization === 'string') secret = BEARER.exec(authorization)?.[1]
  if (secret === undefined) {
    const header = headers['x-api-key']
    secret = Array.isArray(header) ? header[0] : header
  }
  if (secret === undefined || secret === '') return clientKeyFromIp(request.ip)
  return `key:${createHash('sha256').update(secret).digest('hex').slice(0, 32)}`
}

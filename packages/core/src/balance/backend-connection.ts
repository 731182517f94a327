import { describeValue, fail, failWith, isPlainObject } from '../validation.js'
import type { BackendConnection } from './types.js'

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// Set by the gateway itself for every request; a backend's own value would be overwritten or
// would break the framing.
const RESERVED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
])

/**
 * Checks a backend's `headers`, `modelNames` and `forwardAuthorization` and prepares them for
 * the request path; undefined when the backend has none of them. Header values are secrets: no
 * message ever shows one.
 */
export function validateBackendConnection(
  config: Record<string, unknown>,
  label: string,
): BackendConnection | undefined {
  const { headers, modelNames, forwardAuthorization } = config
  if (headers === undefined && modelNames === undefined && forwardAuthorization === undefined)
    return undefined
  const flat: string[] = []
  const replaced = new Set<string>()
  if (headers !== undefined) {
    if (!isPlainObject(headers))
      fail(`${label}.headers`, "an object like { authorization: 'Bearer …' }", headers)
    for (const [name, value] of Object.entries(headers)) {
      const lower = name.toLowerCase()
      if (!TOKEN.test(name))
        failWith(`${label}.headers`, `has ${describeValue(name)}, which is not a header name`)
      if (RESERVED.has(lower))
        failWith(`${label}.headers.${name}`, 'is set by the gateway for every request; leave it out')
      if (typeof value !== 'string')
        fail(
          `${label}.headers.${name}`,
          'a string (the value is sent as is)',
          typeof value === 'object' ? value : typeof value,
        )
      // The value is never shown: it is typically a credential.
      if (/[\r\n\0]/.test(value))
        failWith(`${label}.headers.${name}`, 'must not contain CR, LF or NUL (value not shown)')
      flat.push(lower, value)
      replaced.add(lower)
    }
  }
  if (forwardAuthorization !== undefined) {
    if (typeof forwardAuthorization !== 'boolean')
      fail(`${label}.forwardAuthorization`, 'true or false', forwardAuthorization)
    if (!forwardAuthorization) replaced.add('authorization')
    else if (replaced.has('authorization'))
      failWith(
        `${label}.forwardAuthorization`,
        'cannot be true when headers sets authorization: the backend would get two',
      )
  }
  let names: Map<string, string> | null = null
  if (modelNames !== undefined) {
    if (!isPlainObject(modelNames))
      fail(`${label}.modelNames`, "an object like { 'gpt-4o': 'gpt-4o-2024-08-06' }", modelNames)
    names = new Map()
    for (const [alias, name] of Object.entries(modelNames)) {
      if (typeof name !== 'string' || name.trim() === '')
        fail(`${label}.modelNames.${alias}`, 'the non-empty model name this backend expects', name)
      names.set(alias, name)
    }
    if (names.size === 0) names = null
  }
  return { headers: flat, replaced, modelNames: names }
}

/** The forwarded headers with this backend's own: client headers of the same names left out. */
export function headersFor(connection: BackendConnection, headers: readonly string[]): string[] {
  const replaced = connection.replaced
  const out: string[] = []
  for (let i = 0; i < headers.length; i += 2) {
    if (!replaced.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!)
  }
  for (const value of connection.headers) out.push(value)
  return out
}

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

/** What the gateway tells the backend about the original request (X-Forwarded-*). */
export interface ForwardedInfo {
  /** The client's address as the framework sees it (trust-proxy already applied). */
  clientIp: string
  /** `http` or `https`, as the client used it. */
  protocol: string
  /** The host the client asked for; omitted when unknown. */
  host: string | undefined
  /**
   * The app sits behind a proxy it trusts: keep the incoming `X-Forwarded-For` chain and append
   * the address of the peer that connected to us (`peerIp`). Otherwise the incoming chain is
   * client-written and is replaced by `clientIp` alone.
   */
  trustProxy: boolean
  /** The socket's remote address, appended to a trusted chain. */
  peerIp: string
}

/** A value the gateway would put in a header contains CR, LF or NUL. */
export class InvalidHeaderValueError extends Error {
  override readonly name = 'InvalidHeaderValueError'
  constructor(readonly header: string) {
    super(`refusing to forward a ${header} value containing CR, LF or NUL`)
  }
}

/** CR, LF and NUL would let a value start a new header line (or truncate it) on the wire. */
export function isSafeHeaderValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code === 13 || code === 10 || code === 0) return false
  }
  return true
}

/** Lower-cased tokens of a `Connection` value: the headers it names are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionTokens(value: string, into: string[]): void {
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase()
    if (name !== '') into.push(name)
  }
}

function hasTrailersToken(te: string): boolean {
  for (const token of te.split(',')) {
    const semicolon = token.indexOf(';')
    if ((semicolon === -1 ? token : token.slice(0, semicolon)).trim().toLowerCase() === 'trailers')
      return true
  }
  return false
}

/**
 * The request headers for the backend, as a flat `[name, value, …]` list (undici's cheapest input
 * shape, and it keeps repeated headers and their case as the client sent them).
 *
 * Dropped: `Connection` and every header it names, `Keep-Alive`, `Transfer-Encoding`, `Upgrade`,
 * `Proxy-*`, `TE` (re-added as `trailers` when the client offered it), `Host` (undici writes the
 * backend's), `Expect` (Node already answered the 100-continue), HTTP/2 pseudo-headers, the
 * client's `X-Forwarded-Proto/-Host`, and `X-Forwarded-For`/`Forwarded` unless the proxy is trusted.
 * `Content-Length` is dropped when `keepContentLength` is false (a buffered body: undici sets it).
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  forwarded: ForwardedInfo,
  keepContentLength: boolean,
): string[] {
  const out: string[] = []
  let listed: string[] | undefined
  let incomingChain: string | undefined
  let teTrailers = false
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const value = rawHeaders[i + 1]!
    const lower = name.toLowerCase()
    switch (lower) {
      case 'connection':
        listed ??= []
        connectionTokens(value, listed)
        continue
      case 'keep-alive':
      case 'transfer-encoding':
      case 'upgrade':
      case 'host':
      case 'expect':
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        continue
      case 'te':
        if (hasTrailersToken(value)) teTrailers = true
        continue
      case 'content-length':
        if (!keepContentLength) continue
        break
      case 'x-forwarded-for':
        if (forwarded.trustProxy)
          incomingChain = incomingChain === undefined ? value : `${incomingChain}, ${value}`
        continue
      case 'forwarded':
        if (!forwarded.trustProxy) continue
        break
    }
    if (lower.startsWith('proxy-') || lower.charCodeAt(0) === 58 /* ':' */) continue
    out.push(name, value)
  }

  let headers = out
  if (listed !== undefined && listed.length > 0) {
    headers = []
    for (let i = 0; i < out.length; i += 2) {
      if (!listed.includes(out[i]!.toLowerCase())) headers.push(out[i]!, out[i + 1]!)
    }
  }
  if (teTrailers) headers.push('te', 'trailers')

  const forwardedFor =
    incomingChain !== undefined && forwarded.trustProxy
      ? `${incomingChain}, ${forwarded.peerIp}`
      : forwarded.clientIp
  pushChecked(headers, 'x-forwarded-for', forwardedFor)
  pushChecked(headers, 'x-forwarded-proto', forwarded.protocol)
  if (forwarded.host !== undefined && forwarded.host !== '') {
    pushChecked(headers, 'x-forwarded-host', forwarded.host)
  }
  return headers
}

function pushChecked(headers: string[], name: string, value: string): void {
  if (!isSafeHeaderValue(value)) throw new InvalidHeaderValueError(name)
  headers.push(name, value)
}

/**
 * The backend's response headers minus the hop-by-hop ones, ready for `res.writeHead`. The object
 * form keeps repeated headers (`set-cookie` arrays) even when the app already set headers on `res`.
 * `Trailer` goes too: trailers are not passed on.
 */
export function downstreamResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  let listed: string[] | undefined
  // Typed as a string, but a repeated header arrives as an array.
  const connection = headers.connection as string | string[] | undefined
  if (connection !== undefined) {
    listed = []
    connectionTokens(typeof connection === 'string' ? connection : connection.join(','), listed)
  }
  for (const name in headers) {
    switch (name) {
      case 'connection':
      case 'keep-alive':
      case 'transfer-encoding':
      case 'upgrade':
      case 'te':
      case 'trailer':
        continue
    }
    if (name.startsWith('proxy-')) continue
    if (listed?.includes(name)) continue
    const value = headers[name]
    if (value !== undefined) out[name] = value
  }
  return out
}

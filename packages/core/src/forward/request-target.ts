import { checkKnownKeys, fail, isPlainObject } from '../validation.js'

/**
 * How an adapter changes the forwarded path: a function of the origin-form path (query included),
 * or a prefix to strip (and optionally one to put in its place).
 */
export type PathRewrite = ((path: string) => string) | { stripPrefix: string; addPrefix?: string }

const SLASH = 47
const BACKSLASH = 92
const DOT = 46
const PERCENT = 37
const QUESTION = 63

function isPercentEncoded(path: string, at: number, hexHigh: string, hexLow: string): boolean {
  return path.charCodeAt(at) === PERCENT && path[at + 1] === hexHigh && path[at + 2]?.toLowerCase() === hexLow
}

/**
 * The origin-form target (`/path?query`) to append to the backend's base path, or null when the
 * target must be refused.
 *
 * Whatever the client wrote, the result is only ever a path on the chosen backend: the gateway
 * dispatches to the backend's origin, so an absolute-form target (`http://evil/x`) loses its
 * authority (RFC 9112 §3.2.2: an origin server ignores it too) and leading slashes collapse
 * (`//evil/x` → `/evil/x`).
 *
 * Dot segments (`.`, `..`, also as `%2e`, and with `\`, `%2f`, `%5c` counted as separators) are
 * refused rather than resolved: no client library sends them, and resolving here while a backend
 * decodes differently is how a base path gets escaped. Control bytes, spaces and `#` are refused.
 */
export function toOriginForm(target: string): string | null {
  let start = 0
  const first = target.charCodeAt(0)
  if (first !== SLASH) {
    // absolute-form: keep only what follows the authority.
    const scheme = target.slice(0, 8).toLowerCase()
    let authorityAt: number
    if (scheme.startsWith('http://')) authorityAt = 7
    else if (scheme === 'https://') authorityAt = 8
    else return null
    let pathAt = authorityAt
    while (pathAt < target.length) {
      const code = target.charCodeAt(pathAt)
      if (code === SLASH || code === QUESTION) break
      pathAt++
    }
    if (pathAt === target.length) return '/'
    if (target.charCodeAt(pathAt) === QUESTION) return validate(`/${target.slice(pathAt)}`, 0)
    start = pathAt
  }
  while (target.charCodeAt(start + 1) === SLASH) start++
  return validate(target, start)
}

/** Scans `target` from `start` once: refuses dot segments and unsafe bytes, returns the slice. */
function validate(target: string, start: number): string | null {
  let inQuery = false
  // Dots seen in the current segment, or -1 once it holds anything else.
  let dots = 0
  for (let i = start; i < target.length; i++) {
    const code = target.charCodeAt(i)
    if (code <= 32 || code === 127 || code === 35 /* # */) return null
    if (inQuery) continue
    if (code === QUESTION) {
      if (dots === 1 || dots === 2) return null
      inQuery = true
      continue
    }
    if (code === SLASH || code === BACKSLASH) {
      if (dots === 1 || dots === 2) return null
      dots = 0
    } else if (code === DOT) {
      if (dots >= 0) dots++
    } else if (code === PERCENT && isPercentEncoded(target, i, '2', 'e')) {
      if (dots >= 0) dots++
      i += 2
    } else if (
      code === PERCENT &&
      (isPercentEncoded(target, i, '2', 'f') || isPercentEncoded(target, i, '5', 'c'))
    ) {
      if (dots === 1 || dots === 2) return null
      dots = 0
      i += 2
    } else {
      dots = -1
    }
  }
  if (!inQuery && (dots === 1 || dots === 2)) return null
  return start === 0 ? target : target.slice(start)
}

/**
 * Turns a `PathRewrite` into a function, validating it once, at creation. The function's output
 * is checked like a client target: a rewrite can change the path, never the destination.
 */
export function compilePathRewrite(rewrite: PathRewrite, option = 'rewrite'): (path: string) => string {
  if (typeof rewrite === 'function') return rewrite
  if (!isPlainObject(rewrite) || typeof rewrite.stripPrefix !== 'string') {
    fail(option, "a function or { stripPrefix: '/prefix', addPrefix?: '/other' }", rewrite)
  }
  checkKnownKeys(option, rewrite, ['stripPrefix', 'addPrefix'])
  const { stripPrefix, addPrefix = '' } = rewrite
  if (!stripPrefix.startsWith('/') || stripPrefix.endsWith('/')) {
    fail(
      `${option}.stripPrefix`,
      "a path starting with '/' and not ending with one (e.g. '/gateway')",
      stripPrefix,
    )
  }
  if (
    typeof addPrefix !== 'string' ||
    (addPrefix !== '' && (!addPrefix.startsWith('/') || addPrefix.endsWith('/')))
  ) {
    fail(`${option}.addPrefix`, "a path starting with '/' and not ending with one (e.g. '/v1')", addPrefix)
  }
  return (path) => {
    if (!path.startsWith(stripPrefix)) return path
    const rest = path.slice(stripPrefix.length)
    const next = rest.charCodeAt(0)
    // '/gateway' must not strip '/gatewayfoo'.
    if (rest === '' || next === QUESTION) return addPrefix === '' ? `/${rest}` : addPrefix + rest
    if (next !== SLASH) return path
    return addPrefix + rest
  }
}

/** Applies the rewrite, then re-checks: null when the rewritten path is not a safe origin-form target. */
export function rewriteTarget(path: string, rewrite: (path: string) => string): string | null {
  const rewritten = rewrite(path)
  if (typeof rewritten !== 'string' || rewritten.charCodeAt(0) !== SLASH) return null
  return toOriginForm(rewritten)
}

/** The path sent to the backend: its base path (`url.pathname`) joined with the origin-form target. */
export function backendPath(basePath: string, target: string): string {
  if (basePath === '/' || basePath === '') return target
  return basePath.charCodeAt(basePath.length - 1) === SLASH ? basePath + target.slice(1) : basePath + target
}

/**
 * Startup checks for every option of every package, in one place and one format:
 *
 *   tollgate: option "backends[1].url" must be an http: or https: URL; got "ftp://x"
 *
 * Messages name the option as the user wrote it, say what would be accepted, and describe the bad
 * value without ever serialising an object: an option object may hold a Redis client, a password
 * or a provider key, and an error message ends up in logs.
 */

export class OptionError extends TypeError {
  override readonly name = 'OptionError'
}

const MAX_SHOWN_CHARS = 80

function cut(text: string): string {
  return text.length > MAX_SHOWN_CHARS
    ? `${text.slice(0, MAX_SHOWN_CHARS)}… (${text.length} characters)`
    : text
}

function clientKind(value: object): string | undefined {
  const v = value as Record<string, unknown>
  const ctor = (value as { constructor?: { name?: unknown } }).constructor?.name
  if (typeof v.evalsha === 'function' && typeof v.defineCommand === 'function') {
    return ctor === 'Cluster' ? 'an ioredis Cluster client' : 'an ioredis client'
  }
  if (typeof v.sendCommand === 'function' && 'isOpen' in v) return 'a node-redis client'
  return undefined
}

/**
 * The bad value, safe to print: primitives as written in code (strings cut), everything else by
 * its kind only — `an object with keys host, port`, `an ioredis client`, `a Map`.
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return cut(JSON.stringify(value))
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value)
    case 'bigint':
      return `${value}n`
    case 'symbol':
      return value.toString()
    case 'function':
      return 'a function'
  }
  if (value === null || value === undefined) return 'null'
  if (Array.isArray(value)) {
    if (value.length <= 8 && value.every((item) => item === null || typeof item !== 'object')) {
      return cut(
        `[${value.map((item) => (typeof item === 'function' ? 'a function' : describeValue(item))).join(', ')}]`,
      )
    }
    return `an array of ${value.length} items`
  }
  if (value instanceof URL) {
    const copy = new URL(value.href)
    if (copy.password) copy.password = '***'
    return cut(`URL ${JSON.stringify(copy.href)}`)
  }
  if (value instanceof RegExp) return cut(String(value))
  const client = clientKind(value)
  if (client !== undefined) return client
  const proto = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) {
    const keys = Object.keys(value)
    return keys.length === 0 ? 'an empty object' : cut(`an object with keys ${keys.join(', ')}`)
  }
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name
  if (typeof name === 'string' && name !== '') return /^[AEIOU]/.test(name) ? `an ${name}` : `a ${name}`
  return 'an object'
}

export function fail(option: string, expected: string, value: unknown): never {
  throw new OptionError(`tollgate: option "${option}" must be ${expected}; got ${describeValue(value)}`)
}

/** For a rule that is not about one value's type (a duplicate id, an impossible combination). */
export function failWith(option: string, message: string): never {
  throw new OptionError(`tollgate: option "${option}" ${message}`)
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

export function checkObject(option: string, value: unknown): asserts value is Record<string, unknown> {
  if (!isPlainObject(value)) fail(option, 'an object', value)
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/** The known name a misspelt one was probably meant to be, if any is close. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase()
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1
  for (const candidate of known) {
    const distance = candidate.toLowerCase() === lower ? 0 : editDistance(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

/** Rejects keys an options object does not know: a misspelt key would leave a default silently in place. */
export function checkKnownKeys(option: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue
    const guess = closestName(key, known)
    const name = option ? `${option}.${key}` : key
    throw new OptionError(
      `tollgate: unknown option "${name}"${guess ? `; did you mean "${guess}"?` : ''} Known options are ${known.join(', ')}`,
    )
  }
}

/** An options group (`health`, `queue`, …): left out, `false` where allowed, or a plain object of known keys. */
export function checkOptionGroup(
  option: string,
  value: unknown,
  known: readonly string[],
  orFalse = false,
): void {
  if (value === undefined || (orFalse && value === false)) return
  if (!isPlainObject(value)) {
    fail(option, `an object${orFalse ? ' or false' : ''} with any of ${known.join(', ')}`, value)
  }
  checkKnownKeys(option, value, known)
}

export function checkOptionalFunction(option: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') fail(option, 'a function', value)
}

export function checkOptionalString(option: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'string') fail(option, 'a string', value)
}

export function checkCost(option: string, value: unknown): void {
  if (value === undefined || typeof value === 'function') return
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(option, 'a whole number >= 0 or a function of the request', value)
  }
}

export function checkOneOf<T>(option: string, value: unknown, allowed: readonly T[]): asserts value is T {
  if (!allowed.includes(value as T)) {
    fail(option, `one of ${allowed.map((item) => describeValue(item)).join(', ')}`, value)
  }
}

export interface NumberRule {
  integer?: boolean
  min: number
  minExclusive?: boolean
  /** Accept `Infinity` as "no limit". */
  infinity?: boolean
}

/** A numeric option: its value, or `fallback` when left out. */
export function checkNumber(option: string, value: unknown, fallback: number, rule: NumberRule): number {
  if (value === undefined) return fallback
  if (rule.infinity && value === Number.POSITIVE_INFINITY) return value
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (rule.integer ? Number.isSafeInteger(value) : true) &&
    (rule.minExclusive ? value > rule.min : value >= rule.min)
  if (!ok) {
    const kind = rule.integer ? 'an integer' : 'a number'
    const bound = rule.minExclusive ? `greater than ${rule.min}` : `at least ${rule.min}`
    const infinity = rule.infinity ? ' or Infinity' : ''
    fail(option, `${kind} ${bound}${infinity} (default ${fallback})`, value)
  }
  return value as number
}

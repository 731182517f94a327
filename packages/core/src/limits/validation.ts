/**
 * Startup checks for options. Every message names the option, quotes the value
 * it got and says what would be accepted, so a typo fails loudly at `register`.
 */

export class OptionError extends TypeError {
  override readonly name = 'OptionError'
}

export function show(value: unknown): string {
  if (typeof value === 'function') return `a function`
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'bigint') return `${value}n`
  // JSON would print NaN and Infinity as null, quoting a value the user never wrote.
  if (typeof value === 'number') return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

export function fail(option: string, expected: string, value: unknown): never {
  throw new OptionError(`tollgate: option "${option}" must be ${expected}; got ${show(value)}`)
}

export function checkObject(option: string, value: unknown): asserts value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(option, 'an object', value)
}

export function checkKnownKeys(
  option: string,
  value: Record<string, unknown>,
  known: readonly string[],
): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new OptionError(
        `tollgate: unknown option "${option ? `${option}.` : ''}${key}"; known options are ${known.join(', ')}`,
      )
    }
  }
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
  if (!allowed.includes(value as T)) fail(option, `one of ${allowed.map(show).join(', ')}`, value)
}

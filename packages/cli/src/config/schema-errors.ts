import type { ErrorObject } from 'ajv'
import { type ConfigPath, type ConfigSource, formatPath } from './source.js'

function pathOf(instancePath: string): (string | number)[] {
  if (instancePath === '') return []
  return instancePath
    .slice(1)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part))
}

/** A value from the file, safe to print: scalars as written, anything else by its kind. */
export function describeScalar(value: unknown): string {
  // A URL may carry a password (redis://:secret@host): never show what sits before its `@`.
  if (typeof value === 'string') value = value.replace(/\/\/[^/@\s]*@/g, '//***@')
  if (typeof value === 'string')
    return value.length > 80 ? `${JSON.stringify(value.slice(0, 80))}…` : JSON.stringify(value)
  if (value === null || typeof value !== 'object') return String(value)
  if (Array.isArray(value)) return `a list of ${value.length} items`
  return 'a mapping'
}

function article(type: string): string {
  return type === 'object'
    ? 'a mapping'
    : type === 'array'
      ? 'a list'
      : type === 'integer'
        ? 'an integer'
        : `a ${type}`
}

function expectation(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>
  const description = (error.parentSchema as { description?: string } | undefined)?.description
  switch (error.keyword) {
    case 'type':
      return `must be ${article(String(params.type))}`
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map(describeScalar).join(', ')}`
    case 'const':
      return `must be ${describeScalar(params.allowedValue)}`
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
      return `must be ${params.comparison} ${params.limit}`
    case 'minItems':
    case 'minLength':
      return 'must not be empty'
    default:
      return `must be ${description ?? error.message ?? 'valid'}`
  }
}

function closest(name: string, known: string[]): string | undefined {
  const lower = name.toLowerCase()
  return (
    known.find((k) => k.toLowerCase() === lower) ??
    known.find((k) => k.toLowerCase().startsWith(lower.slice(0, 3)))
  )
}

/**
 * ajv's errors as `file:line:col: backends[1].url must be …; got …`. Within an `anyOf` only the
 * `anyOf` itself is reported (its description says what would do), not each branch that failed.
 */
export function schemaProblems(
  errors: readonly ErrorObject[],
  source: ConfigSource,
  value: unknown,
): string[] {
  const branches = errors
    .filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf')
    .map((e) => `${e.schemaPath}/`)
  const problems: string[] = []
  for (const error of errors) {
    if (error.keyword === 'if') continue
    if (branches.some((branch) => error.schemaPath.startsWith(branch))) continue
    const path = pathOf(error.instancePath)
    const params = error.params as Record<string, string>
    if (error.keyword === 'additionalProperties') {
      const key = params.additionalProperty as string
      const known = Object.keys((error.parentSchema as { properties?: object }).properties ?? {})
      const guess = closest(key, known)
      const full: ConfigPath = [...path, key]
      problems.push(
        source.atPath(
          full,
          `unknown key "${formatPath(full)}"${guess ? `; did you mean "${guess}"? Known` : '; known'} keys are ${known.join(', ')}`,
          { key: true },
        ),
      )
      continue
    }
    if (error.keyword === 'required') {
      const full = [...path, params.missingProperty as string]
      problems.push(source.atPath(path, `${formatPath(full)} is required`))
      continue
    }
    const name = formatPath(path) || 'the file'
    const got = source.fromEnvironment(path) ? '' : `; got ${describeScalar(valueAt(value, path))}`
    problems.push(source.atPath(path, `${name} ${expectation(error)}${got}`))
  }
  return [...new Set(problems)]
}

export function valueAt(value: unknown, path: ConfigPath): unknown {
  let current = value
  for (const part of path) current = (current as Record<string | number, unknown> | undefined)?.[part]
  return current
}

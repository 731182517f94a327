import { closestName } from '@tollgate/core/internal'
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
      return `must be ${description ?? article(String(params.type))}`
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

/** One problem of the file: where it is (for pruning it, see check-all.ts) and what to print. */
export interface Finding {
  path: ConfigPath
  text: string
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
  return [...new Set(schemaFindings(errors, source, value).map((f) => f.text))]
}

export function schemaFindings(
  errors: readonly ErrorObject[],
  source: ConfigSource,
  value: unknown,
): Finding[] {
  const alternatives = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf')
  const branchesOf = (alt: ErrorObject) =>
    errors.filter((e) => e.keyword !== 'if' && e.schemaPath.startsWith(`${alt.schemaPath}/`))
  // A value that has the shape of one alternative but fails inside it ({ url, onError: alow }):
  // those inner errors say more than "must be a URL or { url, … }".
  const inner = new Set<ErrorObject>()
  const replaced = new Set<ErrorObject>()
  for (const alt of alternatives) {
    const deeper = branchesOf(alt).filter((e) => e.instancePath.length > alt.instancePath.length)
    if (deeper.length === 0) continue
    replaced.add(alt)
    for (const e of deeper) inner.add(e)
  }
  const problems: Finding[] = []
  const push = (path: ConfigPath, text: string) => problems.push({ path, text })
  for (const error of errors) {
    if (error.keyword === 'if' || replaced.has(error)) continue
    if (!inner.has(error) && alternatives.some((alt) => error.schemaPath.startsWith(`${alt.schemaPath}/`)))
      continue
    const path = pathOf(error.instancePath)
    const params = error.params as Record<string, string>
    if (error.keyword === 'additionalProperties') {
      const key = params.additionalProperty as string
      const known = Object.keys((error.parentSchema as { properties?: object }).properties ?? {})
      const guess = closestName(key, known)
      const full: ConfigPath = [...path, key]
      push(
        full,
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
      push(path, source.atPath(path, `${formatPath(full)} is required`))
      continue
    }
    const name = formatPath(path) || 'the file'
    const hidden = source.fromEnvironment(path)
    const got = hidden ? '' : `; got ${describeScalar(valueAt(value, path))}`
    const guess = hidden
      ? ''
      : guessFor(error, alternatives.includes(error) ? branchesOf(error) : [error], value, path)
    push(path, source.atPath(path, `${name} ${expectation(error)}${got}${guess}`))
  }
  return problems
}

/** `; did you mean "POST"?` for a value close to one an enum allows. */
function guessFor(
  error: ErrorObject,
  enums: readonly ErrorObject[],
  value: unknown,
  path: ConfigPath,
): string {
  const written = valueAt(value, path)
  if (typeof written !== 'string') return ''
  const allowed = enums
    .filter((e) => e.keyword === 'enum' && e.instancePath === error.instancePath)
    .flatMap((e) => (e.params as { allowedValues?: unknown[] }).allowedValues ?? [])
    .filter((v): v is string => typeof v === 'string')
  const guess = closestName(written, allowed)
  return guess === undefined || guess === written ? '' : `; did you mean "${guess}"?`
}

export function valueAt(value: unknown, path: ConfigPath): unknown {
  let current = value
  for (const part of path) current = (current as Record<string | number, unknown> | undefined)?.[part]
  return current
}

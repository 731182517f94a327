import { inspect } from 'node:util'
import type { BackendConfig } from './types.js'

/** A backend's configuration after validation: every default filled in, the URL parsed. */
export interface ValidatedBackendConfig {
  id: string
  /** Pathname is `/` or a base path without a trailing slash, so the forwarder can prefix it. */
  url: URL
  weight: number
  models: string[] | null
  zone: string | null
  maxConcurrency: number | null
}

const backendKeys = ['url', 'id', 'weight', 'models', 'zone', 'maxConcurrency'] as const

/** Quotes a bad value the way it would be written in code. */
export function quote(value: unknown): string {
  return inspect(value, { depth: 2, breakLength: Number.POSITIVE_INFINITY, maxStringLength: 200 })
}

function redactCredentials(url: URL): string {
  const copy = new URL(url.href)
  if (copy.password) copy.password = '***'
  return copy.href
}

function parseBackendUrl(value: unknown, label: string): URL {
  const example = "like 'http://10.0.0.5:8000' or 'https://models.internal/v1'"
  if (!(typeof value === 'string' || value instanceof URL)) {
    throw new TypeError(`${label}.url must be an http: or https: URL ${example}, got ${quote(value)}`)
  }
  let url: URL
  try {
    url = new URL(String(value))
  } catch {
    throw new TypeError(
      `${label}.url must be an absolute http: or https: URL ${example}, got ${quote(value)}`,
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`${label}.url must use http: or https: ${example}, got ${quote(String(value))}`)
  }
  if (url.username || url.password) {
    // A password in the URL ends up in snapshots and logs; headers are the place for it.
    throw new TypeError(
      `${label}.url must not contain credentials; send them as a header instead, got ${quote(redactCredentials(url))}`,
    )
  }
  if (url.search || url.hash || String(value).includes('?') || String(value).includes('#')) {
    throw new TypeError(
      `${label}.url must be an origin with an optional base path, without query or fragment, ` +
        `e.g. ${quote(url.origin + url.pathname)}, got ${quote(String(value))}`,
    )
  }
  if (url.pathname.length > 1 && url.pathname.endsWith('/')) {
    url.pathname = url.pathname.replace(/\/+$/, '') || '/'
  }
  return url
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.trim().length > 0
}

/**
 * Validates one backend at registration. `label` names it in messages, e.g. `backends[1]`,
 * so the message points at the line the user has to change.
 */
export function validateBackendConfig(config: unknown, label = 'backend'): ValidatedBackendConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new TypeError(
      `${label} must be an object like { url: 'http://10.0.0.5:8000' }, got ${quote(config)}`,
    )
  }
  const c = config as Record<string, unknown>
  for (const key of Object.keys(c)) {
    if (!(backendKeys as readonly string[]).includes(key)) {
      throw new TypeError(
        `${label} has an unknown option ${quote(key)}; valid options are ${backendKeys.join(', ')}`,
      )
    }
  }
  const url = parseBackendUrl(c.url, label)

  let id: string
  if (c.id === undefined) {
    id = url.pathname === '/' ? url.origin : url.origin + url.pathname
  } else if (nonEmptyString(c.id)) {
    id = c.id
  } else {
    throw new TypeError(
      `${label}.id must be a non-empty string or left out to default to the URL, got ${quote(c.id)}`,
    )
  }

  let weight = 1
  if (c.weight !== undefined) {
    if (typeof c.weight !== 'number' || !Number.isFinite(c.weight) || c.weight <= 0) {
      throw new TypeError(`${label}.weight must be a positive number (default 1), got ${quote(c.weight)}`)
    }
    weight = c.weight
  }

  let models: string[] | null = null
  if (c.models !== undefined) {
    if (!Array.isArray(c.models) || c.models.length === 0) {
      throw new TypeError(
        `${label}.models must be a non-empty array of model names like ['llama-3-8b'], ` +
          `or left out to serve any model, got ${quote(c.models)}`,
      )
    }
    for (const [i, model] of c.models.entries()) {
      if (!nonEmptyString(model)) {
        throw new TypeError(`${label}.models[${i}] must be a non-empty model name, got ${quote(model)}`)
      }
    }
    models = [...new Set(c.models as string[])]
  }

  let zone: string | null = null
  if (c.zone !== undefined) {
    if (!nonEmptyString(c.zone)) {
      throw new TypeError(`${label}.zone must be a non-empty string or left out, got ${quote(c.zone)}`)
    }
    zone = c.zone
  }

  let maxConcurrency: number | null = null
  if (c.maxConcurrency !== undefined) {
    if (!Number.isSafeInteger(c.maxConcurrency) || (c.maxConcurrency as number) < 1) {
      throw new TypeError(
        `${label}.maxConcurrency must be a positive integer or left out for no limit, got ${quote(c.maxConcurrency)}`,
      )
    }
    maxConcurrency = c.maxConcurrency as number
  }

  return { id, url, weight, models, zone, maxConcurrency }
}

/** Validates a list of backends, rejecting duplicate ids with both positions named. */
export function validateBackendConfigs(configs: unknown, label = 'backends'): ValidatedBackendConfig[] {
  if (!Array.isArray(configs)) {
    throw new TypeError(
      `${label} must be an array like [{ url: 'http://10.0.0.5:8000' }, { url: 'http://10.0.0.6:8000' }], got ${quote(configs)}`,
    )
  }
  const seen = new Map<string, number>()
  return configs.map((config: BackendConfig, i) => {
    const validated = validateBackendConfig(config, `${label}[${i}]`)
    const previous = seen.get(validated.id)
    if (previous !== undefined) {
      throw new TypeError(
        `${label}[${i}].id ${quote(validated.id)} is already used by ${label}[${previous}]; give each backend a distinct id`,
      )
    }
    seen.set(validated.id, i)
    return validated
  })
}

/** Shared check for numeric options of the balancer and its health pieces. */
export function checkNumber(
  value: unknown,
  name: string,
  fallback: number,
  rule: { integer?: boolean; min: number; minExclusive?: boolean },
): number {
  if (value === undefined) return fallback
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (rule.integer ? Number.isSafeInteger(value) : true) &&
    (rule.minExclusive ? value > rule.min : value >= rule.min)
  if (!ok) {
    const kind = rule.integer ? 'an integer' : 'a number'
    const bound = rule.minExclusive ? `greater than ${rule.min}` : `at least ${rule.min}`
    throw new TypeError(`${name} must be ${kind} ${bound} (default ${fallback}), got ${quote(value)}`)
  }
  return value
}

/**
 * An options group (`health`, `queue`, …) is left out or a plain object with known keys only: a
 * misspelt key would otherwise leave its default silently in place.
 */
export function checkOptionObject(
  value: unknown,
  name: string,
  known: readonly string[],
  orFalse = false,
): void {
  if (value === undefined || (orFalse && value === false)) return
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(
      `${name} must be an object${orFalse ? ' or false' : ''} with any of ${known.join(', ')}, got ${quote(value)}`,
    )
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `${name} has an unknown option ${quote(key)}; valid options are ${known.join(', ')}`,
      )
    }
  }
}

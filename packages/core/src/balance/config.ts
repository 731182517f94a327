import { optionNames } from '../option-names.js'
import {
  checkKnownKeys,
  checkOptionGroup,
  describeValue,
  fail,
  failWith,
  isPlainObject,
} from '../validation.js'
import { validateBackendConnection } from './backend-connection.js'
import { METRICS_FORMATS, type MetricsFormat } from './load-reports/engines.js'
import type { BackendConfig, BackendConnection } from './types.js'

/** Where and in which engine's names a backend reports its load. */
export interface BackendMetrics {
  format: MetricsFormat
  /** Path on the backend's origin (not under its base path: engines serve `/metrics` at the root). */
  path: string
}

/** A backend's configuration after validation: every default filled in, the URL parsed. */
export interface ValidatedBackendConfig {
  id: string
  /** Pathname is `/` or a base path without a trailing slash, so the forwarder can prefix it. */
  url: URL
  weight: number
  models: string[] | null
  zone: string | null
  maxConcurrency: number | null
  metrics: BackendMetrics | null
  connection: BackendConnection | undefined
  keepAliveAfterStreams: boolean
}

const BACKEND_KEYS = optionNames<BackendConfig>()([
  'url',
  'id',
  'weight',
  'models',
  'zone',
  'maxConcurrency',
  'metrics',
  'headers',
  'modelNames',
  'forwardAuthorization',
  'keepAliveAfterStreams',
])
const METRICS_KEYS = ['format', 'path']
const METRICS_EXAMPLE = `one of ${METRICS_FORMATS.map((f) => describeValue(f)).join(', ')}, or { format, path }`

function parseMetrics(value: unknown, label: string): BackendMetrics | null {
  const option = `${label}.metrics`
  if (value === undefined) return null
  if (typeof value === 'string') {
    if (!(METRICS_FORMATS as readonly string[]).includes(value)) fail(option, METRICS_EXAMPLE, value)
    return { format: value as MetricsFormat, path: '/metrics' }
  }
  if (!isPlainObject(value)) fail(option, METRICS_EXAMPLE, value)
  checkKnownKeys(option, value, METRICS_KEYS)
  if (!(METRICS_FORMATS as readonly unknown[]).includes(value.format))
    fail(
      `${option}.format`,
      `one of ${METRICS_FORMATS.map((f) => describeValue(f)).join(', ')}`,
      value.format,
    )
  let path = '/metrics'
  if (value.path !== undefined) {
    if (typeof value.path !== 'string' || !value.path.startsWith('/') || /[?#\s]/.test(value.path))
      fail(`${option}.path`, "a path on the backend's origin like '/metrics'", value.path)
    path = value.path
  }
  return { format: value.format as MetricsFormat, path }
}

const URL_EXAMPLE = "like 'http://10.0.0.5:8000' or 'https://models.internal/v1'"

function redactCredentials(url: URL): string {
  const copy = new URL(url.href)
  if (copy.password) copy.password = '***'
  return copy.href
}

function parseBackendUrl(value: unknown, label: string): URL {
  const option = `${label}.url`
  if (!(typeof value === 'string' || value instanceof URL))
    fail(option, `an http: or https: URL ${URL_EXAMPLE}`, value)
  let url: URL
  try {
    url = new URL(String(value))
  } catch {
    return fail(option, `an absolute http: or https: URL ${URL_EXAMPLE}`, value)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    fail(option, `an http: or https: URL ${URL_EXAMPLE}`, String(value))
  }
  if (url.username || url.password) {
    // A password in the URL ends up in snapshots and logs; headers are the place for it.
    fail(option, 'a URL without credentials (send them as a header instead)', redactCredentials(url))
  }
  if (url.search || url.hash || String(value).includes('?') || String(value).includes('#')) {
    fail(
      option,
      `an origin with an optional base path, without query or fragment, e.g. ${describeValue(url.origin + url.pathname)}`,
      String(value),
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
  if (!isPlainObject(config)) fail(label, "an object like { url: 'http://10.0.0.5:8000' }", config)
  checkKnownKeys(label, config, BACKEND_KEYS)
  const c = config
  const url = parseBackendUrl(c.url, label)

  let id: string
  if (c.id === undefined) id = url.pathname === '/' ? url.origin : url.origin + url.pathname
  else if (nonEmptyString(c.id)) id = c.id
  else fail(`${label}.id`, 'a non-empty string, or left out to default to the URL', c.id)

  let weight = 1
  if (c.weight !== undefined) {
    if (typeof c.weight !== 'number' || !Number.isFinite(c.weight) || c.weight <= 0) {
      fail(`${label}.weight`, 'a positive number (default 1)', c.weight)
    }
    weight = c.weight
  }

  let models: string[] | null = null
  if (c.models !== undefined) {
    if (!Array.isArray(c.models) || c.models.length === 0) {
      fail(
        `${label}.models`,
        "a non-empty array of model names like ['llama-3-8b'], or left out to serve any model",
        c.models,
      )
    }
    for (const [i, model] of c.models.entries()) {
      if (!nonEmptyString(model)) fail(`${label}.models[${i}]`, 'a non-empty model name', model)
    }
    models = [...new Set(c.models as string[])]
  }

  let zone: string | null = null
  if (c.zone !== undefined) {
    if (!nonEmptyString(c.zone)) fail(`${label}.zone`, 'a non-empty string, or left out', c.zone)
    zone = c.zone
  }

  let maxConcurrency: number | null = null
  if (c.maxConcurrency !== undefined) {
    if (!Number.isSafeInteger(c.maxConcurrency) || (c.maxConcurrency as number) < 1) {
      fail(`${label}.maxConcurrency`, 'a positive integer, or left out for no limit', c.maxConcurrency)
    }
    maxConcurrency = c.maxConcurrency as number
  }

  let keepAliveAfterStreams = true
  if (c.keepAliveAfterStreams !== undefined) {
    if (typeof c.keepAliveAfterStreams !== 'boolean')
      fail(`${label}.keepAliveAfterStreams`, 'true or false (default true)', c.keepAliveAfterStreams)
    keepAliveAfterStreams = c.keepAliveAfterStreams
  }

  const metrics = parseMetrics(c.metrics, label)
  const connection = validateBackendConnection(c, label)
  if (connection?.modelNames != null && models === null)
    failWith(`${label}.models`, 'must list the model names clients use when modelNames is set')
  return { id, url, weight, models, zone, maxConcurrency, metrics, connection, keepAliveAfterStreams }
}

/** Validates a list of backends, rejecting duplicate ids with both positions named. */
export function validateBackendConfigs(configs: unknown, label = 'backends'): ValidatedBackendConfig[] {
  if (!Array.isArray(configs)) {
    fail(label, "an array like [{ url: 'http://10.0.0.5:8000' }, { url: 'http://10.0.0.6:8000' }]", configs)
  }
  const seen = new Map<string, number>()
  return configs.map((config: BackendConfig, i) => {
    const validated = validateBackendConfig(config, `${label}[${i}]`)
    const previous = seen.get(validated.id)
    if (previous !== undefined) {
      failWith(
        `${label}[${i}].id`,
        `${describeValue(validated.id)} is already used by ${label}[${previous}]; give each backend a distinct id`,
      )
    }
    seen.set(validated.id, i)
    return validated
  })
}

/**
 * Still imported by forward/, whose option checks move to validation.ts on their own schedule;
 * these keep that code on the shared format meanwhile.
 * @deprecated use `describeValue` and `checkOptionGroup` from validation.ts.
 */
export const quote = describeValue
/** @deprecated use `checkOptionGroup` from validation.ts. */
export function checkOptionObject(
  value: unknown,
  name: string,
  known: readonly string[],
  orFalse = false,
): void {
  checkOptionGroup(name, value, known, orFalse)
}

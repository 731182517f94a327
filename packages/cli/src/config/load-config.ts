import {
  closestName,
  GATEWAY_OPTION_NAMES,
  OBSERVE_OPTION_NAMES,
  RATE_LIMIT_OPTION_NAMES,
} from '@tollgate/core/internal'
import { Ajv } from 'ajv'
import { ConfigError } from './config-error.js'
import { CLI_KEYS, CODE_ONLY_OPTIONS, configSchema } from './schema.js'
import { type Finding, schemaFindings } from './schema-errors.js'
import { ConfigSource } from './source.js'
import type {
  DnsBackendConfig,
  GatewayConfig,
  RedisConfig,
  RouteConfig,
  RoutingStateConfig,
} from './types.js'

const validate = new Ajv({ allErrors: true, verbose: true, strict: false }).compile(configSchema)

/** Every key a gateway file may hold: the CLI's own and the plugin's option names. */
export function knownKeys(): string[] {
  const plugin = [...RATE_LIMIT_OPTION_NAMES, ...GATEWAY_OPTION_NAMES, ...OBSERVE_OPTION_NAMES, 'hook']
  return [...new Set([...CLI_KEYS, ...plugin])].filter(
    (k) => !(CODE_ONLY_OPTIONS as readonly string[]).includes(k),
  )
}

function topLevelProblems(source: ConfigSource, value: Record<string, unknown>): Finding[] {
  const known = knownKeys()
  const problems: Finding[] = []
  for (const key of Object.keys(value)) {
    if ((CODE_ONLY_OPTIONS as readonly string[]).includes(key)) {
      problems.push({
        path: [key],
        text: source.atPath(
          [key],
          `"${key}" takes a function or an object made in code; it has no YAML form (set "redis" for a shared store)`,
          { key: true },
        ),
      })
    } else if (!known.includes(key)) {
      const guess = closestName(key, known)
      problems.push({
        path: [key],
        text: source.atPath([key], `unknown key "${key}"${guess ? `; did you mean "${guess}"?` : ''}`, {
          key: true,
        }),
      })
    }
  }
  return problems
}

/** A file as written, and every problem the schema finds in it, each with its path. */
export function readConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): { source: ConfigSource; raw: Record<string, unknown>; findings: Finding[] } {
  const source = ConfigSource.read(file, env)
  const value = source.value
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError([
      source.atPath([], 'the file must be a mapping of keys such as listen, backends, routes'),
    ])
  }
  const raw = value as Record<string, unknown>
  const findings = topLevelProblems(source, raw)
  if (!validate(raw)) findings.push(...schemaFindings(validate.errors ?? [], source, raw))
  if (routingStateNeedsRedis(raw)) {
    findings.push({
      path: ['routingState'],
      text: source.atPath(
        ['routingState'],
        'routingState needs a Redis: set "redis" at the top of the file or "routingState: { redis: redis://… }"',
      ),
    })
  }
  return { source, raw, findings }
}

/**
 * Reads, interpolates and validates a gateway file. Throws a ConfigError listing every problem
 * found (`gateway.yaml:12:5: …`). Plugin option rules (limit strings, strategy names …) are
 * checked when the plugin is registered; `checkAll` finds those too.
 */
export function loadConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): { config: GatewayConfig; source: ConfigSource } {
  const { source, raw, findings } = readConfig(file, env)
  if (findings.length > 0) throw new ConfigError([...new Set(findings.map((f) => f.text))])
  return { config: toGatewayConfig(raw), source }
}

/** `routingState: true`, or an object without `redis`, in a file without a top-level `redis`. */
function routingStateNeedsRedis(raw: Record<string, unknown>): boolean {
  const value = raw.routingState
  if (raw.redis !== undefined || value === undefined || value === false || typeof value === 'string')
    return false
  return value === true || (typeof value === 'object' && value !== null && !('redis' in value))
}

/**
 * Replicas that share a Redis route as one unless `routingState: false`: left out, or `true`, it
 * uses the top-level `redis`; a URL or `{ redis: URL, … }` names its own. Without any Redis
 * (refused by `readConfig`) it is off.
 */
function routingStateOf(value: unknown, redis: RedisConfig | undefined): RoutingStateConfig | undefined {
  if (value === false || (value === undefined && redis === undefined)) return undefined
  if (typeof value === 'string') return { url: value }
  const { redis: url, ...knobs } = (typeof value === 'object' && value !== null ? value : {}) as {
    redis?: string
  } & Omit<RoutingStateConfig, 'url'>
  const resolved = url ?? redis?.url
  return resolved === undefined ? undefined : { url: resolved, ...knobs }
}

export function toGatewayConfig(raw: Record<string, unknown>): GatewayConfig {
  const { listen, redis, routingState, routes, status, metrics, backends, ...plugin } = raw
  const redisConfig = typeof redis === 'string' ? { url: redis } : (redis as RedisConfig | undefined)
  const listenConfig = (listen ?? {}) as GatewayConfig['listen']
  const staticBackends: NonNullable<GatewayConfig['plugin']['backends']> = []
  const staticBackendIndex: number[] = []
  const dnsBackends: GatewayConfig['dnsBackends'] = []
  if (Array.isArray(backends)) {
    backends.forEach((entry: Record<string, unknown> | undefined, index) => {
      // An entry left out (undefined) keeps the file positions of those after it; see check-all.ts.
      if (entry === undefined) return
      if (typeof entry.dns === 'string')
        dnsBackends.push({ index, entry: entry as unknown as DnsBackendConfig })
      else {
        staticBackends.push(entry as never)
        staticBackendIndex.push(index)
      }
    })
  }
  const statusConfig = status as { path: string; refreshMs?: number } | undefined
  const metricsConfig = metrics as { path: string } | undefined
  return {
    listen: {
      host: listenConfig.host ?? '127.0.0.1',
      port: listenConfig.port ?? 8080,
      trustProxy: listenConfig.trustProxy,
    },
    redis: redisConfig,
    routingState: routingStateOf(routingState, redisConfig),
    routes: (routes ?? []) as RouteConfig[],
    status: statusConfig && {
      path: statusConfig.path.replace(/\/+$/, '') || '/',
      refreshMs: statusConfig.refreshMs ?? 1000,
    },
    metrics: metricsConfig && { path: metricsConfig.path },
    plugin: {
      ...plugin,
      ...(metricsConfig === undefined ? {} : { metrics: true }),
      ...(backends === undefined ? {} : { backends: staticBackends }),
    },
    staticBackendIndex,
    dnsBackends,
  }
}

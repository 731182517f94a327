import type { BackendConfig } from '@tollgate/core'
import type { TollgateFastifyOptions } from '@tollgate/fastify'

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS'

export interface RouteConfig {
  method: Method | Method[]
  path: string
  forward?: true | { rewrite?: { stripPrefix: string; addPrefix?: string }; hashKey?: string }
  models?: true
  rateLimit?: string | false | { limits?: string; scope?: string; cost?: number }
}

/** A backend entry that names a DNS name: one backend per address it resolves to. */
export interface DnsBackendConfig extends Omit<BackendConfig, 'url' | 'id'> {
  dns: string
  port: number
  scheme?: 'http' | 'https'
  basePath?: string
  refreshMs?: number
}

/** `routingState` as written, resolved: the Redis URL and the knobs passed to the plugin. */
export interface RoutingStateConfig {
  url: string
  prefix?: string
  timeoutMs?: number
  leaseTtlMs?: number
  heartbeatMs?: number
  prefixTtlMs?: number
}

export interface RedisConfig {
  url: string
  timeoutMs?: number
  onError?: 'insurance' | 'allow' | 'deny'
}

/** A gateway file after validation, split into what the CLI reads and what goes to the plugin. */
export interface GatewayConfig {
  listen: { host: string; port: number; trustProxy?: boolean | number | string }
  redis?: RedisConfig
  /** Where replicas share routing state; undefined: this replica routes alone. */
  routingState?: RoutingStateConfig
  routes: RouteConfig[]
  status?: { path: string; refreshMs: number }
  /** Where the Prometheus metrics are served (the plugin gets `metrics: true`). */
  metrics?: { path: string }
  /** Options for the `tollgate` plugin as written, without the DNS backends. */
  plugin: Omit<TollgateFastifyOptions, 'backends'> & { backends?: BackendConfig[] }
  /** `plugin.backends[i]` was written at `backends[staticBackendIndex[i]]`. */
  staticBackendIndex: number[]
  dnsBackends: { index: number; entry: DnsBackendConfig }[]
}

import type { FairnessOptions } from '../admission/index.js'
import type { BalancerOptions } from '../balance/balancer.js'
import type { ForwarderOptions } from '../forward/forwarder.js'
import type { PathRewrite } from '../forward/request-target.js'
import { optionNames } from '../option-names.js'

/** Where a request's consistent-hash key comes from: a header name, or a function of the request. */
export type HashKeySource<Req> = string | ((request: Req) => string | undefined)

/** Balancing and forwarding options, shared by the Fastify plugin and the Express factory. */
export interface GatewayOptions<Req>
  extends Omit<BalancerOptions, 'now' | 'random' | 'callbacks' | 'events' | 'fairness' | 'clientKey'>,
    Omit<ForwarderOptions, 'balancer' | 'pools' | 'rewrite' | 'callbacks'> {
  /**
   * Fair shares of full backends between tenants, with priorities and client deadlines. Without
   * it, requests wait for a full backend in one FIFO queue. A tenant is the client's rate-limit
   * key (the plugin-wide `keyGenerator`, else its address) unless `fairness.tenant` says otherwise.
   */
  fairness?: FairnessOptions<Req>
  /** Consistent-hash key. Default: the `X-Session-Id` header. */
  hashKey?: HashKeySource<Req>
  /**
   * On close, how long in-flight requests (streams included) may run on before their upstream
   * requests are cut, so close always resolves. Default 10 000 ms; 0 cuts them at once.
   */
  shutdownTimeoutMs?: number
}

/** Options of one forward handler. */
export interface ForwardOptions<Req> {
  /** Changes the forwarded path: a function, or `{ stripPrefix, addPrefix? }`. Default: the request's own path and query. */
  rewrite?: PathRewrite
  /** Overrides the gateway's `hashKey` for this route. */
  hashKey?: HashKeySource<Req>
}

/** Checked against `GatewayOptions`: an option added there and not here fails to compile. */
export const GATEWAY_OPTION_NAMES = optionNames<GatewayOptions<unknown>>()([
  'backends',
  'strategy',
  'consistentHash',
  'prefixAffinity',
  'precisePrefix',
  'loadReports',
  'loraAffinity',
  'zone',
  'zonePreference',
  'health',
  'queue',
  'fairness',
  'latencyDecayMs',
  'failurePenaltyMs',
  'routingState',
  'connectTimeoutMs',
  'firstByteTimeoutMs',
  'idleTimeoutMs',
  'keepAliveTimeoutMs',
  'connectionsPerBackend',
  'maxAttempts',
  'retryBudget',
  'maxReplayBodyBytes',
  'maxBodyBytes',
  'uploadTimeoutMs',
  'backendHeader',
  'onUnexpectedError',
  'hashKey',
  'shutdownTimeoutMs',
])

export const FORWARD_OPTION_NAMES = optionNames<ForwardOptions<unknown>>()(['rewrite', 'hashKey'])

/** The balancing and forwarding part of an adapter's options (which also hold limit options). */
export function pickGatewayOptions<Req>(options: object): GatewayOptions<Req> {
  const picked: Record<string, unknown> = {}
  for (const name of GATEWAY_OPTION_NAMES) {
    const value = (options as Record<string, unknown>)[name]
    if (value !== undefined) picked[name] = value
  }
  return picked as GatewayOptions<Req>
}

/**
 * `@tollgate/core/internal`: the pieces `@tollgate/fastify` and `@tollgate/express` assemble
 * tollgate from. Not a stable API: it changes with the adapters, in any release. Applications
 * use the names exported from `@tollgate/core` (or re-exported by an adapter) instead.
 * It re-exports the public names too, so an adapter file imports from one place.
 */

export { ActiveHealthCheck } from './balance/active-health-check.js'
export type { BackendState } from './balance/backend-state.js'
export { BackendBalancer } from './balance/balancer.js'
export {
  inFlightLoad,
  type Load,
  type LoadCost,
  loadFromCost,
  peakEwmaLoad,
  reportedCost,
  reportedLoad,
} from './balance/load.js'
export { createPicker, type Picker } from './balance/pickers/index.js'
export type { BackendRegistry } from './balance/registry.js'
export type { AttemptOutcome, BackendLease, BackendTarget, Balancer } from './balance/types.js'
export { BodyTooLargeError, errorBody, sendJsonError } from './forward/errors.js'
export {
  createForwarder,
  type Forwarder,
  type ForwarderOptions,
  type ForwardObserver,
  type ForwardRequest,
} from './forward/forwarder.js'
export { isJsonRequest, nestsDeeperThan } from './forward/json-fields.js'
export { compilePathRewrite } from './forward/request-target.js'
export {
  ForwardingGateway,
  type ForwardRoute,
  Gateway,
  type GatewayRequest,
} from './gateway/gateway.js'
export {
  FORWARD_OPTION_NAMES,
  GATEWAY_OPTION_NAMES,
  pickGatewayOptions,
} from './gateway/gateway-options.js'
export { LimitedRoute, type LimitRejection, type SetHeader } from './gateway/limited-route.js'
export { promptTextOf } from './gateway/prompt-text.js'
export { isLimitAnswer, settleAtEnd, withTokens } from './gateway/token-decision.js'
export { type TokenGrant, type TokenOutcome, TokenRoute } from './gateway/token-route.js'
export { type AdapterSetup, type ModelList, TollgateCore } from './gateway/tollgate-core.js'
export * from './index.js'
export { HEADER_MODES, writeRateLimitHeaders } from './limits/headers.js'
export { PROBE_FIRST_MS, PROBE_MAX_MS } from './limits/insured-store.js'
export { LimitEngine, RATE_LIMIT_OPTION_NAMES } from './limits/limit-engine.js'
export { RateLimiter, type WindowGroup } from './limits/limiter.js'
export {
  type HeaderSetter,
  LATER,
  type Later,
  type LimitAnswer,
  LimitCheckFailure,
  type LimitOutcome,
  limitResponse,
  neverPassesBody,
} from './limits/rejection.js'
export { RouteLimit } from './limits/route-limit.js'
export { InsuredTokenStore, RedisTokenStore } from './limits/tokens/redis-token-store.js'
export { POLICY_CACHE_SIZE, TokenBudget, TokenPolicy } from './limits/tokens/token-budget.js'
export { combineEvents } from './observe/events.js'
export { OBSERVE_OPTION_NAMES, Observability } from './observe/observability.js'
export { PrometheusMetrics } from './observe/prometheus-metrics.js'
export { operationName, RequestTracing } from './observe/tracing.js'
export { optionNames } from './option-names.js'
export { CALLBACK_FAILED, type CallbackFailed, UserCallbacks } from './user-callback.js'
export {
  checkKnownKeys,
  checkOneOf,
  closestName,
  describeValue,
  fail,
  failWith,
  isPlainObject,
} from './validation.js'

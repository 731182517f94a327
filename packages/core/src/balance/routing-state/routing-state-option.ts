import { isRedisClient } from '../../limits/redis-client.js'
import { checkKnownKeys, checkNumber, fail, isPlainObject } from '../../validation.js'
import { RedisRoutingState } from './redis-routing-state.js'
import {
  LocalRoutingState,
  ROUTING_STATE_OPTION_NAMES,
  type RoutingState,
  type RoutingStateOptions,
  type RoutingStateOwner,
} from './routing-state.js'

// setTimeout turns anything above 2^31-1 ms into 1 ms.
const MAX_TIMER_MS = 2_147_483_647

/** Checks `routingState` at startup; a bad value fails naming the option. */
export function checkRoutingStateOption(option: RoutingStateOptions | undefined): void {
  if (option === undefined) return
  const raw: unknown = option
  if (!isPlainObject(raw)) fail('routingState', '{ redis: client } (an ioredis or node-redis client)', raw)
  checkKnownKeys('routingState', raw, ROUTING_STATE_OPTION_NAMES)
  if (!isRedisClient(option.redis))
    fail('routingState.redis', 'an ioredis or node-redis client', option.redis)
  const prefix: unknown = option.prefix
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)))
    fail('routingState.prefix', 'a non-empty string without { or } (the key names its hash tag)', prefix)
  settingsOf(option, 1)
}

function timer(option: string, value: unknown, fallback: number): number {
  const ms = checkNumber(option, value, fallback, { min: 1, integer: true })
  if (ms > MAX_TIMER_MS) fail(option, `a whole number of ms from 1 to ${MAX_TIMER_MS}`, value)
  return ms
}

function settingsOf(option: RoutingStateOptions, indexBlocks: number) {
  const heartbeatMs = timer('routingState.heartbeatMs', option.heartbeatMs, 1_000)
  const leaseTtlMs = timer('routingState.leaseTtlMs', option.leaseTtlMs, 5_000)
  if (leaseTtlMs < 2 * heartbeatMs) {
    fail('routingState.leaseTtlMs', `at least twice heartbeatMs (${2 * heartbeatMs})`, leaseTtlMs)
  }
  return {
    prefix: option.prefix ?? 'tollgate:',
    timeoutMs: timer('routingState.timeoutMs', option.timeoutMs, 100),
    leaseTtlMs,
    heartbeatMs,
    prefixTtlMs: timer('routingState.prefixTtlMs', option.prefixTtlMs, 600_000),
    indexBlocks,
  }
}

/** The balancer's routing state: this process alone, or shared through Redis. */
export function createRoutingState(
  option: RoutingStateOptions | undefined,
  owner: RoutingStateOwner,
  indexBlocks: number,
): RoutingState {
  if (option === undefined) return new LocalRoutingState()
  checkRoutingStateOption(option)
  return new RedisRoutingState(option, settingsOf(option, indexBlocks), owner)
}

/**
 * The two Redis clients users bring, seen through the one call the store needs.
 * Typed structurally so that neither client is a dependency of the core.
 */

/** An `ioredis` client (`Redis` or `Cluster`). */
export interface IoRedisLike {
  status: string
  evalsha(sha: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>
}

/** A `redis` (node-redis v4+) client. */
export interface NodeRedisLike {
  isReady: boolean
  /** True from `connect()` on, while connecting too; node-redis queues commands until ready. */
  isOpen?: boolean
  /** How many times the client has become ready (node-redis 5 and later): 0 before the first. */
  socketEpoch?: number
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
}

export type RedisClientLike = IoRedisLike | NodeRedisLike

export interface ScriptRunner {
  /**
   * Whether a call may be sent: the client is connected, or making its first connection (the
   * client queues the call, and the store's own deadline bounds the wait). When not, the store
   * does not even try: a client that was connected and lost its server is an outage.
   */
  ready(): boolean
  /** EVALSHA, falling back to EVAL when the server does not know the script yet. */
  run(sha: string, script: string, keys: string[], args: string[]): Promise<unknown>
  /** EVALSHA alone: for a caller that handles NOSCRIPT itself (see `isNoScript`) and saves a promise. */
  evalsha(sha: string, keys: string[], args: string[]): Promise<unknown>
  /** EVAL, which also loads the script for later EVALSHA calls. */
  eval(script: string, keys: string[], args: string[]): Promise<unknown>
}

export function isRedisClient(value: unknown): value is RedisClientLike {
  if (value === null || typeof value !== 'object') return false
  const v = value as Record<string, unknown>
  return typeof v.evalsha === 'function' || typeof v.evalSha === 'function'
}

/** Whether the server did not know the script an EVALSHA named (after a restart or SCRIPT FLUSH). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT')
}

export function scriptRunnerFor(client: RedisClientLike): ScriptRunner {
  const calls = scriptCallsFor(client)
  return {
    ...calls,
    run: (sha, script, keys, args) =>
      calls.evalsha(sha, keys, args).catch((error: unknown) => {
        if (isNoScript(error)) return calls.eval(script, keys, args)
        throw error
      }),
  }
}

/**
 * The three calls each client kind spells its own way.
 *
 * A client on its first connection attempt is sent calls: a gateway built right after its client,
 * in a process already warm, serves its first requests before the connection is up, and refusing
 * them fell back to counting in this process for the first probe interval, so every replica
 * counted alone (six requests against '4 per minute' over two replicas all passed). A client that
 * lost its server, or whose first attempt failed, is an outage: its calls fail at once. Told apart
 * by ioredis's retry count (0 until an attempt fails, again 0 once ready) and node-redis's
 * `socketEpoch` (0 until first ready; a client without it is only sent calls when ready).
 */
function scriptCallsFor(client: RedisClientLike): Omit<ScriptRunner, 'run'> {
  if ('evalsha' in client && typeof client.evalsha === 'function') {
    const io = client as IoRedisLike
    return {
      // 'wait' is a lazyConnect client that has not connected yet: it connects on its first
      // command, so refusing to send one would leave it (and shared counting) down for good.
      ready: () => {
        const status = io.status
        if (status === 'ready' || status === 'wait') return true
        // Not in ioredis's public types, hence read as unknown.
        const retries = (io as { retryAttempts?: unknown }).retryAttempts
        return retries === 0 && (status === 'connecting' || status === 'connect')
      },
      // Without spreading for the common call (one key, one argument): spreading two arrays into
      // a call is a measurable share of a request's cost.
      evalsha: (sha, keys, args) =>
        keys.length === 1 && args.length === 1
          ? io.evalsha(sha, 1, keys[0]!, args[0]!)
          : io.evalsha(sha, keys.length, ...keys, ...args),
      eval: (script, keys, args) => io.eval(script, keys.length, ...keys, ...args),
    }
  }
  const nr = client as NodeRedisLike
  return {
    ready: () => nr.isReady || (nr.isOpen === true && nr.socketEpoch === 0),
    evalsha: (sha, keys, args) => nr.evalSha(sha, { keys, arguments: args }),
    eval: (script, keys, args) => nr.eval(script, { keys, arguments: args }),
  }
}

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
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
}

export type RedisClientLike = IoRedisLike | NodeRedisLike

export interface ScriptRunner {
  /** Whether the client believes it is connected; when not, the store does not even try. */
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

/** The three calls each client kind spells its own way. */
function scriptCallsFor(client: RedisClientLike): Omit<ScriptRunner, 'run'> {
  if ('evalsha' in client && typeof client.evalsha === 'function') {
    const io = client as IoRedisLike
    return {
      // 'wait' is a lazyConnect client that has not connected yet: it connects on its first
      // command, so refusing to send one would leave it (and shared counting) down for good.
      ready: () => io.status === 'ready' || io.status === 'wait',
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
    ready: () => nr.isReady,
    evalsha: (sha, keys, args) => nr.evalSha(sha, { keys, arguments: args }),
    eval: (script, keys, args) => nr.eval(script, { keys, arguments: args }),
  }
}

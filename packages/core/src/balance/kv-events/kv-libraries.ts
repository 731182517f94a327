import { createRequire } from 'node:module'
import type * as Msgpackr from 'msgpackr'
import type * as Zeromq from 'zeromq'

/**
 * zeromq and msgpackr, loaded when the first backend with `kvEvents` is registered, never when
 * `@tollgate/core` is imported: most gateways subscribe to no engine, and zeromq is a native
 * module (an optional dependency) that a platform without its prebuilt binary may lack.
 */
export class KvEventLibraries {
  #zeromq: typeof Zeromq | undefined
  #msgpackr: typeof Msgpackr | undefined

  zeromq(): typeof Zeromq {
    this.#zeromq ??= load('zeromq') as typeof Zeromq
    return this.#zeromq
  }

  msgpackr(): typeof Msgpackr {
    this.#msgpackr ??= load('msgpackr') as typeof Msgpackr
    return this.#msgpackr
  }
}

function load(name: string): unknown {
  try {
    return createRequire(import.meta.url)(name)
  } catch (error) {
    throw new Error(
      `backends[].kvEvents needs the package ${name} (an optional dependency of @tollgate/core): install it with npm install ${name} (${(error as Error).message})`,
    )
  }
}

import { createRequire } from 'node:module'
import type * as Undici from 'undici'

let loaded: typeof Undici | undefined

/**
 * undici, loaded on first use rather than when `@tollgate/core` is imported. An app that only
 * rate-limits never creates a pool, and merely loading undici made every request of a plain
 * Fastify server measurably dearer (see the note in docs/DESIGN.md).
 */
export function undici(): typeof Undici {
  loaded ??= createRequire(import.meta.url)('undici') as typeof Undici
  return loaded
}

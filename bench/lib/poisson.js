/**
 * Open-loop arrivals. A closed-loop client (a fixed number of connections, each waiting for its
 * answer before sending the next) slows down exactly when the servers do, which hides queueing;
 * real users keep arriving. Poisson arrivals (exponential gaps) are the standard model for that.
 */

import { createRandom } from '../../examples/fake-model-server.js'

/**
 * The fake model server's seeded PRNG (mulberry32): the same sequence on every machine, so two
 * strategies compared in one run see the very same arrival times.
 */
export const seededRandom = createRandom

/**
 * Exponential gap with the given mean. `1 - u` is in (0, 1], so the log is finite.
 * @param {() => number} random
 * @param {number} meanMs
 */
export function exponentialGap(random, meanMs) {
  return -Math.log(1 - random()) * meanMs
}

/**
 * Arrival offsets (ms from the start, ascending) of a Poisson process over `durationMs`.
 * @param {{ ratePerSecond: number, durationMs: number, seed: number }} options
 * @returns {number[]}
 */
export function poissonSchedule({ ratePerSecond, durationMs, seed }) {
  if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) {
    throw new RangeError(`ratePerSecond must be a positive number, got ${ratePerSecond}`)
  }
  if (!(durationMs >= 0) || !Number.isFinite(durationMs)) {
    throw new RangeError(`durationMs must be a non-negative number, got ${durationMs}`)
  }
  const random = seededRandom(seed)
  const meanGap = 1000 / ratePerSecond
  /** @type {number[]} */
  const arrivals = []
  let at = exponentialGap(random, meanGap)
  while (at < durationMs) {
    arrivals.push(at)
    at += exponentialGap(random, meanGap)
  }
  return arrivals
}

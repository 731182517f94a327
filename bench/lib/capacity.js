/**
 * How many answers per second a fake model server (examples/fake-model-server.js) sustains, from its
 * own parameters, so that "80% load" means the same thing whatever the servers are set to.
 *
 * A server admits `capacity` answers at once. An answer of L tokens occupies its place for
 *   S(L) = ttft + (L - 1) × d,   d = tpt × (1 + batchSlowdown × (capacity - 1))
 * (the first token comes at ttft; each next one a per-token delay d later, and d is computed from
 * the number generating at that moment, which is `capacity` while the server is saturated).
 * Saturated throughput is then  μ = capacity / E[S] = capacity / (ttft + (E[L] - 1) × d),
 * and the pool's capacity is the sum of μ over the servers. Loads are fractions of that sum.
 *
 * Answer lengths are `min(floor(X), max)` with X Pareto(min, alpha), exactly as `paretoTokens`
 * draws them, so E[L] = min + Σ_{k=min+1..max} (min / k)^alpha (the tail sum of P(L ≥ k)).
 */

/**
 * Mean answer length of `paretoTokens(min, alpha, max)`.
 * @param {number} min integer scale, at least 1
 * @param {number} alpha tail index
 * @param {number} [max] cap; default 100 × min as in `paretoTokens`
 */
export function meanParetoTokens(min, alpha, max = 100 * min) {
  if (!Number.isInteger(min) || min < 1) throw new RangeError(`min must be a positive integer, got ${min}`)
  if (!(alpha > 0)) throw new RangeError(`alpha must be positive, got ${alpha}`)
  let sum = min
  for (let k = min + 1; k <= max; k++) sum += (min / k) ** alpha
  return sum
}

/**
 * Mean time (ms) an answer holds one of a saturated server's places.
 * @param {{ capacity: number, ttftMs: number, tptMs: number, batchSlowdown: number }} server
 * @param {number} meanTokens
 */
export function meanServiceMs(server, meanTokens) {
  const perToken = server.tptMs * (1 + server.batchSlowdown * (server.capacity - 1))
  return server.ttftMs + Math.max(0, meanTokens - 1) * perToken
}

/**
 * Saturated throughput of one server, answers per second.
 * @param {{ capacity: number, ttftMs: number, tptMs: number, batchSlowdown: number }} server
 * @param {number} meanTokens
 */
export function serverCapacity(server, meanTokens) {
  return (server.capacity * 1000) / meanServiceMs(server, meanTokens)
}

/**
 * @param {ReadonlyArray<{ capacity: number, ttftMs: number, tptMs: number, batchSlowdown: number }>} servers
 * @param {number} meanTokens
 */
export function poolCapacity(servers, meanTokens) {
  let total = 0
  for (const s of servers) total += serverCapacity(s, meanTokens)
  return total
}

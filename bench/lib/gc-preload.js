/**
 * Loaded into a server under test with `node --import`: counts its garbage collections from
 * `perf_hooks` gc entries and the bytes scavenges moved into the old generation (the old space's
 * growth seen after each scavenge; a full collection only resets the baseline). On SIGUSR1 it
 * prints `{"gc":{…}}` for the span since the previous SIGUSR1 and starts a new one.
 *
 * Imported as `gc-preload.js?allocations` it also samples allocations (V8's sampling heap profiler,
 * objects collected since included) and reports the bytes allocated in the span. The profiler
 * changes what survives, so that pass is separate from the counting one.
 */
import { Session } from 'node:inspector/promises'
import { constants, PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics } from 'node:v8'

const oldSpace = () =>
  getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_used_size ?? 0
const fresh = () => ({
  scavenges: 0,
  scavengeMs: 0,
  markCompacts: 0,
  markCompactMs: 0,
  maxPauseMs: 0,
  promoted: 0,
})
let span = fresh()
let last = oldSpace()

new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = /** @type {{ kind?: number } | undefined} */ (entry.detail)?.kind
    const now = oldSpace()
    span.maxPauseMs = Math.max(span.maxPauseMs, entry.duration)
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      span.scavenges++
      span.scavengeMs += entry.duration
      if (now > last) span.promoted += now - last
    } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      span.markCompacts++
      span.markCompactMs += entry.duration
    }
    last = now
  }
}).observe({ entryTypes: ['gc'] })

const sampling = new URL(import.meta.url).search === '?allocations'
const session = sampling ? new Session() : null
session?.connect()

async function allocatedBytes() {
  if (session === null) return null
  const { profile } = await session.post('HeapProfiler.stopSampling')
  return profile.samples.reduce((sum, s) => sum + s.size, 0)
}

async function startSampling() {
  await session?.post('HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  })
}

let started = false
process.on('SIGUSR1', async () => {
  const allocated = started ? await allocatedBytes() : null
  // Entries arrive after their collection; let the span's last ones in.
  await new Promise((resolve) => setTimeout(resolve, 50))
  console.log(JSON.stringify({ gc: { ...span, allocated } }))
  span = fresh()
  last = oldSpace()
  started = true
  await startSampling()
})

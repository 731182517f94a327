/**
 * CPU time from the kernel's own accounting: steadier than requests per second on a shared machine,
 * because time the server spent waiting for its core is not charged to it.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** @type {number | undefined} */
let ticksPerSecond

export function clockTicksPerSecond() {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/**
 * Fields of /proc/<pid>/stat after the command name, which is in parentheses and may itself hold
 * spaces or parentheses: hence the split at the last ')'.
 * @param {string} text
 */
export function parseProcStat(text) {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15, the process group field 5.
  return {
    pgrp: Number(rest[2]),
    utimeTicks: Number(rest[11]),
    stimeTicks: Number(rest[12]),
  }
}

/** @param {number} pid @returns {ReturnType<typeof parseProcStat> | null} */
function readStat(pid) {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return null
  }
}

/**
 * User + system CPU time, in µs, of every live process in the group led by `pgid`: a Node server
 * is one process (its threads included), nginx and haproxy are a master and workers.
 * @param {number} pgid
 */
export function groupCpuMicros(pgid) {
  let ticks = 0
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const s = readStat(pid)
    if (s && s.pgrp === pgid) ticks += s.utimeTicks + s.stimeTicks
  }
  return (ticks * 1e6) / clockTicksPerSecond()
}

/** CPU µs of one process (e.g. redis-server, which is not ours but whose cost we want to see). */
export function processCpuMicros(/** @type {number} */ pid) {
  const s = readStat(pid)
  return s ? ((s.utimeTicks + s.stimeTicks) * 1e6) / clockTicksPerSecond() : Number.NaN
}

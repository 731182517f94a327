/**
 * Child processes for the benchmarks: the server under test pinned to one core, load generators and
 * backends to the other, and every one of them killed when the run ends, however it ends.
 *
 * Each child is started in its own process group (`detached`), so that stopping it also stops what
 * it forked (nginx and haproxy workers) by signalling that group's id, and nothing else.
 */
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect } from 'node:net'
import { availableParallelism } from 'node:os'
import { createInterface } from 'node:readline'

/** The core the server under test gets; everything else goes to LOAD_CORE. */
export const SERVER_CORE = 0
export const LOAD_CORE = 1

/** @type {boolean | undefined} */
let canPin

/** taskset needs a second core to be worth anything, and the binary to exist. */
export function pinningAvailable() {
  if (canPin === undefined) {
    canPin = false
    if (availableParallelism() >= 2) {
      try {
        execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
        canPin = true
      } catch {}
    }
  }
  return canPin
}

/**
 * @param {number | null} core
 * @param {string} cmd
 * @param {string[]} args
 * @returns {[string, string[]]}
 */
export function pinnedCommand(core, cmd, args) {
  if (core === null || !pinningAvailable()) return [cmd, args]
  return ['taskset', ['-c', String(core), cmd, ...args]]
}

/** Moves this (orchestrating) process, all its threads, off the server's core. */
export function pinSelf(core = LOAD_CORE) {
  if (!pinningAvailable()) return false
  try {
    execFileSync('taskset', ['-a', '-cp', String(core), String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** @type {string | null} */
let profileDir = null

/** With a directory, every server under test writes a V8 CPU profile there when it exits. */
export function setProfileDir(/** @type {string | null} */ dir) {
  profileDir = dir
}

/**
 * Node flags for a server under test: the profiling flags when `run.js --profile` asked for them
 * (open the files in Chrome DevTools or speedscope).
 * @param {string} name
 */
export function profileArgs(name) {
  if (!profileDir) return []
  return [
    '--cpu-prof',
    `--cpu-prof-dir=${profileDir}`,
    `--cpu-prof-name=${name.replace(/[^\w.-]+/g, '_')}.cpuprofile`,
  ]
}

/** @type {Set<ManagedProcess>} */
const running = new Set()
let handlersInstalled = false

function killGroup(/** @type {number} */ pid, /** @type {NodeJS.Signals} */ signal) {
  try {
    process.kill(-pid, signal)
  } catch {}
}

/** Last resort, synchronous because an 'exit' handler cannot wait. */
function killAllNow() {
  for (const p of running) killGroup(p.pid, 'SIGKILL')
  running.clear()
}

function installHandlers() {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', killAllNow)
  for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.once(signal, () => {
      killAllNow()
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
    })
  }
}

/**
 * @typedef {{
 *   name: string, pid: number, child: import('node:child_process').ChildProcess,
 *   ready: any, exited: Promise<number | null>, stderr: () => string,
 *   stop: () => Promise<void>, kill: () => Promise<void>,
 * }} ManagedProcess `stop` asks politely first; `kill` is a crash, as a fault phase wants.
 */

/**
 * Starts a child and resolves once it is ready: either a stdout line `readyLine` accepts (its return
 * value, when not undefined, becomes `ready`), or a TCP port that accepts connections.
 * @param {{
 *   name: string, cmd: string, args: string[], core: number | null,
 *   env?: Record<string, string | undefined>, cwd?: string,
 *   readyLine?: (line: string) => unknown, readyPort?: number, readyTimeoutMs?: number,
 *   pinAfterReady?: boolean,
 * }} options `pinAfterReady` lets a single-process server boot on any core (loading modules is
 *   not what is measured) and moves all its threads to `core` once it is ready.
 * @returns {Promise<ManagedProcess>}
 */
export async function startProcess(options) {
  installHandlers()
  const [cmd, argv] = pinnedCommand(options.pinAfterReady ? null : options.core, options.cmd, options.args)
  const child = spawn(cmd, argv, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  if (child.pid === undefined) {
    await once(child, 'error').catch(() => {})
    throw new Error(`${options.name}: could not start ${cmd}`)
  }
  const pid = child.pid
  let stderrTail = ''
  child.stderr?.on('data', (d) => {
    stderrTail = (stderrTail + d).slice(-4000)
  })
  /** @type {Promise<number | null>} */
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))

  /** @type {ManagedProcess} */
  const managed = {
    name: options.name,
    pid,
    child,
    ready: undefined,
    exited,
    stderr: () => stderrTail,
    async kill() {
      running.delete(managed)
      killGroup(pid, 'SIGKILL')
      await exited
    },
    async stop() {
      if (!running.has(managed)) return
      running.delete(managed)
      killGroup(pid, 'SIGTERM')
      const timer = new Promise((resolve) => setTimeout(resolve, 3000).unref())
      await Promise.race([exited, timer])
      // Also reaches workers the leader forked, should the leader have left them behind.
      killGroup(pid, 'SIGKILL')
    },
  }
  running.add(managed)

  const timeoutMs = options.readyTimeoutMs ?? 15_000
  try {
    managed.ready = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${options.name}: not ready after ${timeoutMs} ms\n${stderrTail}`)),
        timeoutMs,
      )
      exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`${options.name}: exited with ${code} before it was ready\n${stderrTail}`))
      })
      if (options.readyLine && child.stdout) {
        const lines = createInterface({ input: child.stdout })
        lines.on('line', (line) => {
          const value = options.readyLine?.(line)
          if (value !== undefined) {
            clearTimeout(timer)
            resolve(value)
          }
        })
      } else if (options.readyPort !== undefined) {
        child.stdout?.resume()
        waitForPort(options.readyPort, timeoutMs).then(
          () => {
            clearTimeout(timer)
            resolve(true)
          },
          (e) => {
            clearTimeout(timer)
            reject(e)
          },
        )
      } else {
        clearTimeout(timer)
        resolve(true)
      }
    })
    if (options.pinAfterReady && options.core !== null && pinningAvailable()) {
      execFileSync('taskset', ['-a', '-cp', String(options.core), String(pid)], { stdio: 'ignore' })
    }
  } catch (e) {
    await managed.stop()
    throw e
  }
  return managed
}

/** Reads a child's first JSON line: servers print `{"port":N}` (or `{"skip":"why"}`) once listening. */
export function jsonLine(/** @type {string} */ line) {
  if (!line.startsWith('{')) return undefined
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

/** @param {number} port @param {number} timeoutMs */
export async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`port ${port} did not open within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A port free right now on 127.0.0.1, for children (nginx, haproxy) that cannot report their own. */
export async function freePort() {
  const { createServer } = await import('node:net')
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const address = /** @type {import('node:net').AddressInfo} */ (server.address())
  await new Promise((resolve) => server.close(() => resolve(undefined)))
  return address.port
}

/** Stops every child still running; call it in a finally. */
export async function stopAll() {
  await Promise.all([...running].map((p) => p.stop()))
}

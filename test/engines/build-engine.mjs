#!/usr/bin/env node
// Builds llama.cpp's llama-server on the CPU from the source that the pinned node-llama-cpp package
// ships (llama/gitRelease.bundle), and writes a tiny random-weight model for it, so that the engine
// tests and bench/engine.js run a real engine with nothing downloaded. Both go to a cache outside the
// repository, keyed by the llama.cpp commit: made once per machine, reused by every checkout.
//
//   node test/engines/build-engine.mjs          build if needed, print LLAMA_SERVER=... and LLAMA_MODEL=...
//
// LLAMA_SERVER and LLAMA_MODEL, when both are set, name an engine built elsewhere and skip all this.
// TOLLGATE_ENGINE_CACHE overrides the cache folder; TOLLGATE_ENGINE_JOBS the build's parallelism (2).
import { spawnSync } from 'node:child_process'
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const repoRoot = resolve(here, '../..')
const bundlePath = join(repoRoot, 'node_modules/node-llama-cpp/llama/gitRelease.bundle')

const CMAKE_FLAGS = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DGGML_NATIVE=ON',
  '-DLLAMA_CURL=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_BUILD_SERVER=ON',
]

/** The llama.cpp commit the installed bundle holds. */
export function engineCommit() {
  if (!existsSync(bundlePath)) {
    throw new Error(`${bundlePath} is missing: run \`npm ci\` (node-llama-cpp ships llama.cpp's source)`)
  }
  const heads = run('git', ['bundle', 'list-heads', bundlePath], { capture: true })
  const commit = /^([0-9a-f]{40}) HEAD$/m.exec(heads)?.[1] ?? /^([0-9a-f]{40}) /m.exec(heads)?.[1]
  if (!commit) throw new Error(`no commit found in ${bundlePath}`)
  return commit
}

/** Where the engine of this checkout lives (whether or not it is built yet). */
export function enginePaths(commit = engineCommit()) {
  const cacheRoot =
    process.env.TOLLGATE_ENGINE_CACHE ??
    join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tollgate', 'llama.cpp')
  const dir = join(cacheRoot, commit)
  return {
    commit,
    dir,
    source: join(dir, 'src'),
    build: join(dir, 'build'),
    server: join(dir, 'build', 'bin', 'llama-server'),
    model: join(dir, 'tiny-random-llama.gguf'),
    stamp: join(dir, 'ready.json'),
    log: join(dir, 'build.log'),
    lock: `${dir}.lock`,
  }
}

/** The engine when it is ready, or null; builds nothing. */
export function findEngine() {
  if (process.env.LLAMA_SERVER && process.env.LLAMA_MODEL) {
    return { server: process.env.LLAMA_SERVER, model: process.env.LLAMA_MODEL }
  }
  if (!existsSync(bundlePath)) return null
  const paths = enginePaths()
  if (!existsSync(paths.stamp) || !existsSync(paths.server) || !existsSync(paths.model)) return null
  return { server: paths.server, model: paths.model }
}

/** Builds what is missing (under a lock, so concurrent callers build once) and returns the engine. */
export async function ensureEngine({ say = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const ready = findEngine()
  if (ready) return ready
  const paths = enginePaths()
  mkdirSync(dirname(paths.dir), { recursive: true })
  await acquireLock(paths.lock, say)
  try {
    const again = findEngine()
    if (again) return again
    mkdirSync(paths.dir, { recursive: true })
    say(`building llama-server ${paths.commit.slice(0, 12)} in ${paths.dir} (log: ${paths.log})`)
    if (!existsSync(join(paths.source, 'CMakeLists.txt'))) {
      rmSync(`${paths.source}.tmp`, { recursive: true, force: true })
      run('git', ['clone', '--quiet', bundlePath, `${paths.source}.tmp`], { log: paths.log })
      run('git', ['-C', `${paths.source}.tmp`, 'checkout', '--quiet', paths.commit], { log: paths.log })
      rmSync(paths.source, { recursive: true, force: true })
      renameSync(`${paths.source}.tmp`, paths.source)
    }
    const jobs = process.env.TOLLGATE_ENGINE_JOBS ?? '2'
    run('cmake', ['-S', paths.source, '-B', paths.build, ...CMAKE_FLAGS], { log: paths.log })
    say(`compiling llama-server with ${jobs} jobs (a few minutes on 2 cores)`)
    run('cmake', ['--build', paths.build, '--target', 'llama-server', `-j${jobs}`], { log: paths.log })
    if (!existsSync(paths.model)) {
      say('writing the tiny random-weight model')
      run(
        'python3',
        [
          join(here, 'tiny-model.py'),
          join(paths.source, 'models/ggml-vocab-llama-spm.gguf'),
          `${paths.model}.tmp`,
        ],
        { log: paths.log, env: { ...process.env, PYTHONPATH: join(paths.source, 'gguf-py') } },
      )
      renameSync(`${paths.model}.tmp`, paths.model)
    }
    writeFileSync(
      paths.stamp,
      `${JSON.stringify({ commit: paths.commit, server: paths.server, model: paths.model })}\n`,
    )
    return { server: paths.server, model: paths.model }
  } finally {
    rmSync(paths.lock, { recursive: true, force: true })
  }
}

// mkdir is atomic: the process that creates the folder holds the lock; its pid inside lets a later
// process take over a lock whose holder died mid-build.
async function acquireLock(lock, say) {
  let told = false
  for (;;) {
    try {
      mkdirSync(lock)
      writeFileSync(join(lock, 'pid'), String(process.pid))
      return
    } catch (error) {
      if (error.code !== 'EEXIST') throw error
    }
    const holder = Number.parseInt(readText(join(lock, 'pid')), 10)
    if (Number.isInteger(holder) && !isAlive(holder)) {
      rmSync(lock, { recursive: true, force: true })
      continue
    }
    if (!told) {
      say(`waiting for another build of llama-server (lock ${lock}, pid ${holder || '?'})`)
      told = true
    }
    await new Promise((done) => setTimeout(done, 1000))
  }
}

function readText(path) {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

function run(command, args, { capture = false, log, env } = {}) {
  if (log) appendFileSync(log, `\n$ ${command} ${args.join(' ')}\n`)
  const result = spawnSync(command, args, { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 })
  if (log) appendFileSync(log, `${result.stdout ?? ''}${result.stderr ?? ''}`)
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`)
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n')
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status}:\n${output}`)
  }
  return capture ? result.stdout : ''
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const engine = await ensureEngine()
    process.stdout.write(`LLAMA_SERVER=${engine.server}\nLLAMA_MODEL=${engine.model}\n`)
  } catch (error) {
    process.stderr.write(`${error.message}\n`)
    process.exit(1)
  }
}

#!/usr/bin/env node
// Builds llama.cpp's llama-server on the CPU from the source that the npm package node-llama-cpp
// ships (llama/gitRelease.bundle, a git bundle of one llama.cpp commit), and writes a tiny
// random-weight model for it, so that the engine tests and bench/engine.js run a real engine. The
// package is fetched with `npm pack` at the exact version and checked against its registry
// integrity below: a pinned commit, without installing the package (and its ~700 MB of optional
// prebuilt binaries for every platform) into node_modules. Everything goes to a cache outside the
// repository, keyed by the llama.cpp commit: made once per machine, reused by every checkout.
//
//   node test/engines/build-engine.mjs          build if needed, print LLAMA_SERVER=... and LLAMA_MODEL=...
//
// LLAMA_SERVER and LLAMA_MODEL, when both are set, name an engine built elsewhere and skip all this.
// TOLLGATE_ENGINE_CACHE overrides the cache folder; TOLLGATE_ENGINE_JOBS the build's parallelism (2).
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

/** The package that carries llama.cpp's source, and what the registry says its tarball hashes to. */
export const SOURCE_PACKAGE = {
  name: 'node-llama-cpp',
  version: '3.22.1',
  integrity:
    'sha512-bltIipuWmc123H7tMIgDGKSsSrhmhlQYeVUC48XTjVW7XGJJiJJyCdlTMzQ/LiWoPkGDpcL4FviDpgw7qfTiDw==',
}

const CMAKE_FLAGS = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DGGML_NATIVE=ON',
  '-DLLAMA_CURL=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_BUILD_SERVER=ON',
]

function cacheRoot() {
  return (
    process.env.TOLLGATE_ENGINE_CACHE ??
    join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tollgate', 'llama.cpp')
  )
}

/** Where the source package's bundle is unpacked, and the record of the engine built from it. */
function sourcePaths() {
  const dir = join(cacheRoot(), `${SOURCE_PACKAGE.name}-${SOURCE_PACKAGE.version}`)
  return { dir, bundle: join(dir, 'gitRelease.bundle'), built: join(dir, 'engine.json') }
}

/** Where the engine of `commit` lives (whether or not it is built yet). */
export function enginePaths(commit) {
  const dir = join(cacheRoot(), commit)
  return {
    commit,
    dir,
    source: join(dir, 'src'),
    build: join(dir, 'build'),
    server: join(dir, 'build', 'bin', 'llama-server'),
    model: join(dir, 'tiny-random-llama.gguf'),
    stamp: join(dir, 'ready.json'),
    log: join(dir, 'build.log'),
  }
}

/** The engine when it is ready, or null; builds nothing and needs no network. */
export function findEngine() {
  if (process.env.LLAMA_SERVER && process.env.LLAMA_MODEL) {
    return { server: process.env.LLAMA_SERVER, model: process.env.LLAMA_MODEL }
  }
  let built
  try {
    built = JSON.parse(readFileSync(sourcePaths().built, 'utf8'))
  } catch {
    return null
  }
  const paths = enginePaths(built.commit)
  if (!existsSync(paths.stamp) || !existsSync(paths.server) || !existsSync(paths.model)) return null
  return { server: paths.server, model: paths.model }
}

/** Builds what is missing (under a lock, so concurrent callers build once) and returns the engine. */
export async function ensureEngine({ say = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const ready = findEngine()
  if (ready) return ready
  const root = cacheRoot()
  mkdirSync(root, { recursive: true })
  const lock = join(root, '.lock')
  await acquireLock(lock, say)
  try {
    const again = findEngine()
    if (again) return again
    const source = sourcePaths()
    if (!existsSync(source.bundle)) fetchBundle(source, say)
    const commit = bundleCommit(source.bundle)
    const paths = enginePaths(commit)
    mkdirSync(paths.dir, { recursive: true })
    say(`building llama-server ${commit.slice(0, 12)} in ${paths.dir} (log: ${paths.log})`)
    if (!existsSync(join(paths.source, 'CMakeLists.txt'))) {
      rmSync(`${paths.source}.tmp`, { recursive: true, force: true })
      run('git', ['clone', '--quiet', source.bundle, `${paths.source}.tmp`], { log: paths.log })
      run('git', ['-C', `${paths.source}.tmp`, 'checkout', '--quiet', commit], { log: paths.log })
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
    const record = `${JSON.stringify({ commit, server: paths.server, model: paths.model })}\n`
    writeFileSync(paths.stamp, record)
    writeFileSync(source.built, record)
    return { server: paths.server, model: paths.model }
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

/** `npm pack` of the pinned package, checked against its integrity, then only its bundle kept. */
function fetchBundle(source, say) {
  const { name, version, integrity } = SOURCE_PACKAGE
  say(`fetching ${name}@${version} for the llama.cpp source it ships`)
  const work = `${source.dir}.tmp`
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  run('npm', ['pack', `${name}@${version}`, '--pack-destination', work, '--silent'], { capture: true })
  const tarball = readdirSync(work).find((file) => file.endsWith('.tgz'))
  if (tarball === undefined) throw new Error(`npm pack ${name}@${version} wrote no tarball`)
  const digest = `sha512-${createHash('sha512')
    .update(readFileSync(join(work, tarball)))
    .digest('base64')}`
  if (digest !== integrity) {
    throw new Error(
      `${name}@${version} does not match its pinned integrity: got ${digest}, expected ${integrity}`,
    )
  }
  run('tar', ['-xzf', join(work, tarball), '-C', work, 'package/llama/gitRelease.bundle'])
  mkdirSync(source.dir, { recursive: true })
  renameSync(join(work, 'package/llama/gitRelease.bundle'), source.bundle)
  rmSync(work, { recursive: true, force: true })
}

/** The llama.cpp commit a bundle holds. */
function bundleCommit(bundle) {
  const heads = run('git', ['bundle', 'list-heads', bundle], { capture: true })
  const commit = /^([0-9a-f]{40}) HEAD$/m.exec(heads)?.[1] ?? /^([0-9a-f]{40}) /m.exec(heads)?.[1]
  if (!commit) throw new Error(`no commit found in ${bundle}`)
  return commit
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

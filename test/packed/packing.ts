import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

/**
 * What a user installs is the tarball `npm pack` makes from the built `dist`, not the sources the
 * other tests import through aliases and `paths`. These helpers pack the packages and lay out a
 * consumer project that sees only those tarballs.
 */

export const run = promisify(execFile)
export const root = fileURLToPath(new URL('../../', import.meta.url))
export const PACKAGES = ['core', 'fastify', 'express', 'cli'] as const
export type PackageDir = (typeof PACKAGES)[number]

export interface PackedFile {
  path: string
  size: number
}
export interface PackResult {
  name: string
  filename: string
  files: PackedFile[]
}

export interface Manifest {
  name: string
  version: string
  license?: string
  engines?: { node?: string }
  repository?: { type?: string; url?: string; directory?: string }
  bin?: Record<string, string>
  exports?: Record<string, string | Record<string, string>>
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  files?: string[]
}

export function packageRoot(pkg: PackageDir): string {
  return join(root, 'packages', pkg)
}

export async function manifest(pkg: PackageDir): Promise<Manifest> {
  return JSON.parse(await readFile(join(packageRoot(pkg), 'package.json'), 'utf8')) as Manifest
}

/** The tests read `dist`, which `npm test` builds first; alone, they say what is missing. */
export function assertBuilt(): void {
  for (const pkg of PACKAGES) {
    if (!existsSync(join(packageRoot(pkg), 'dist', 'index.js'))) {
      throw new Error(`packages/${pkg}/dist is missing: run \`npm run build\` first`)
    }
  }
}

async function npmPack(pkg: PackageDir, args: string[]): Promise<PackResult> {
  // --ignore-scripts: packing must not rebuild `dist` while other tests read it.
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', ...args], {
    cwd: packageRoot(pkg),
    maxBuffer: 16 * 1024 * 1024,
  })
  const results = JSON.parse(stdout) as PackResult[]
  const result = results[0]
  if (!result) throw new Error(`npm pack of packages/${pkg} printed no result`)
  return result
}

export function packDryRun(pkg: PackageDir): Promise<PackResult> {
  return npmPack(pkg, ['--dry-run'])
}

export interface Consumer {
  dir: string
  remove: () => Promise<void>
}

/**
 * A scratch project with the packed tarballs unpacked into its node_modules, as `npm install` of
 * the tarballs would lay them out, commands linked in node_modules/.bin. Their dependencies, and what the consumer itself would install
 * (the frameworks, their types, TypeScript), are links into the repository's node_modules, so the
 * run needs no network; anything else (an undeclared dependency, a file left out of `files`) is
 * missing, as it would be for a user.
 */
export async function createConsumer(fixtures: string): Promise<Consumer> {
  assertBuilt()
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-consumer-'))
  const remove = () => rm(dir, { recursive: true, force: true })
  try {
    const tarballs = join(dir, 'tarballs')
    await mkdir(tarballs)
    const wanted = new Set(['fastify', 'express', '@types/express', '@types/node', 'typescript'])
    for (const pkg of PACKAGES) {
      const packed = await npmPack(pkg, ['--pack-destination', tarballs])
      const target = join(dir, 'node_modules', packed.name)
      await mkdir(target, { recursive: true })
      await run('tar', ['-xzf', join(tarballs, packed.filename), '-C', target, '--strip-components=1'])
      const m = await manifest(pkg)
      for (const [command, path] of Object.entries(m.bin ?? {})) {
        // As npm links a command: a symlink to the shipped file, which runs through its shebang.
        const bin = join(dir, 'node_modules', '.bin')
        await mkdir(bin, { recursive: true })
        await symlink(join('..', packed.name, path), join(bin, command))
      }
      for (const dep of [
        ...Object.keys(m.dependencies ?? {}),
        ...Object.keys(m.optionalDependencies ?? {}),
        ...Object.keys(m.peerDependencies ?? {}),
      ]) {
        if (!dep.startsWith('@tollgate/')) wanted.add(dep)
      }
    }
    for (const dep of wanted) {
      const source = join(root, 'node_modules', dep)
      if (!existsSync(source)) throw new Error(`the repository has no node_modules/${dep} to link`)
      const link = join(dir, 'node_modules', dep)
      await mkdir(join(link, '..'), { recursive: true })
      await symlink(source, link, 'dir')
    }
    await cp(fixtures, dir, { recursive: true })
    await writeFile(
      join(dir, 'package.json'),
      `${JSON.stringify({ name: 'tollgate-consumer', private: true, type: 'module' }, null, 2)}\n`,
    )
    return { dir, remove }
  } catch (err) {
    await remove()
    throw err
  }
}

import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, posix, relative } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  assertBuilt,
  type Manifest,
  manifest,
  PACKAGES,
  type PackageDir,
  type PackResult,
  packageRoot,
  packDryRun,
} from './packing.js'

/** Every file under a directory, as package-relative posix paths. */
function walk(pkg: PackageDir, dir: string): string[] {
  const base = packageRoot(pkg)
  const out: string[] = []
  const visit = (abs: string) => {
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      const path = join(abs, entry.name)
      if (entry.isDirectory()) visit(path)
      else out.push(relative(base, path).split('\\').join('/'))
    }
  }
  if (existsSync(join(base, dir))) visit(join(base, dir))
  return out.sort()
}

/** What one source file must become in the tarball. */
function emitted(source: string): string[] {
  const stem = source.replace(/^src\//, 'dist/').replace(/\.ts$/, '')
  return [`${stem}.js`, `${stem}.js.map`, `${stem}.d.ts`, `${stem}.d.ts.map`]
}

/** Export targets, flattened over conditions. */
function exportTargets(m: Manifest, subpath: string): string[] {
  const entry = m.exports?.[subpath]
  if (entry === undefined) return []
  return typeof entry === 'string' ? [entry] : Object.values(entry)
}

describe.each(PACKAGES)('npm pack of packages/%s', (pkg) => {
  let packed: PackResult
  let files: Set<string>
  let m: Manifest

  beforeAll(async () => {
    assertBuilt()
    packed = await packDryRun(pkg)
    files = new Set(packed.files.map((f) => f.path))
    m = await manifest(pkg)
  }, 60_000)

  it('ships the license, a readme and the manifest a user needs', () => {
    for (const file of ['LICENSE', 'README.md', 'package.json']) expect(files).toContain(file)
    const license = readFileSync(join(packageRoot(pkg), 'LICENSE'), 'utf8')
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} the tollgate authors\n/)
    expect(m.license).toBe('MIT')
    expect(m.repository).toEqual({
      type: 'git',
      url: 'git+https://github.com/tollgate-dev/tollgate.git',
      directory: `packages/${pkg}`,
    })
    expect(m.engines?.node).toBe('>=20.19')
    const readme = readFileSync(join(packageRoot(pkg), 'README.md'), 'utf8')
    expect(readme).toContain(`npm install @tollgate/${pkg === 'core' ? 'fastify' : pkg}`)
  })

  it('ships every built file of every source file, and nothing else', () => {
    const sources = walk(pkg, 'src')
    // A hand-written .d.ts in src ships as it is; tsc emits nothing for it.
    const compiled = sources.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    expect(compiled.length).toBeGreaterThan(0)
    // bin/ holds plain JavaScript (the command's launcher), shipped as it is.
    const launchers = walk(pkg, 'bin')
    expect(launchers).toEqual(Object.values(m.bin ?? {}).map((path) => posix.normalize(path)))
    const expected = new Set([
      'LICENSE',
      'README.md',
      'package.json',
      ...launchers,
      ...sources,
      ...compiled.flatMap(emitted),
    ])
    // A file in dist without a source (left from a deleted module) or a test file would be listed
    // here; a source without its build output would be missing.
    expect([...files].sort()).toEqual([...expected].sort())
  })

  it('has source maps whose sources are in the tarball', () => {
    const maps = [...files].filter((f) => f.endsWith('.map'))
    expect(maps.length).toBeGreaterThan(0)
    for (const map of maps) {
      const parsed = JSON.parse(readFileSync(join(packageRoot(pkg), map), 'utf8')) as { sources: string[] }
      for (const source of parsed.sources) {
        const resolved = posix.normalize(posix.join(posix.dirname(map), source))
        expect(files, `${map} points at ${source}`).toContain(resolved)
      }
    }
  })

  it('exports for import and require, with types, only files it ships', () => {
    // `default` (not `import`) is what lets require() load the ESM build on Node >= 20.19.
    expect(m.exports?.['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' })
    for (const subpath of Object.keys(m.exports ?? {})) {
      // `./internal` is core's adapter plumbing; its module may not exist in every build yet.
      if (subpath === './internal' && !existsSync(join(packageRoot(pkg), 'src', 'internal.ts'))) continue
      for (const target of exportTargets(m, subpath)) {
        expect(files, `exports["${subpath}"] → ${target}`).toContain(posix.normalize(target))
      }
    }
  })

  it('ships the file of every command it declares', () => {
    for (const [command, path] of Object.entries(m.bin ?? {})) {
      expect(files, `bin.${command} → ${path}`).toContain(posix.normalize(path))
      const text = readFileSync(join(packageRoot(pkg), path), 'utf8')
      expect(text.startsWith('#!/usr/bin/env node\n'), `${path} starts with a node shebang`).toBe(true)
    }
  })

  it('declares every package its built code imports', () => {
    // An optional dependency (zeromq: a native module, loaded only when a feature needs it) is installed by default too.
    const declared = new Set([
      ...Object.keys(m.dependencies ?? {}),
      ...Object.keys(m.optionalDependencies ?? {}),
      ...Object.keys(m.peerDependencies ?? {}),
    ])
    const imported = new Set<string>()
    for (const file of files) {
      if (!/\.(js|d\.ts)$/.test(file)) continue
      const text = readFileSync(join(packageRoot(pkg), file), 'utf8')
      for (const match of text.matchAll(/(?:from |import\(|require\()'([^'.][^']*)'/g)) {
        const spec = match[1] as string
        if (spec.startsWith('node:')) continue
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : (spec.split('/')[0] as string)
        imported.add(name === 'express' && file.endsWith('.d.ts') ? '@types/express' : name)
      }
    }
    for (const name of imported) expect(declared, `${name} is imported`).toContain(name)
  })
})

import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { type Document, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml'
import { ConfigError } from './config-error.js'
import { interpolate } from './interpolate.js'

export type ConfigPath = readonly (string | number)[]

/** `backends[1].url`: a path as the plugin's own option errors spell it. */
export function formatPath(path: ConfigPath): string {
  let text = ''
  for (const part of path) text += typeof part === 'number' ? `[${part}]` : text === '' ? part : `.${part}`
  return text
}

/**
 * One parsed config file: its plain value (with `${VAR}` replaced) and, for error messages,
 * where each value was written and whether it came from the environment (then it is never shown).
 */
export class ConfigSource {
  readonly value: unknown
  readonly #doc: Document
  readonly #lines = new LineCounter()
  readonly #name: string
  readonly #fromEnvironment = new Set<Node>()

  constructor(text: string, name: string, env: NodeJS.ProcessEnv) {
    this.#name = name
    this.#doc = parseDocument(text, { lineCounter: this.#lines, prettyErrors: false, uniqueKeys: true })
    // At the parser's own position (linePos is only filled in with prettyErrors); one error
    // often comes as several messages at one place (an unclosed map and its sequence): the first says it.
    const problems: string[] = []
    const seen = new Set<string>()
    for (const error of this.#doc.errors) {
      const { line, col } = this.#lines.linePos(error.pos[0])
      if (seen.has(`${line}:${col}`)) continue
      seen.add(`${line}:${col}`)
      problems.push(`${name}:${line}:${col}: ${error.message.split('\n')[0]}`)
    }
    if (problems.length > 0) throw new ConfigError(problems)
    problems.push(
      ...interpolate(
        this.#doc.contents,
        env,
        (node) => this.#fromEnvironment.add(node),
        (node, m) => this.at(node, m),
      ),
    )
    if (problems.length > 0) throw new ConfigError(problems)
    this.value = this.#doc.toJS({ maxAliasCount: 100 }) ?? {}
  }

  static read(file: string, env: NodeJS.ProcessEnv): ConfigSource {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (error) {
      throw new ConfigError([
        `${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      ])
    }
    return new ConfigSource(text, basename(file), env)
  }

  /** `gateway.yaml:12:5: message`, at the node's first character. */
  at(node: Node | null | undefined, message: string): string {
    const offset = node?.range?.[0]
    if (offset === undefined) return `${this.#name}: ${message}`
    const { line, col } = this.#lines.linePos(offset)
    return `${this.#name}:${line}:${col}: ${message}`
  }

  /** The message placed at the value under `path`, or at its nearest written ancestor. */
  atPath(path: ConfigPath, message: string, { key = false } = {}): string {
    return this.at(this.nodeAt(path, key), message)
  }

  /** The YAML node of `path` (its key node with `key`), or the deepest ancestor that exists. */
  nodeAt(path: ConfigPath, key = false): Node | null {
    let node: unknown = this.#doc.contents
    for (let i = 0; i < path.length; i++) {
      const part = path[i]
      if (isMap(node)) {
        const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === part)
        if (pair === undefined) return node
        if (key && i === path.length - 1) return pair.key as Node
        node = pair.value
      } else if (isSeq(node) && typeof part === 'number' && node.items[part] !== undefined) {
        node = node.items[part]
      } else {
        break
      }
    }
    return (node as Node | null) ?? null
  }

  /** True when the value under `path` (or anything inside it) came from an environment variable. */
  fromEnvironment(path: ConfigPath): boolean {
    const node = this.nodeAt(path)
    if (node === null) return false
    if (this.#fromEnvironment.has(node)) return true
    const [start, , end] = node.range ?? [0, 0, 0]
    for (const hidden of this.#fromEnvironment) {
      const offset = hidden.range?.[0] ?? -1
      if (offset >= start && offset < end) return true
    }
    return false
  }
}

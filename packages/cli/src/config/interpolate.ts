import { type Node, visit } from 'yaml'

// `${NAME}` or `${NAME:-fallback}`; `$${` writes a literal `${`.
const REFERENCE = /\$(\$)?\{([^}]*)\}/g
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Replaces `${VAR}` in every string scalar of the document from `env`, in place. Returns one
 * problem per missing or malformed reference; a replaced scalar is reported to `hide`, so no
 * error message ever shows a value that came from the environment (it may be a secret).
 */
export function interpolate(
  root: Node | null,
  env: NodeJS.ProcessEnv,
  hide: (node: Node) => void,
  at: (node: Node, message: string) => string,
): string[] {
  const problems: string[] = []
  if (root === null) return problems
  visit(root, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return
      let replaced = false
      const text = node.value.replace(REFERENCE, (whole, escaped: string | undefined, inner: string) => {
        if (escaped) return whole.slice(1)
        const split = inner.indexOf(':-')
        const name = split === -1 ? inner : inner.slice(0, split)
        if (!NAME.test(name)) {
          problems.push(
            at(node, `"\${${inner}}" is not a variable reference; write \${NAME} or \${NAME:-default}`),
          )
          return whole
        }
        const value = env[name]
        replaced = true
        if (value !== undefined && value !== '') return value
        if (split !== -1) return inner.slice(split + 2)
        problems.push(at(node, `environment variable ${name} is not set`))
        return whole
      })
      node.value = text
      if (replaced) hide(node)
    },
  })
  return problems
}

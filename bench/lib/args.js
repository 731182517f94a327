/**
 * A numeric `--name value` option of this process's command line, or `fallback` when absent.
 * @param {string} name
 * @param {number} fallback
 * @returns {number}
 */
export function numberOption(name, fallback) {
  const args = process.argv.slice(2)
  const at = args.indexOf(`--${name}`)
  return at === -1 ? fallback : Number(args[at + 1])
}

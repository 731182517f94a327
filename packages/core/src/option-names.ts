/**
 * An option-name list checked against its options type: `satisfies` keeps out names the type
 * does not have, and the intersection below fails to compile when the type has a key the list
 * leaves out (the error names it), so a new option cannot be forgotten by the unknown-key check.
 *
 *   const NAMES = optionNames<QueueOptions>()(['size', 'timeoutMs', 'retryAfterMs'])
 */
export function optionNames<T>() {
  return <const N extends readonly (keyof T & string)[]>(
    names: N &
      ([Exclude<keyof T, N[number]>] extends [never] ? unknown : { missing: Exclude<keyof T, N[number]> }),
  ): N => names
}

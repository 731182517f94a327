import { topLevelFields } from './json-fields.js'

/**
 * The body with its top-level `model` value replaced by `name`, or the body itself when it has
 * no top-level `model` string (then there is nothing to rename). One scan of the bytes, no parse.
 */
export function renameModel(body: Buffer, name: string): Buffer {
  let fields: ReturnType<typeof topLevelFields>
  try {
    fields = topLevelFields(body)
  } catch {
    return body
  }
  if (fields.modelStart < 0) return body
  return Buffer.concat([
    body.subarray(0, fields.modelStart),
    Buffer.from(JSON.stringify(name)),
    body.subarray(fields.modelEnd),
  ])
}

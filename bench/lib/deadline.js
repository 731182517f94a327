/**
 * A request's deadline as a signal that a timer of ours aborts; `clear()` it when the request
 * is over. Not `AbortSignal.timeout`: on Node 20 that signal is held only weakly and, once
 * garbage-collected, never fires, so a stuck request would hang the run.
 * @param {number} ms
 * @returns {{ signal: AbortSignal, clear: () => void }}
 */
export function requestDeadline(ms) {
  const controller = new AbortController()
  const timer = setTimeout(
    () => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')),
    ms,
  )
  return { signal: controller.signal, clear: () => clearTimeout(timer) }
}

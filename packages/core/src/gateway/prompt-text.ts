/**
 * The start of a request's prompt as one string, for prefix affinity: OpenAI chat `messages`,
 * completions `prompt`, or Responses `input`, in the order the server's chat template would put
 * them. Reading stops after `maxChars`: affinity only hashes that much, and a client's long prompt
 * must not cost the gateway more than that.
 */
export function promptTextOf(body: unknown, maxChars: number): string | undefined {
  if (body === null || typeof body !== 'object') return undefined
  const b = body as { messages?: unknown; prompt?: unknown; input?: unknown }
  let text: string
  if (Array.isArray(b.messages)) text = messagesText(b.messages, maxChars)
  else if (typeof b.prompt === 'string') text = b.prompt
  else if (Array.isArray(b.prompt) && typeof b.prompt[0] === 'string') text = b.prompt[0]
  else if (typeof b.input === 'string') text = b.input
  else if (Array.isArray(b.input)) text = messagesText(b.input, maxChars)
  else return undefined
  if (text.length > maxChars) text = text.slice(0, maxChars)
  return text === '' ? undefined : text
}

function messagesText(messages: readonly unknown[], maxChars: number): string {
  let text = ''
  for (const message of messages) {
    if (text.length >= maxChars) break
    if (message === null || typeof message !== 'object') continue
    const m = message as { role?: unknown; content?: unknown }
    // The role is part of the prefix: the same words as a system prompt and as a user turn are
    // different tokens after the chat template.
    text += `${typeof m.role === 'string' ? m.role : ''}\n`
    const content = m.content
    if (typeof content === 'string') text += content
    else if (Array.isArray(content)) {
      for (const part of content) {
        if (text.length >= maxChars) break
        const t = part !== null && typeof part === 'object' ? (part as { text?: unknown }).text : undefined
        if (typeof t === 'string') text += t
      }
    }
    text += '\n'
  }
  return text
}

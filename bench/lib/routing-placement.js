/**
 * Where `prefix-affinity` puts new conversations under light load: twelve conversations, each with
 * its own system prompt, opened one after another on fresh servers, then three more turns of each,
 * one request at a time. Reports how many conversations each server got and how many later turns
 * went back to the server of their first turn.
 */
import { request } from 'undici'
import { pct, table } from './markdown.js'
import { BACKENDS, CONFIGS, conversationTexts, startBackend, startGateway } from './routing-workload.js'

const CONVERSATIONS = 12
const LATER_TURNS = 3

async function ask(url, conversation, turn) {
  const messages = [{ role: 'system', content: conversation.system }]
  for (let t = 0; t < turn; t++)
    messages.push(
      { role: 'user', content: conversation.turns[t].user },
      { role: 'assistant', content: conversation.turns[t].assistant },
    )
  messages.push({ role: 'user', content: conversation.turns[turn].user })
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'fake-model', max_tokens: 8, messages }),
  })
  await res.body.dump()
  if (res.statusCode !== 200) throw new Error(`placement: HTTP ${res.statusCode}`)
  return String(res.headers['x-backend'])
}

export async function placementPhase() {
  const config = CONFIGS.find((c) => c.id === 'prefix-affinity')
  const backends = await Promise.all(BACKENDS.map(startBackend))
  const gateway = await startGateway(
    config,
    backends.map((b) => b.ready),
  )
  const url = `http://127.0.0.1:${gateway.port}/v1/chat/completions`
  const texts = conversationTexts(21, 'Placement').slice(0, CONVERSATIONS)
  try {
    const home = []
    for (const conversation of texts) home.push(await ask(url, conversation, 0))
    let atHome = 0
    for (let turn = 1; turn <= LATER_TURNS; turn++)
      for (const [c, conversation] of texts.entries())
        if ((await ask(url, conversation, turn)) === home[c]) atHome++
    const opened = Object.fromEntries(BACKENDS.map((b) => [b.name, home.filter((h) => h === b.name).length]))
    return { opened, affinity: atHome / (CONVERSATIONS * LATER_TURNS) }
  } finally {
    await gateway.stop()
    await Promise.all(backends.map((b) => b.stop()))
  }
}

export function placementReport(result) {
  return [
    '### New conversations under light load',
    '',
    `${CONVERSATIONS} conversations opened one after another on fresh servers (prefix-affinity, vLLM metrics), ` +
      `then ${LATER_TURNS} more turns of each, one request at a time.`,
    '',
    table(
      ['', ...BACKENDS.map((b) => `${b.name} (weight ${b.capacity})`), 'later turns at home'],
      [['conversations opened', ...BACKENDS.map((b) => String(result.opened[b.name])), pct(result.affinity)]],
    ),
    '',
  ].join('\n')
}

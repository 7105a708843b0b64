/**
 * The bare relay: the least a WebSocket LLM relay can do, as a baseline for the gateway's
 * throughput. Per socket it keeps the chat history in memory, and on `response.create` streams
 * the `openai` SDK's chat completion, sending one small JSON frame per delta. No validation,
 * no persistence, no fan-out, no resume. It speaks just enough of the Realtime events for the
 * load generator's client: `session.created`, `response.output_text.delta`, `response.done`.
 *
 * Upstream: the `upstream` query parameter (an SDK base URL). Listens on 127.0.0.1, on the port
 * in argv[2]; prints `READY <port>`; SIGTERM stops it.
 */
import OpenAI from 'openai'
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import { WebSocketServer, type WebSocket } from 'ws'

const clients = new Map<string, OpenAI>()

function clientFor (baseURL: string): OpenAI {
  let client = clients.get(baseURL)
  if (client === undefined) {
    client = new OpenAI({ baseURL, apiKey: 'sk-test-not-real', maxRetries: 0, timeout: 60_000 })
    clients.set(baseURL, client)
  }
  return client
}

async function respond (socket: WebSocket, client: OpenAI, messages: ChatCompletionMessageParam[]): Promise<void> {
  let text = ''
  try {
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true, stream_options: { include_usage: true } })
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content
      if (typeof delta !== 'string' || delta === '') continue
      text += delta
      socket.send(JSON.stringify({ type: 'response.output_text.delta', delta }))
    }
    messages.push({ role: 'assistant', content: text })
    socket.send('{"type":"response.done","response":{"status":"completed"}}')
  } catch (err) {
    socket.send(JSON.stringify({ type: 'error', error: { message: err instanceof Error ? err.message : String(err) } }))
  }
}

const port = Number(process.argv[2] ?? '0')
const server = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false })
server.on('connection', (socket, request) => {
  const upstream = new URL(request.url ?? '/', 'http://relay').searchParams.get('upstream')
  if (upstream === null) {
    socket.close(1008, 'upstream query parameter missing')
    return
  }
  const client = clientFor(upstream)
  const messages: ChatCompletionMessageParam[] = []
  socket.on('message', (data: Buffer) => {
    const event = JSON.parse(data.toString('utf8')) as { type?: string, item?: { content?: Array<{ text?: string }> } }
    if (event.type === 'conversation.item.create') messages.push({ role: 'user', content: event.item?.content?.[0]?.text ?? '' })
    else if (event.type === 'response.create') respond(socket, client, messages).catch(() => socket.terminate())
  })
  socket.send('{"type":"session.created"}')
})
server.on('listening', () => {
  const address = server.address()
  process.stdout.write(`READY ${typeof address === 'object' && address !== null ? address.port : port}\n`)
})
const stop = (): void => {
  for (const socket of server.clients) socket.terminate()
  server.close(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)

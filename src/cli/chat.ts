/**
 * `tokenwire chat`: the chat in a terminal, for servers without a browser. Built on the client
 * library, so it reconnects and resumes like the page does; replies stream as they are written,
 * tool calls are shown as they happen, and replies from other devices on the same conversation
 * appear too. Reads lines from `input`, writes to `output`: on a terminal with a prompt that
 * output arriving meanwhile does not garble; piped, as a plain transcript.
 */
import { clearLine, createInterface, cursorTo } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import { TokenwireClient, responseError, type ClientError, type ConnectionStatus, type Reply, type WebSocketConstructorLike } from '../client/index.js'
import type { ServerEvent } from '../protocol/events.js'

export interface ChatOptions {
  /** The gateway: `ws(s)://host:port/v1/realtime`, or just `http(s)://host:port`. */
  readonly url: string
  readonly apiKey?: string
  readonly model?: string
  /** Resume this conversation (its history is printed first). */
  readonly conversationId?: string
  readonly input: Readable
  readonly output: Writable
  readonly WebSocket: WebSocketConstructorLike
  /** Reconnect backoff ceiling of the first retry, in ms (tests make it short). */
  readonly baseDelayMs?: number
  /** Ends the chat at once, without waiting for a reply in flight. */
  readonly signal?: AbortSignal
}

/** Attempts to reach a gateway that never answered before giving up (once connected, it retries for ever). */
const FIRST_CONNECT_ATTEMPTS = 4

const HELP = [
  'Commands: /stop (or Ctrl+C) stops the reply · /new starts a new conversation · /id shows the',
  'conversation id · /help · /quit (or Ctrl+D)'
].join('\n')

/** The Realtime endpoint for what a user typed: a full ws(s) URL, or a gateway's base URL. */
export function realtimeUrl (given: string): string {
  const url = new URL(given)
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/realtime'
  url.protocol = url.protocol.replace(/^http/, 'ws')
  return url.toString()
}

/** Runs a chat until the user quits or the input ends. Resolves the exit code: 0, or 1 if the connection failed for good. */
export async function runChat (options: ChatOptions): Promise<number> {
  const { output } = options
  const url = realtimeUrl(options.url)
  const terminal = (output as Writable & { isTTY?: boolean }).isTTY === true
  const dim = (text: string) => terminal ? `\u001b[2m${text}\u001b[22m` : text
  const bold = (text: string) => terminal ? `\u001b[1m${text}\u001b[22m` : text
  const write = (text: string) => { output.write(text) }
  const rl = createInterface({ input: options.input, output, terminal, prompt: `${bold('you')} › ` })

  let client = open(options.conversationId)
  /** What the last thing written was, so each piece starts on a fresh line when needed. */
  let atLineStart = true
  let busy = false
  let current: Reply | undefined
  let failed = false
  let wasOpen = false
  let promptShown = false
  let closing = false
  const showPrompt = () => {
    if (!terminal || closing || busy) return
    rl.prompt(true) // redraws what the user had typed
    promptShown = true
  }
  /** Makes room for output: the prompt line is cleared, to be drawn again after. */
  const takeScreen = (): boolean => {
    if (!promptShown) return false
    promptShown = false
    clearLine(output, 0)
    cursorTo(output, 0)
    atLineStart = true
    return true
  }
  const line = (text: string) => {
    const hadPrompt = takeScreen()
    write(`${atLineStart ? '' : '\n'}${text}\n`)
    atLineStart = true
    if (hadPrompt) showPrompt()
  }

  function open (conversationId: string | undefined): TokenwireClient {
    const c = new TokenwireClient({
      url,
      WebSocket: options.WebSocket,
      ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
      ...(options.model === undefined ? {} : { model: options.model }),
      ...(conversationId === undefined ? {} : { conversationId }),
      ...(options.baseDelayMs === undefined ? {} : { reconnect: { baseDelayMs: options.baseDelayMs } })
    })
    c.on('status', showStatus)
    c.on('conversation', (id) => line(dim(`conversation ${id} · resume it with --conversation ${id}`)))
    c.on('event', render)
    c.on('error', showError)
    c.connect().catch(() => {}) // shown by showError
    return c
  }

  function showStatus (status: ConnectionStatus): void {
    if (status.state === 'reconnecting' && !wasOpen && status.attempt >= FIRST_CONNECT_ATTEMPTS) {
      // Never reached it: probably the wrong address, or no gateway running. Say so and stop.
      line(`cannot reach the gateway at ${url} (is it running? --url sets the address)`)
      failed = true
      client.close()
      rl.close()
      return
    }
    if (status.state === 'reconnecting' && status.retryInMs !== undefined) {
      const wait = `${(status.retryInMs / 1000).toFixed(1)} s`
      line(dim(wasOpen ? `[connection lost (${status.code ?? '?'}); reconnecting in ${wait}]` : `[cannot connect yet; retrying in ${wait}]`))
    }
    if (status.state === 'open') {
      if (wasOpen) line(dim('[reconnected]'))
      wasOpen = true
    }
  }

  function showError (error: ClientError): void {
    line(`${error.fatal ? 'disconnected' : 'error'}: ${error.message}${error.code === 'invalid_api_key' ? ' (pass --key)' : ''}`)
    if (error.fatal) {
      failed = true
      rl.close()
    }
  }

  function render (event: ServerEvent): void {
    switch (event.type) {
      case 'conversation.item.done': {
        const item = event.item
        // History on attach, and messages sent from other devices.
        if (item.type === 'message' && item.role === 'user' && !mineItem(item.id)) {
          line(`${bold('you')} ${dim('(elsewhere)')} › ${item.content.map((part) => 'text' in part ? part.text ?? '' : '[image]').join(' ')}`)
        } else if (item.type === 'message' && item.role === 'assistant' && !seenStreaming.has(item.id ?? '')) {
          line(`${bold('assistant')} › ${item.content.map((part) => 'text' in part ? part.text ?? '' : '').join('')}`)
        } else if (item.type === 'function_call_output') {
          line(dim(`  ↳ ${item.output.length > 200 ? `${item.output.slice(0, 200)}…` : item.output}`))
        }
        return
      }
      case 'response.output_item.added':
        if (event.item.type === 'message' && event.item.id !== undefined) {
          seenStreaming.add(event.item.id)
          takeScreen()
          if (!atLineStart) write('\n')
          write(`${bold('assistant')} › `)
          atLineStart = false
        }
        return
      case 'response.output_text.delta':
        if (atLineStart) write(dim('… ')) // the reply goes on after a status line
        write(event.delta)
        atLineStart = event.delta.endsWith('\n')
        return
      case 'response.function_call_arguments.done':
        line(dim(`  ⚙ ${event.name}(${event.arguments})`))
        return
      case 'response.done': {
        const status = event.response.status
        if (status === 'cancelled') line(dim('[stopped]'))
        else if (status === 'failed' || status === 'incomplete') {
          line(`[${status}: ${responseError(event.response)?.code ?? 'no reason given'}]`)
        } else if (!atLineStart) {
          write('\n')
          atLineStart = true
        }
        showPrompt()
        break
      }
      default:
    }
  }

  const sentItems = new Set<string>()
  const seenStreaming = new Set<string>()
  const mineItem = (id: string | undefined) => id !== undefined && sentItems.has(id)

  function send (text: string): void {
    if (!terminal) line(`${bold('you')} › ${text}`) // a transcript: the input is not echoed
    busy = true
    const reply = client.send(text)
    current = reply
    if (reply.inputItemId !== undefined) sentItems.add(reply.inputItemId)
    reply.done.then((result) => {
      if (result.status === 'failed' && result.responses.length === 0) line(`[not answered: ${result.error?.message ?? 'failed'}]`)
      busy = false
      current = undefined
      showPrompt()
    }, () => {})
  }

  rl.on('line', (raw) => {
    const text = raw.trim()
    promptShown = false
    atLineStart = true
    if (text === '') return showPrompt()
    switch (text) {
      case '/quit': return rl.close()
      case '/help': line(HELP); return showPrompt()
      case '/id': line(client.conversationId ?? '(not connected yet)'); return showPrompt()
      case '/stop': client.cancel(); return // this client's turns and whatever runs in the conversation
      case '/new':
        client.close()
        wasOpen = false
        client = open(undefined)
        return showPrompt()
      default:
        if (busy) {
          line(dim('(a reply is being written: wait for it, or /stop)'))
          return
        }
        send(text)
    }
  })
  rl.on('SIGINT', () => {
    if (busy) client.cancel()
    else rl.close()
  })

  line(dim(`Tokenwire chat · ${url} · /help for commands`))
  showPrompt()
  const aborted = new Promise<void>((resolve) => {
    if (options.signal?.aborted === true) resolve()
    options.signal?.addEventListener('abort', () => resolve(), { once: true })
  })
  await Promise.race([new Promise<void>((resolve) => rl.once('close', resolve)), aborted])
  closing = true
  rl.close()
  // Input ended (or /quit): let a reply in flight finish first, as a piped `echo hi | tokenwire chat` expects.
  if (current !== undefined && !failed) await Promise.race([current.done, aborted])
  client.close()
  if (!atLineStart) write('\n')
  return failed ? 1 : 0
}

/** The terminal client (src/cli/chat.ts) against a real gateway, through in-memory streams. */
import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { runChat, type ChatOptions } from '../../src/cli/chat.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'

const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function gateway (env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startGateway({ env })
  cleanups.push(async () => gw.close())
  return gw
}

/** A chat on in-memory streams: type lines, wait for output, collect the exit code. */
function chat (gw: TestGateway, options: Partial<ChatOptions> = {}, terminal = false) {
  const input = new PassThrough()
  const output = Object.assign(new PassThrough(), terminal ? { isTTY: true, columns: 100 } : {})
  let text = ''
  const waiters: Array<() => void> = []
  output.on('data', (chunk: Buffer) => {
    text += chunk.toString()
    for (const wake of waiters.splice(0)) wake()
  })
  const stop = new AbortController()
  const exit = runChat({ url: gw.origin.replace(/^ws/, 'http'), input, output, WebSocket, baseDelayMs: 20, signal: stop.signal, ...options })
  cleanups.push(async () => {
    stop.abort()
    return exit
  })
  return {
    exit,
    type: (line: string) => input.write(`${line}\n`),
    press: (keys: string) => input.write(keys),
    end: () => input.end(),
    get text () { return text },
    /** Resolves once the output so far contains `needle` (`count` times). */
    async waitFor (needle: string, count = 1): Promise<void> {
      while (text.split(needle).length - 1 < count) await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
}

describe('tokenwire chat', () => {
  it('answers piped input and exits 0 when the input ends', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'Hello from the terminal.', tokenDelayMs: 2 })
    const session = chat(gw)
    session.type('Hi there')
    session.end()
    expect(await session.exit).toBe(0)
    expect(session.text).toContain('assistant › Hello from the terminal.\n')
    expect(session.text).toMatch(/conversation conv_\S+ · resume it with --conversation conv_/)
    expect(session.text).toContain('/v1/realtime · /help for commands')
  })

  it('shows history on resume, tool calls as they happen, and handles its commands', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'First answer.' })
    const first = chat(gw)
    first.type('First question')
    first.end()
    await first.exit
    const conversationId = /conversation (conv_\S+)/.exec(first.text)?.[1] ?? ''

    gw.sim.enqueue(
      { toolCalls: [{ name: 'calculate', arguments: '{"expression":"6*7"}' }] },
      { text: 'It is 42.' },
      { text: `${'and on '.repeat(40)}and on.`, tokenDelayMs: 20 }
    )
    const session = chat(gw, { conversationId })
    await session.waitFor('assistant › First answer.')
    expect(session.text).toContain('you (elsewhere) › First question')
    session.type('/id')
    await session.waitFor(`${conversationId}\n`, 2)
    session.type('/help')
    await session.waitFor('Commands:')
    session.type('')
    session.type('What is 6*7?')
    await session.waitFor('It is 42.')
    expect(session.text).toContain('⚙ calculate({"expression":"6*7"})')
    expect(session.text).toMatch(/↳ \{"expression":"6\*7","result":42\}/)
    session.type('Keep going')
    await session.waitFor('and on')
    session.type('Are you still there?')
    await session.waitFor('(a reply is being written')
    session.type('/stop')
    await session.waitFor('[stopped]')
    session.type('/new')
    await session.waitFor('conversation conv_', 3)
    const ids = [...session.text.matchAll(/conversation (conv_\S+) ·/g)].map((m) => m[1])
    expect(ids[ids.length - 1]).not.toBe(conversationId)
    session.type('/quit')
    expect(await session.exit).toBe(0)
  })

  it('says when the connection drops and when it is back', async () => {
    const gw = await gateway()
    const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet']
    gw.sim.enqueue({ text: words.join(' '), tokenDelayMs: 20 })
    const session = chat(gw)
    session.type('Spell')
    await session.waitFor('assistant › alpha')
    for (const socket of gw.app.websocketServer.clients) socket.terminate()
    await session.waitFor('[reconnected]')
    await session.waitFor('juliet')
    expect(session.text).toMatch(/\[connection lost \(1006\); reconnecting in \d+\.\d s\]/)
    for (const word of words) expect(session.text.split(word).length - 1, word).toBe(1) // nothing lost, nothing twice
    expect(session.text).toContain('… ')
    session.end()
    expect(await session.exit).toBe(0)
  })

  it('on a terminal: a prompt that output arriving meanwhile does not garble, and Ctrl+C', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'Short.' }, { text: 'long '.repeat(100), tokenDelayMs: 20 }, { text: 'From elsewhere.' })
    const session = chat(gw, {}, true)
    await session.waitFor('\u001b[1myou\u001b[22m › ')
    session.type('Hello')
    await session.waitFor('Short.')
    await session.waitFor('you\u001b[22m › ', 2) // the prompt is back after the reply
    session.type('Talk a lot')
    await session.waitFor('long long')
    session.press('\u0003') // Ctrl+C while a reply streams: stops it
    await session.waitFor('[stopped]')
    // A message from another device while the prompt waits: the prompt line is cleared and drawn again.
    const conversationId = /conversation (conv_\S+) ·/.exec(session.text)?.[1] ?? ''
    const other = chat(gw, { conversationId })
    await other.waitFor('assistant › ')
    other.type('Hi from the other device')
    await session.waitFor('From elsewhere.')
    expect(session.text).toContain('\u001b[2K') // clearLine
    expect(session.text).toContain('(elsewhere)')
    session.press('\u0003') // Ctrl+C at the prompt: quits
    expect(await session.exit).toBe(0)
  })

  it('ends at once when aborted, even mid-reply', async () => {
    const gw = await gateway()
    gw.sim.enqueue({ text: 'slow '.repeat(200), tokenDelayMs: 20 })
    const stop = new AbortController()
    const input = new PassThrough()
    const output = new PassThrough()
    let text = ''
    output.on('data', (chunk: Buffer) => { text += chunk.toString() })
    const exit = runChat({ url: gw.url, input, output, WebSocket, signal: stop.signal })
    input.write('Go\n')
    const first = await gw.sim.nextRequest()
    stop.abort()
    expect(await exit).toBe(0)
    expect(text).toContain('Tokenwire chat')
    expect(first.outcome).toBeUndefined() // it did not wait for the reply, which is still being generated
  })

  it('exits 1 when the gateway will not have it, saying why', async () => {
    const gw = await gateway({ GATEWAY_API_KEYS: 'sk-test-not-real:acme' })
    const refused = chat(gw)
    expect(await refused.exit).toBe(1)
    expect(refused.text).toContain('disconnected: the gateway refused the API key (pass --key)')
    const unknown = chat(gw, { apiKey: 'sk-test-not-real', conversationId: 'conv_gone' })
    expect(await unknown.exit).toBe(1)
    expect(unknown.text).toContain('error: Conversation conv_gone was not found')
  })

  it('gives up, saying so, when no gateway ever answers', async () => {
    const gw = await gateway()
    await gw.close()
    const session = chat(gw, { baseDelayMs: 1 })
    session.type('Anyone?')
    expect(await session.exit).toBe(1)
    expect(session.text).toContain('[cannot connect yet; retrying in')
    expect(session.text).toContain(`cannot reach the gateway at ${gw.origin}/v1/realtime (is it running?`)
  })

  it('reports a reply that failed upstream', async () => {
    const gw = await gateway({ UPSTREAM_MAX_RETRIES: '0', MAX_ITEM_BYTES: '256' })
    gw.sim.enqueue({ failure: { kind: 'status', status: 500 } })
    const session = chat(gw)
    session.type('Hello?')
    await session.waitFor('[failed: upstream_unavailable]')
    session.type('x'.repeat(300))
    await session.waitFor('[not answered:')
    session.end()
    expect(await session.exit).toBe(0)
  })
})

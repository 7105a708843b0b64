/**
 * Issue 4: prompt chains from CHAINS_FILE stream step by step — intermediate steps out of
 * band, the last one into the conversation — with a server-side tool inside a step, a cancel
 * in the middle, and start-up failures that name the file and the entry.
 */
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { stopBackends, stores } from '../helpers/backends.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { createLogSink } from '../helpers/log-sink.js'
import { TestClient, textOf, userMessage } from '../helpers/ws-client.js'

let gw: TestGateway | undefined
const clients: TestClient[] = []
const dirs: string[] = []

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  gw = undefined
  await Promise.allSettled(dirs.splice(0).map(async (dir) => rm(dir, { recursive: true, force: true })))
})

afterAll(stopBackends)

async function file (name: string, content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tokenwire-chains-'))
  dirs.push(dir)
  const path = join(dir, name)
  await writeFile(path, content)
  return path
}

const exampleChains = new URL('../../chains/example.json', import.meta.url).pathname

describe.each(stores())('a prompt chain, on $name', ({ env }) => {
  it('streams each step, runs the tool inside the last one, and only the last answer joins the conversation', async () => {
    const chains = await file('chains.yaml', [
      'chains:',
      '  math:',
      '    steps:',
      '      - name: extract',
      '        instructions: Extract the numbers.',
      '        prompt: "Numbers in: {{input}}"',
      '      - name: query',
      '        prompt: "Make an expression from {{steps.extract}}"',
      '      - name: answer',
      '        prompt: "Compute {{steps.query}} for: {{input}}"',
      '        tools: [calculate]'
    ].join('\n'))
    gw = await startGateway({ env: { ...await env(), CHAINS_FILE: chains, BUILTIN_TOOLS: 'calculate' } })
    gw.sim.enqueue(
      { text: '6, 7' },
      { text: '6*7' },
      { toolCalls: [{ name: 'calculate', arguments: '{"expression":"6*7"}' }] },
      { text: 'The answer is 42.' }
    )
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    client.send(userMessage('what is six times seven?'))
    client.send({ type: 'response.create', response: { metadata: { chain: 'math' } } })
    const dones = []
    for (let i = 0; i < 4; i++) dones.push((await client.next('response.done'))['response'] as Record<string, any>)
    expect(dones.map((r) => [r['metadata'], r['status'], r['conversation_id'] !== undefined])).toEqual([
      [{ chain: 'math', step: 'extract' }, 'completed', false],
      [{ chain: 'math', step: 'query' }, 'completed', false],
      [{ chain: 'math', step: 'answer' }, 'completed', true],
      [{ chain: 'math', step: 'answer' }, 'completed', true]
    ])
    expect(textOf(client.events)).toBe('6, 76*7The answer is 42.')
    // Each step's prompt was rendered from the input and earlier steps.
    expect(gw.sim.requests.map((r) => r.body.messages.find((m) => m.role === 'user')?.content)).toEqual([
      'Numbers in: what is six times seven?',
      'Make an expression from 6, 7',
      'Compute 6*7 for: what is six times seven?',
      'Compute 6*7 for: what is six times seven?'
    ])
    expect(gw.sim.requests[0]?.body.messages[0]).toEqual({ role: 'system', content: 'Extract the numbers.' })
    expect(gw.sim.requests[2]?.body.tools?.map((t) => t.type === 'function' ? t.function.name : '')).toEqual(['calculate'])

    // The steps are in the conversation's event log: a client resuming from before the chain
    // (here on a new socket) gets every step again.
    const before = client.events.find((e) => e.type === 'conversation.item.done')
    const resumed = await TestClient.connect(`${gw.url}&conversation_id=${client.conversationId}&resume_after=${before?.event_id ?? ''}`)
    clients.push(resumed)
    const replayedSteps = []
    for (let i = 0; i < 4; i++) replayedSteps.push(((await resumed.next('response.done'))['response'] as Record<string, any>)['metadata']['step'])
    expect(replayedSteps).toEqual(['extract', 'query', 'answer', 'answer'])

    // The conversation holds the user message, the final step's call, its output and its answer.
    gw.sim.enqueue({ text: 'ok' })
    await client.ask('thanks')
    expect(gw.sim.requests[4]?.body.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user'])
  })

  it('runs the shipped example (extract → search query → summarize with an HTTP search tool)', async () => {
    const queries: unknown[] = []
    const search = createServer((req, res) => {
      let body = ''
      req.on('data', (chunk: Buffer) => { body += chunk.toString() })
      req.on('end', () => {
        queries.push(JSON.parse(body))
        res.end(JSON.stringify({ results: [{ title: 'Fjords of Norway', snippet: 'Geirangerfjord is a UNESCO site.' }] }))
      })
    })
    search.listen(0, '127.0.0.1')
    await once(search, 'listening')
    try {
      const tools = await file('tools.json', JSON.stringify([{
        name: 'search',
        description: 'Web search',
        parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
        url: `http://127.0.0.1:${(search.address() as AddressInfo).port}/search`
      }]))
      gw = await startGateway({ env: { CHAINS_FILE: exampleChains, TOOLS_FILE: tools } })
      gw.sim.enqueue(
        { text: 'Norway, fjords' },
        { text: 'best fjords in Norway' },
        { toolCalls: [{ name: 'search', arguments: '{"query":"best fjords in Norway"}' }] },
        { text: 'Geirangerfjord is a highlight.' }
      )
      const client = await TestClient.connect(gw.url)
      clients.push(client)
      client.send(userMessage('Which Norwegian fjords should I see?'))
      client.send({ type: 'response.create', response: { metadata: { chain: 'research' } } })
      const steps = []
      for (let i = 0; i < 4; i++) steps.push(((await client.next('response.done'))['response'] as Record<string, any>)['metadata']['step'])
      expect(steps).toEqual(['extract', 'query', 'summarize', 'summarize'])
      expect(queries).toEqual([{ query: 'best fjords in Norway' }])
      expect(textOf(client.events).endsWith('Geirangerfjord is a highlight.')).toBe(true)
    } finally {
      search.closeAllConnections()
      search.close()
    }
  })

  it('stops in the middle when cancelled: the step being generated ends cancelled, later steps never run', async () => {
    const chains = await file('chains.json', JSON.stringify({ chains: { three: { steps: [{ name: 'a', prompt: '{{input}}' }, { name: 'b', prompt: '{{steps.a}}' }, { name: 'c', prompt: '{{steps.b}}' }] } } }))
    gw = await startGateway({ env: { ...await env(), CHAINS_FILE: chains } })
    gw.sim.enqueue({ text: 'step a is done' }, { text: 'step b goes on and on', failure: { kind: 'stall', afterChunks: 2 } })
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    client.send(userMessage('go'))
    client.send({ type: 'response.create', response: { metadata: { chain: 'three' } } })
    const a = (await client.next('response.done'))['response'] as Record<string, any>
    expect(a).toMatchObject({ status: 'completed', metadata: { chain: 'three', step: 'a' } })
    await client.next('response.output_text.delta') // step b is streaming
    client.send({ type: 'response.cancel' })
    const b = (await client.next('response.done'))['response'] as Record<string, any>
    expect(b).toMatchObject({ status: 'cancelled', metadata: { chain: 'three', step: 'b' } })
    expect(await gw.sim.requests[1]?.ended).toBe('aborted')
    gw.sim.enqueue({ text: 'fresh' })
    expect(textOf(await client.ask('again'))).toBe('fresh')
    expect(gw.sim.requests).toHaveLength(3) // step c never ran
  })

  it('rejects an unknown chain name with the client event_id', async () => {
    gw = await startGateway()
    const client = await TestClient.connect(gw.url)
    clients.push(client)
    client.send(userMessage('hi'))
    client.send({ type: 'response.create', event_id: 'c1', response: { metadata: { chain: 'nope' } } })
    expect((await client.next('error'))['error']).toMatchObject({ code: 'invalid_value', param: 'response.metadata.chain', event_id: 'c1' })
  })
})

describe('bad chain definitions fail start-up, naming the file and the entry', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['later step', JSON.stringify({ chains: { c: { steps: [{ name: 'a', prompt: '{{steps.b}}' }, { name: 'b', prompt: 'x' }] } } }), /chain "c", step 1 \(a\): prompt: \{\{steps\.b\}\} names no earlier step/],
    ['unknown variable', JSON.stringify({ chains: { c: { steps: [{ name: 'a', prompt: '{{user}}' }] } } }), /step 1 \(a\): prompt: unknown template variable/],
    ['unclosed', JSON.stringify({ chains: { c: { steps: [{ name: 'a', prompt: 'hi {{input' }] } } }), /unclosed/],
    ['no steps', JSON.stringify({ chains: { c: { steps: [] } } }), /chain "c": "steps" must be a non-empty array/],
    ['not json', '{', /not valid JSON/]
  ]
  for (const [what, content, message] of cases) {
    it(what, async () => {
      const path = await file('chains.json', content)
      expect(() => loadConfig({ CHAINS_FILE: path })).toThrow(message)
      expect(() => loadConfig({ CHAINS_FILE: path })).toThrow(path)
    })
  }

  it('an unknown tool', async () => {
    const path = await file('chains.json', JSON.stringify({ chains: { c: { steps: [{ name: 'a', prompt: 'x', tools: ['ghost'] }] } } }))
    const config = loadConfig({ CHAINS_FILE: path, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' })
    await expect(buildApp({ config, logger: createLogSink().logger })).rejects.toThrow(/chain "c", step 1 \(a\): unknown tool "ghost"/)
  })
})

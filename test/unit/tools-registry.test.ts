import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { defineTool, ToolRegistry, type ServerTool, type ToolContext, type ToolResult } from '../../src/tools/registry.js'

const context = (signal: AbortSignal = new AbortController().signal): ToolContext => ({ signal, conversationId: 'conv_test', tenant: 'acme' })

const FailureOutput = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }) }, { additionalProperties: false })

/** The `{ error: { code, message } }` of a failed result. */
function errorOf (result: ToolResult): { code: string, message: string } {
  expect(result.ok).toBe(false)
  const parsed: unknown = JSON.parse(result.output)
  if (!Value.Check(FailureOutput, parsed)) throw new Error(`not a failure output: ${result.output}`)
  return parsed.error
}

/** A tool that resolves only when its signal aborts (and then rejects, like fetch does). */
function waitsForAbort (name: string, timeoutMs: number, seen: AbortSignal[] = []): ServerTool {
  return {
    name,
    description: 'never finishes on its own',
    parameters: { type: 'object' },
    timeoutMs,
    async execute (_args, { signal }) {
      seen.push(signal)
      return await new Promise<string>((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true })
      })
    }
  }
}

const search = defineTool({
  name: 'search',
  description: 'Searches things',
  parameters: Type.Object({
    query: Type.String({ minLength: 1 }),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 3 })),
    filters: Type.Optional(Type.Object({ tags: Type.Array(Type.String()) }))
  }, { additionalProperties: false }),
  timeoutMs: 1000,
  async execute (args, ctx) {
    return { args, tenant: ctx.tenant, conversationId: ctx.conversationId }
  }
})

describe('defineTool', () => {
  it('types execute arguments from the TypeBox schema', () => {
    defineTool({
      name: 'typed',
      description: 'typing only',
      parameters: Type.Object({ a: Type.String(), b: Type.Optional(Type.Number()) }),
      async execute (args) {
        expectTypeOf(args).toEqualTypeOf<{ a: string, b?: number }>()
        return args.a
      }
    })
    expectTypeOf(search).toEqualTypeOf<ServerTool>()
  })

  it('produces a ServerTool with a plain JSON Schema and a default timeout', () => {
    const tool = defineTool({ name: 'noop', description: 'does nothing', parameters: Type.Object({}), async execute () { return 'ok' } })
    expect(tool.timeoutMs).toBe(10_000)
    expect(JSON.parse(JSON.stringify(tool.parameters))).toEqual({ type: 'object', properties: {} })
    expect(search.parameters).toMatchObject({ type: 'object', required: ['query'], additionalProperties: false })
  })

  it('passes strings through and JSON.stringifies anything else', async () => {
    const registry = new ToolRegistry([
      defineTool({ name: 'text', description: 't', parameters: Type.Object({}), async execute () { return 'plain text' } }),
      defineTool({ name: 'number', description: 'n', parameters: Type.Object({}), async execute () { return 42 } }),
      defineTool({ name: 'nothing', description: 'u', parameters: Type.Object({}), async execute () { return undefined } })
    ])
    expect(await registry.call('text', '{}', context())).toEqual({ ok: true, output: 'plain text' })
    expect(await registry.call('number', '{}', context())).toEqual({ ok: true, output: '42' })
    expect(await registry.call('nothing', '{}', context())).toEqual({ ok: true, output: '' })
  })

  it('validates like the registry: formats are not checked, defaults are filled in', async () => {
    const when = defineTool({
      name: 'when',
      description: 'w',
      parameters: Type.Object({ at: Type.String({ format: 'date-time' }), unit: Type.Optional(Type.String({ default: 'ms' })) }),
      async execute (args) { return args }
    })
    expect(await new ToolRegistry([when]).call('when', '{"at":"not a date"}', context())).toEqual({ ok: true, output: '{"at":"not a date","unit":"ms"}' })
  })

  it('throws a TypeError naming the tool for a schema ajv cannot compile', () => {
    expect(() => defineTool({ name: 'dated', description: 'd', parameters: Type.Object({ at: Type.Date() }), async execute () { return '' } }))
      .toThrow(/tool "dated": invalid parameters schema/)
  })

  it('refuses arguments that do not match when called directly', async () => {
    await expect(search.execute({ query: 7 }, context())).rejects.toThrow(/do not match the parameters of search/)
  })
})

describe('ToolRegistry', () => {
  it('lists, gets and has its tools', () => {
    const registry = new ToolRegistry([search])
    expect(registry.list()).toEqual([search])
    expect(registry.get('search')).toBe(search)
    expect(registry.get('nope')).toBeUndefined()
    expect(registry.has('search')).toBe(true)
    expect(registry.has('nope')).toBe(false)
  })

  it('rejects duplicate names with a TypeError naming the tool', () => {
    expect(() => new ToolRegistry([search, search])).toThrow(TypeError)
    expect(() => new ToolRegistry([search, search])).toThrow(/"search" is registered twice/)
  })

  it('rejects a parameters schema ajv cannot compile, naming the tool', () => {
    const broken: ServerTool = { ...search, name: 'broken', parameters: { type: 'object', properties: { a: { type: 'not-a-type' } } } }
    expect(() => new ToolRegistry([broken])).toThrow(TypeError)
    expect(() => new ToolRegistry([broken])).toThrow(/tool "broken": invalid parameters schema/)
    const badRef: ServerTool = { ...search, name: 'bad_ref', parameters: { $ref: '#/definitions/missing' } }
    expect(() => new ToolRegistry([badRef])).toThrow(/tool "bad_ref"/)
  })

  it('rejects bad names and timeouts, naming the tool', () => {
    expect(() => new ToolRegistry([{ ...search, name: 'has space' }])).toThrow(/tool "has space": the name must match/)
    expect(() => new ToolRegistry([{ ...search, timeoutMs: 0 }])).toThrow(/tool "search": timeoutMs/)
  })

  it('compiles common user schemas: unknown keywords and formats, and the 2020-12 dialect', async () => {
    const registry = new ToolRegistry([
      { ...search, name: 'lenient', parameters: { type: 'object', properties: { email: { type: 'string', format: 'email', 'x-ui': 'wide' } }, required: ['email'] } },
      { ...search, name: 'modern', parameters: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { xs: { type: 'array', prefixItems: [{ type: 'number' }] } } } }
    ])
    expect(registry.list().map((tool) => tool.name)).toEqual(['lenient', 'modern'])
    expect(errorOf(await registry.call('modern', '{"xs":["a"]}', context())).message).toContain('arguments/xs/0 must be number')
  })

  it('runs a tool with validated arguments (defaults filled in) and the context', async () => {
    const registry = new ToolRegistry([search])
    const result = await registry.call('search', '{"query":"cats"}', context())
    expect(result.ok).toBe(true)
    expect(JSON.parse(result.output)).toEqual({ args: { query: 'cats', limit: 3 }, tenant: 'acme', conversationId: 'conv_test' })
  })

  it('treats empty arguments as an empty object', async () => {
    const registry = new ToolRegistry([defineTool({ name: 'noargs', description: 'n', parameters: Type.Object({}), async execute () { return 'ran' } })])
    expect(await registry.call('noargs', '', context())).toEqual({ ok: true, output: 'ran' })
    expect(await registry.call('noargs', '  ', context())).toEqual({ ok: true, output: 'ran' })
  })

  it('reports an unknown tool and lists the known ones', async () => {
    const error = errorOf(await new ToolRegistry([search]).call('lookup', '{}', context()))
    expect(error.code).toBe('unknown_tool')
    expect(error.message).toContain('"lookup"')
    expect(error.message).toContain('search')
  })

  it('reports invalid JSON', async () => {
    const error = errorOf(await new ToolRegistry([search]).call('search', '{"query": ', context()))
    expect(error.code).toBe('invalid_json')
    expect(error.message).toMatch(/^The arguments of search are not valid JSON/)
  })

  it('reports every schema violation with its path', async () => {
    const calls: unknown[] = []
    const spy: ServerTool = { ...search, async execute (args) { calls.push(args); return 'ran' } }
    const registry = new ToolRegistry([spy])
    const error = errorOf(await registry.call('search', JSON.stringify({ limit: 99, filters: { tags: ['a', 7] }, extra: true }), context()))
    expect(error.code).toBe('invalid_arguments')
    expect(error.message).toMatch(/^Invalid arguments for search: /)
    expect(error.message).toContain("arguments must have required property 'query'")
    expect(error.message).toContain('arguments/limit must be <= 10')
    expect(error.message).toContain('arguments/filters/tags/1 must be string')
    expect(error.message).toContain('arguments must NOT have additional properties ("extra")')
    expect(errorOf(await registry.call('search', '[1]', context())).message).toContain('arguments must be object')
    expect(calls).toEqual([])
  })

  it('times out a tool that waits for its signal, quickly, and aborts that signal', async () => {
    const seen: AbortSignal[] = []
    const registry = new ToolRegistry([waitsForAbort('slow', 20, seen)])
    const started = performance.now()
    const error = errorOf(await registry.call('slow', '{}', context()))
    expect(error).toEqual({ code: 'timeout', message: 'slow did not finish within its timeout of 20 ms' })
    expect(performance.now() - started).toBeLessThan(1000)
    expect(seen[0]?.aborted).toBe(true)
  })

  it('times out a tool that ignores its signal', async () => {
    const stuck: ServerTool = { ...waitsForAbort('stuck', 20), execute: async () => await new Promise<string>(() => {}) }
    expect(errorOf(await new ToolRegistry([stuck]).call('stuck', '{}', context())).code).toBe('timeout')
  })

  it('reports cancelled when the context is aborted during the call', async () => {
    const controller = new AbortController()
    const seen: AbortSignal[] = []
    const registry = new ToolRegistry([waitsForAbort('slow', 60_000, seen)])
    const pending = registry.call('slow', '{}', context(controller.signal))
    await expect.poll(() => seen.length).toBe(1)
    controller.abort()
    const error = errorOf(await pending)
    expect(error.code).toBe('cancelled')
    expect(seen[0]?.aborted).toBe(true)
  })

  it('reports cancelled without running the tool when the context is already aborted', async () => {
    const seen: AbortSignal[] = []
    const registry = new ToolRegistry([waitsForAbort('slow', 60_000, seen)])
    const error = errorOf(await registry.call('slow', '{}', context(AbortSignal.abort())))
    expect(error.code).toBe('cancelled')
    expect(seen).toEqual([])
  })

  it('reports a throwing tool as tool_failed with its message, truncated to 500 characters', async () => {
    const registry = new ToolRegistry([
      defineTool({ name: 'fails', description: 'f', parameters: Type.Object({}), async execute () { throw new Error('the backend said no') } }),
      defineTool({ name: 'verbose', description: 'v', parameters: Type.Object({}), async execute () { throw new Error('x'.repeat(2000)) } }),
      { ...search, name: 'sync_throw', execute: () => { throw new RangeError('thrown synchronously') } },
      { ...search, name: 'odd_throw', execute: async () => { throw 'a bare string' } } // eslint-disable-line no-throw-literal
    ])
    expect(errorOf(await registry.call('fails', '{}', context()))).toEqual({ code: 'tool_failed', message: 'the backend said no' })
    const verbose = errorOf(await registry.call('verbose', '{}', context()))
    expect(verbose.code).toBe('tool_failed')
    expect(verbose.message).toHaveLength(500)
    expect(errorOf(await registry.call('sync_throw', '{"query":"q"}', context()))).toEqual({ code: 'tool_failed', message: 'thrown synchronously' })
    expect(errorOf(await registry.call('odd_throw', '{"query":"q"}', context()))).toEqual({ code: 'tool_failed', message: 'a bare string' })
  })
})

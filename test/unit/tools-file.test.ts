import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'
import { createHttpTool } from '../../src/tools/http-tool.js'
import { ToolRegistry } from '../../src/tools/registry.js'
import { parseToolsFile } from '../../src/tools/tools-file.js'

const SECRET = 'tok-synthetic-5f3a9c'
/** `${NAME}`, the placeholder a tools file uses. */
const ref = (name: string): string => `$${'{'}${name}}`
const env = { SEARCH_TOKEN: SECRET, REGION: 'eu-north' }

const valid = {
  name: 'search',
  description: 'Searches the knowledge base',
  parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
  url: 'https://tools.example.test/search'
}

/** The message parseToolsFile throws for a file holding `entries` (fails the test when it does not throw). */
function problemOf (entries: unknown, environment: Record<string, string | undefined> = env): string {
  try {
    parseToolsFile(JSON.stringify(entries), 'tools.json', environment)
  } catch (err) {
    if (err instanceof Error) return err.message
    throw err
  }
  throw new Error('expected parseToolsFile to throw')
}

describe('parseToolsFile', () => {
  it('parses entries, with the default timeout and no headers', () => {
    expect(parseToolsFile(JSON.stringify([valid]), 'tools.json', env)).toEqual([{ ...valid, timeoutMs: 10_000, headers: {} }])
    expect(parseToolsFile('[]', 'tools.json', env)).toEqual([])
  })

  it('reads timeout_ms and substitutes env placeholders in header values', () => {
    const [tool] = parseToolsFile(JSON.stringify([{
      ...valid,
      timeout_ms: 2500,
      headers: { Authorization: `Bearer ${ref('SEARCH_TOKEN')}`, 'X-Route': `${ref('REGION')}/${ref('REGION')}`, 'X-Static': 'plain', 'X-Dollar': 'costs $5' }
    }]), 'tools.json', env)
    expect(tool?.timeoutMs).toBe(2500)
    expect(tool?.headers).toEqual({ Authorization: `Bearer ${SECRET}`, 'X-Route': 'eu-north/eu-north', 'X-Static': 'plain', 'X-Dollar': 'costs $5' })
  })

  it('accepts the timeout bounds and a plain http URL', () => {
    expect(parseToolsFile(JSON.stringify([{ ...valid, timeout_ms: 1 }, { ...valid, name: 'b', timeout_ms: 120_000, url: 'http://127.0.0.1:9/x' }]), 'f', env).map((t) => t.timeoutMs)).toEqual([1, 120_000])
  })

  it('reports bad JSON with the place, not the text', () => {
    const message = (() => {
      try {
        parseToolsFile(`[{"name": "a", "headers": {"Authorization": "${SECRET}"}\n  oops`, 'tools.json', env)
      } catch (err) {
        return err instanceof Error ? err.message : ''
      }
      return ''
    })()
    expect(message).toMatch(/^tools\.json: not valid JSON/)
    expect(message).not.toContain(SECRET)
    expect(() => parseToolsFile('', 'tools.json', env)).toThrow(/^tools\.json: not valid JSON$/)
  })

  it('reports a document that is not an array', () => {
    expect(() => parseToolsFile(JSON.stringify(valid), 'tools.json', env)).toThrow('tools.json: must be a JSON array of tool definitions')
  })

  it.each([
    ['an entry that is not an object', ['x'], 'tools.json: entry 0: must be an object'],
    ['a missing name', [{ ...valid, name: undefined }], 'tools.json: entry 0: name must match'],
    ['a name with spaces', [{ ...valid, name: 'web search' }], 'tools.json: entry 0 ("web search"): name must match /^[a-zA-Z0-9_-]{1,64}$/'],
    ['a name over 64 characters', [{ ...valid, name: 'n'.repeat(65) }], 'tools.json: entry 0 ("nnnn'],
    ['a missing description', [{ ...valid, description: '' }], 'tools.json: entry 0 ("search"): description must be a non-empty string'],
    ['missing parameters', [{ ...valid, parameters: undefined }], 'tools.json: entry 0 ("search"): parameters must be a JSON Schema object'],
    ['parameters ajv cannot compile', [{ ...valid, parameters: { type: 'object', properties: { q: { type: 'text' } } } }], 'tools.json: entry 0 ("search"): parameters is not a valid JSON Schema'],
    ['a non-http URL', [valid, { ...valid, name: 'ftp', url: 'ftp://files.example.test' }], 'tools.json: entry 1 ("ftp"): url must be an http(s) URL'],
    ['a relative URL', [{ ...valid, url: '/search' }], 'tools.json: entry 0 ("search"): url must be an http(s) URL'],
    ['a timeout of 0', [{ ...valid, timeout_ms: 0 }], 'tools.json: entry 0 ("search"): timeout_ms must be a whole number from 1 to 120000'],
    ['a timeout over the limit', [{ ...valid, timeout_ms: 120_001 }], 'timeout_ms must be a whole number from 1 to 120000'],
    ['a fractional timeout', [{ ...valid, timeout_ms: 1.5 }], 'timeout_ms must be a whole number'],
    ['a timeout as text', [{ ...valid, timeout_ms: '500' }], 'timeout_ms must be a whole number'],
    ['headers that are not an object', [{ ...valid, headers: ['a'] }], 'tools.json: entry 0 ("search"): headers must be an object'],
    ['a header with a non-string value', [{ ...valid, headers: { 'X-N': 1 } }], 'header "X-N" must have a string value'],
    ['a bad header name', [{ ...valid, headers: { 'X Bad': 'v' } }], 'header "X Bad" is not a valid header name'],
    ['a header given twice', [{ ...valid, headers: { 'X-A': 'v', 'x-a': 'w' } }], 'header "x-a" is given twice'],
    ['an unknown field', [{ ...valid, timeoutMs: 5 }], 'tools.json: entry 0 ("search"): unknown field "timeoutMs"'],
    ['a duplicate name', [valid, { ...valid, url: 'https://other.example.test' }], 'tools.json: entry 1 ("search"): duplicate name (entry 0 has it too)']
  ])('reports %s, naming the file and the entry', (_what, entries, message) => {
    expect(problemOf(entries)).toContain(message)
  })

  it('reports a missing environment variable by name, without any header value', () => {
    const message = problemOf([valid, { ...valid, name: 'lookup', headers: { 'X-Key': `${SECRET}-${ref('MISSING_KEY')}` } }])
    expect(message).toBe('tools.json: entry 1 ("lookup"): header "X-Key" needs environment variable MISSING_KEY, which is not set')
    expect(problemOf([{ ...valid, headers: { Authorization: `Bearer ${ref('SEARCH_TOKEN')}` } }], { SEARCH_TOKEN: '' })).toContain('needs environment variable SEARCH_TOKEN')
    expect(problemOf([{ ...valid, headers: { Authorization: `${SECRET} ${ref('not valid')}` } }])).toBe(`tools.json: entry 0 ("search"): header "Authorization" has a malformed ${ref('…')} reference`)
  })

  it('never puts a header value in any error', () => {
    const leaky = { ...valid, headers: { Authorization: `Bearer ${SECRET}`, 'X-Resolved': ref('SEARCH_TOKEN') } }
    const broken = [
      [leaky, { ...leaky }],
      [{ ...leaky, url: 'nope' }],
      [{ ...leaky, timeout_ms: -1 }],
      [{ ...leaky, parameters: { type: 7 } }],
      [{ ...leaky, headers: { ...leaky.headers, 'X-Bad': `a${ref('MISSING')}` } }],
      [{ ...leaky, headers: { 'X-Split': ref('SPLIT') } }],
      [{ ...leaky, extra: SECRET.length }]
    ]
    for (const entries of broken) {
      const message = problemOf(entries, { ...env, SPLIT: `${SECRET}\r\nX-Injected: 1` })
      expect(message).toMatch(/^tools\.json: entry \d+/)
      expect(message).not.toContain(SECRET)
    }
    expect(problemOf([{ ...valid, headers: { 'X-Split': ref('SPLIT') } }], { SPLIT: 'a\r\nb' })).toContain('header "X-Split" has a value with a line break')
  })

  it('gives definitions the registry accepts as HTTP tools', () => {
    const definitions = parseToolsFile(JSON.stringify([valid, { ...valid, name: 'other' }]), 'tools.json', env)
    const registry = new ToolRegistry(definitions.map(createHttpTool))
    expect(registry.list().map((tool) => [tool.name, tool.timeoutMs])).toEqual([['search', 10_000], ['other', 10_000]])
  })
})

describe('loadConfig tools', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'tokenwire-tools-'))
  afterAll(() => rmSync(tmp, { recursive: true, force: true }))
  const write = (name: string, content: unknown): string => {
    const path = join(tmp, name)
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
    return path
  }
  function problemsOf (environment: NodeJS.ProcessEnv): string[] {
    try {
      loadConfig(environment)
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
      throw err
    }
    throw new Error('expected loadConfig to throw a ConfigError')
  }

  it('defaults to both built-ins, no HTTP tools and 8 steps', () => {
    expect(loadConfig({}).tools).toEqual({ http: [], builtins: ['current_time', 'calculate'], maxSteps: 8, mcpTimeoutMs: 15_000, mcpServers: [] })
  })

  it('reads BUILTIN_TOOLS and MAX_TOOL_STEPS', () => {
    expect(loadConfig({ BUILTIN_TOOLS: 'calculate', MAX_TOOL_STEPS: '3', MCP_TIMEOUT_MS: '500' }).tools).toEqual({ http: [], builtins: ['calculate'], maxSteps: 3, mcpTimeoutMs: 500, mcpServers: [] })
    expect(loadConfig({ BUILTIN_TOOLS: ' calculate , current_time,calculate ' }).tools.builtins).toEqual(['calculate', 'current_time'])
    expect(loadConfig({ BUILTIN_TOOLS: 'none' }).tools.builtins).toEqual([])
  })

  it('reports unknown built-ins, none mixed with names, and a step count under 1', () => {
    expect(problemsOf({ BUILTIN_TOOLS: 'calculate,weather' })).toEqual(['BUILTIN_TOOLS: unknown built-in tool "weather" (known: current_time, calculate, or none)'])
    expect(problemsOf({ BUILTIN_TOOLS: 'none,calculate' })).toEqual(['BUILTIN_TOOLS: "none" cannot be combined with tool names'])
    expect(problemsOf({ MAX_TOOL_STEPS: '0' })).toEqual([expect.stringMatching(/^MAX_TOOL_STEPS/)])
    expect(problemsOf({ MAX_TOOL_STEPS: '2.5' })).toEqual(['MAX_TOOL_STEPS: must be a whole number (got "2.5")'])
  })

  it('loads TOOLS_FILE with env substitution, deeply frozen', () => {
    const file = write('tools.json', [{ ...valid, headers: { Authorization: `Bearer ${ref('SEARCH_TOKEN')}` } }])
    const config = loadConfig({ TOOLS_FILE: file, SEARCH_TOKEN: SECRET })
    expect(config.tools.http).toEqual([{ ...valid, timeoutMs: 10_000, headers: { Authorization: `Bearer ${SECRET}` } }])
    expect(Object.isFrozen(config.tools.http[0]?.parameters)).toBe(true)
    expect(new ToolRegistry(config.tools.http.map(createHttpTool)).has('search')).toBe(true)
  })

  it('reports a bad tools file as one problem among the others', () => {
    const file = write('bad.json', [valid, { ...valid, name: 'b', url: 'mailto:x@example.test', headers: { 'X-Key': SECRET } }])
    const problems = problemsOf({ TOOLS_FILE: file, PORT: 'abc' })
    expect(problems).toEqual([expect.stringMatching(/^PORT/), `TOOLS_FILE: ${file}: entry 1 ("b"): url must be an http(s) URL`])
    expect(problems.join('\n')).not.toContain(SECRET)
  })

  it('reports an unreadable tools file and a missing variable', () => {
    expect(problemsOf({ TOOLS_FILE: join(tmp, 'missing.json') })).toEqual([expect.stringMatching(/^TOOLS_FILE: .*missing\.json/)])
    const file = write('needs-env.json', [{ ...valid, headers: { Authorization: `Bearer ${ref('SEARCH_TOKEN')}` } }])
    expect(problemsOf({ TOOLS_FILE: file })).toEqual([`TOOLS_FILE: ${file}: entry 0 ("search"): header "Authorization" needs environment variable SEARCH_TOKEN, which is not set`])
  })

  it('reports an HTTP tool named like an enabled built-in, but not a disabled one', () => {
    const file = write('clash.json', [{ ...valid, name: 'calculate' }])
    expect(problemsOf({ TOOLS_FILE: file })).toEqual([`TOOLS_FILE: ${file}: tool "calculate" has the name of a built-in tool; rename it or leave it out of BUILTIN_TOOLS`])
    expect(loadConfig({ TOOLS_FILE: file, BUILTIN_TOOLS: 'current_time' }).tools.http.map((t) => t.name)).toEqual(['calculate'])
  })
})

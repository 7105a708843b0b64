/**
 * TOOLS_FILE: HTTP tools declared by the operator, as a JSON array. Parsed and checked once at boot;
 * every problem names the file and the entry. `${VAR}` in a header value is replaced from the
 * environment, and header values (secrets, typically) never appear in an error message.
 *
 *   [{ "name": "search", "description": "…", "parameters": { "type": "object", … },
 *      "url": "https://tools.internal/search", "timeout_ms": 5000,
 *      "headers": { "Authorization": "Bearer ${SEARCH_TOKEN}" } }]
 */
import { isHttpUrl, isRecord, syntaxErrorPlace } from '../config-document.js'
import { compileParameters, TOOL_NAME_PATTERN } from './registry.js'

export interface HttpToolDefinition {
  readonly name: string
  readonly description: string
  /** JSON Schema of the arguments object (as sent to the model). */
  readonly parameters: Record<string, unknown>
  /** Where the arguments are POSTed as JSON (http or https). */
  readonly url: string
  readonly timeoutMs: number
  /** Header name → value, `${VAR}` already resolved. */
  readonly headers: Record<string, string>
}

export const DEFAULT_TOOL_TIMEOUT_MS = 10_000
export const MAX_TOOL_TIMEOUT_MS = 120_000

const FIELDS = new Set(['name', 'description', 'parameters', 'url', 'timeout_ms', 'headers'])
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const VARIABLE = /\$\{([^}]*)\}/g
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Parses the tools file `text` (read from `file`, named in errors). Throws an Error such as
 * `tools.json: entry 2 ("search"): url must be an http(s) URL` at the first problem.
 */
export function parseToolsFile (text: string, file: string, env: Readonly<Record<string, string | undefined>>): HttpToolDefinition[] {
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch (err) {
    // The parser's message quotes the text around the error, which may hold a header value: report the place only.
    throw new Error(`${file}: not valid JSON${syntaxErrorPlace(text, err)}`)
  }
  if (!Array.isArray(document)) throw new Error(`${file}: must be a JSON array of tool definitions`)
  const seen = new Map<string, number>()
  return document.map((entry: unknown, index) => {
    const name = isRecord(entry) && typeof entry['name'] === 'string' ? entry['name'] : undefined
    const label = `${file}: entry ${index}${name === undefined ? '' : ` (${JSON.stringify(name.slice(0, 80))})`}`
    try {
      const definition = parseEntry(entry, env)
      const first = seen.get(definition.name)
      if (first !== undefined) throw new Error(`duplicate name (entry ${first} has it too)`)
      seen.set(definition.name, index)
      return definition
    } catch (err) {
      throw new Error(`${label}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
  })
}

function parseEntry (entry: unknown, env: Readonly<Record<string, string | undefined>>): HttpToolDefinition {
  if (!isRecord(entry)) throw new Error('must be an object')
  const unknown = Object.keys(entry).find((key) => !FIELDS.has(key))
  if (unknown !== undefined) throw new Error(`unknown field ${JSON.stringify(unknown)} (allowed: ${[...FIELDS].join(', ')})`)

  const { name, description, parameters, url, headers } = entry
  if (typeof name !== 'string' || !TOOL_NAME_PATTERN.test(name)) throw new Error(`name must match ${String(TOOL_NAME_PATTERN)}`)
  if (typeof description !== 'string' || description.trim() === '') throw new Error('description must be a non-empty string')
  if (!isRecord(parameters)) throw new Error('parameters must be a JSON Schema object')
  try {
    compileParameters(parameters)
  } catch (err) {
    throw new Error(`parameters is not a valid JSON Schema: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  if (typeof url !== 'string' || !isHttpUrl(url)) throw new Error('url must be an http(s) URL')

  const timeoutMs = entry['timeout_ms'] ?? DEFAULT_TOOL_TIMEOUT_MS
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TOOL_TIMEOUT_MS) {
    throw new Error(`timeout_ms must be a whole number from 1 to ${MAX_TOOL_TIMEOUT_MS}`)
  }
  return { name, description, parameters, url, timeoutMs, headers: resolveHeaders(headers, env) }
}

export function resolveHeaders (headers: unknown, env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  if (headers === undefined) return {}
  if (!isRecord(headers)) throw new Error('headers must be an object of header name to string value')
  const resolved: Record<string, string> = {}
  const names = new Set<string>()
  for (const [header, template] of Object.entries(headers)) {
    const label = `header ${JSON.stringify(header)}`
    if (!HEADER_NAME.test(header)) throw new Error(`${label} is not a valid header name`)
    if (names.has(header.toLowerCase())) throw new Error(`${label} is given twice (header names ignore case)`)
    names.add(header.toLowerCase())
    if (typeof template !== 'string') throw new Error(`${label} must have a string value`)
    const value = template.replace(VARIABLE, (_match, variable: string) => {
      if (!VARIABLE_NAME.test(variable)) throw new Error(`${label} has a malformed \${…} reference`)
      const replacement = env[variable]
      if (replacement === undefined || replacement === '') throw new Error(`${label} needs environment variable ${variable}, which is not set`)
      return replacement
    })
    // fetch refuses these at call time; say so at boot, without the value.
    if (/[\r\n\0]/.test(value)) throw new Error(`${label} has a value with a line break or NUL character`)
    resolved[header] = value
  }
  return resolved
}

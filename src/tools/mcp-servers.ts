/**
 * MCP_SERVERS: MCP servers the gateway itself offers to every session — a JSON array of
 * `{"server_label", "server_url", "allowed_tools"?, "headers"?: {"Name": "${ENV_VAR}"}}`.
 * Problems name the entry; header values never appear in messages.
 */
import { resolveHeaders } from './tools-file.js'

export interface McpServerConfig {
  readonly serverLabel: string
  readonly serverUrl: string
  readonly allowedTools?: readonly string[]
  readonly headers: Readonly<Record<string, string>>
}

const LABEL = /^[a-zA-Z0-9_-]{1,64}$/
const FIELDS = new Set(['server_label', 'server_url', 'allowed_tools', 'headers'])

export function parseMcpServers (text: string, env: Readonly<Record<string, string | undefined>>): McpServerConfig[] {
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch {
    throw new Error('not valid JSON')
  }
  if (!Array.isArray(document)) throw new Error('must be a JSON array of {"server_label", "server_url", …}')
  const labels = new Set<string>()
  return document.map((entry: unknown, index): McpServerConfig => {
    const at = `entry ${index}`
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new Error(`${at}: must be an object`)
    const fields: Record<string, unknown> = { ...entry }
    const unknown = Object.keys(fields).find((key) => !FIELDS.has(key))
    if (unknown !== undefined) throw new Error(`${at}: unknown field ${JSON.stringify(unknown)}`)
    const label = fields['server_label']
    if (typeof label !== 'string' || !LABEL.test(label)) throw new Error(`${at}: server_label must match ${LABEL.source}`)
    if (labels.has(label)) throw new Error(`${at} (${label}): server_label is used twice`)
    labels.add(label)
    const url = fields['server_url']
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) throw new Error(`${at} (${label}): server_url must be an http(s) URL`)
    const allowed = fields['allowed_tools']
    if (allowed !== undefined && (!Array.isArray(allowed) || !allowed.every((name): name is string => typeof name === 'string'))) {
      throw new Error(`${at} (${label}): allowed_tools must be an array of tool names`)
    }
    let headers: Record<string, string>
    try {
      headers = resolveHeaders(fields['headers'], env)
    } catch (err) {
      throw new Error(`${at} (${label}): ${err instanceof Error ? err.message : String(err)}`)
    }
    return { serverLabel: label, serverUrl: url, headers, ...(allowed === undefined ? {} : { allowedTools: allowed }) }
  })
}

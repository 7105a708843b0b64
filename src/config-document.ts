/**
 * Reading the gateway's own config files (keys, tools, chains, models): JSON, or YAML for
 * `.yaml`/`.yml`, with errors that name the file. Shared shape checks live here too.
 */
import { parse as parseYaml } from 'yaml'

/** Parses `text` read from `file`; a syntax error names the file and the format. */
export function parseConfigDocument (text: string, file: string): unknown {
  const yaml = /\.ya?ml$/i.test(file)
  try {
    return yaml ? parseYaml(text) : JSON.parse(text)
  } catch (err) {
    throw new Error(`${file}: not valid ${yaml ? 'YAML' : 'JSON'}: ${err instanceof Error ? err.message : String(err)}`)
  }
}

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Whether `url` parses as an http: or https: URL. */
export function isHttpUrl (url: string): boolean {
  try {
    const { protocol } = new URL(url)
    return protocol === 'http:' || protocol === 'https:'
  } catch {
    return false
  }
}

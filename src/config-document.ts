/**
 * Reading the gateway's own config files (keys, tools, chains, models): JSON, or YAML for
 * `.yaml`/`.yml`, with errors that name the file. Shared shape checks live here too.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml'

/**
 * Parses `text` read from `file`; a syntax error names the file, the format and the place, never
 * the text there: the parsers quote it, and a keys file holds plain keys (a models file, headers).
 */
export function parseConfigDocument (text: string, file: string): unknown {
  const yaml = /\.ya?ml$/i.test(file)
  try {
    return yaml ? parseYaml(text) : JSON.parse(text)
  } catch (err) {
    throw new Error(`${file}: not valid ${yaml ? 'YAML' : 'JSON'}${syntaxErrorPlace(text, err)}`)
  }
}

/**
 * ` (CODE) at line L, column C` of a YAML syntax error, ` at line L, column C` of a JSON.parse one
 * when its message gives the position; '' otherwise.
 */
export function syntaxErrorPlace (text: string, err: unknown): string {
  if (err instanceof YAMLParseError) {
    const at = err.linePos?.[0]
    return ` (${err.code})${at === undefined ? '' : ` at line ${at.line}, column ${at.col}`}`
  }
  const position = err instanceof Error ? /position (\d+)/.exec(err.message)?.[1] : undefined
  if (position === undefined) return ''
  const before = text.slice(0, Number(position))
  return ` at line ${before.split('\n').length}, column ${Number(position) - before.lastIndexOf('\n')}`
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

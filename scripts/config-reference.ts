/**
 * The configuration reference, generated from the one config schema (src/config.ts EnvSchema) so
 * docs and code cannot drift: `npm run docs:config` rewrites README's table between the
 * `<!-- config:start -->` / `<!-- config:end -->` markers; test/unit/config-reference.test.ts
 * fails when the README differs from what this would write, or a variable has no description.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { EnvSchema } from '../src/config.js'

export const START_MARKER = '<!-- config:start -->'
export const END_MARKER = '<!-- config:end -->'

/** What the generator reads of one variable's schema (TypeBox output is plain JSON Schema). */
interface VariableSchema {
  readonly description?: unknown
  readonly default?: unknown
  readonly anyOf?: ReadonlyArray<{ readonly const?: unknown }>
}

type Schema = { readonly properties: Readonly<Record<string, VariableSchema>> }

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ')

/** `8080`, `info`, `true`; `—` when there is none. */
function defaultOf (variable: VariableSchema): string {
  if (variable.default === undefined) return '—'
  return `\`${cell(String(variable.default))}\``
}

/** The description, and the allowed values of a union of literals. */
function meaningOf (variable: VariableSchema): string {
  const description = typeof variable.description === 'string' ? variable.description.trim() : ''
  const literals = variable.anyOf?.map((option) => option.const).filter((value) => value !== undefined) ?? []
  const values = literals.length > 0 && literals.length === variable.anyOf?.length ? ` One of ${literals.map((v) => `\`${String(v)}\``).join(', ')}.` : ''
  return cell(`${description}${values}`)
}

/** Variables whose schema has no (or an empty) description. */
export function missingDescriptions (schema: Schema = EnvSchema): string[] {
  return Object.entries(schema.properties)
    .filter(([, variable]) => typeof variable.description !== 'string' || variable.description.trim() === '')
    .map(([name]) => name)
}

/** The Markdown table: one row per variable, in schema order. */
export function configTable (schema: Schema = EnvSchema): string {
  const rows = Object.entries(schema.properties).map(([name, variable]) => `| \`${name}\` | ${defaultOf(variable)} | ${meaningOf(variable)} |`)
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n')
}

/** `readme` with the text between the markers replaced by `table`. Throws when the markers are missing. */
export function withConfigTable (readme: string, table: string = configTable()): string {
  const start = readme.indexOf(START_MARKER)
  const end = readme.indexOf(END_MARKER)
  if (start === -1 || end === -1 || end < start || readme.indexOf(START_MARKER, start + 1) !== -1) {
    throw new Error(`README.md needs exactly one ${START_MARKER} … ${END_MARKER} pair`)
  }
  return `${readme.slice(0, start + START_MARKER.length)}\n${table}\n${readme.slice(end)}`
}

/** The table as README holds it now, between the markers. */
export function readmeTable (readme: string): string {
  const start = readme.indexOf(START_MARKER)
  const end = readme.indexOf(END_MARKER)
  return start === -1 || end === -1 ? '' : readme.slice(start + START_MARKER.length, end).trim()
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const missing = missingDescriptions()
  if (missing.length > 0) {
    console.error(`config-reference: these variables have no description in src/config.ts: ${missing.join(', ')}`)
    process.exitCode = 1
  } else {
    const path = fileURLToPath(new URL('../README.md', import.meta.url))
    const before = readFileSync(path, 'utf8')
    const after = withConfigTable(before)
    if (after !== before) writeFileSync(path, after)
    console.log(`config-reference: README.md ${after === before ? 'already up to date' : 'updated'} (${Object.keys(EnvSchema.properties).length} variables)`)
  }
}

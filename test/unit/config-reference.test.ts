/** README's configuration table is generated from the config schema; this keeps them equal. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { configTable, END_MARKER, missingDescriptions, readmeTable, START_MARKER, withConfigTable } from '../../scripts/config-reference.js'
import { EnvSchema } from '../../src/config.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

describe('the configuration reference', () => {
  it('describes every variable of the schema', () => {
    expect(missingDescriptions(), 'give these a `description` in src/config.ts').toEqual([])
  })

  it('is in README exactly as generated (run `npm run docs:config`)', () => {
    expect(readme.split(START_MARKER)).toHaveLength(2)
    expect(readme.split(END_MARKER)).toHaveLength(2)
    expect(readmeTable(readme)).toBe(configTable())
    expect(withConfigTable(readme)).toBe(readme)
  })

  it('has one row per variable, in schema order, with its default', () => {
    const rows = configTable().split('\n').slice(2)
    expect(rows.map((row) => /^\| `([A-Z0-9_]+)` \|/.exec(row)?.[1])).toEqual(Object.keys(EnvSchema.properties))
    expect(rows.find((row) => row.startsWith('| `PORT` |'))).toMatch(/^\| `PORT` \| `8080` \| \S/)
    expect(rows.find((row) => row.startsWith('| `LOG_LEVEL` |'))).toMatch(/ One of `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`\. \|$/)
    expect(rows.find((row) => row.startsWith('| `OPENAI_API_KEY` |'))).toMatch(/^\| `OPENAI_API_KEY` \| — \|/)
  })

  it('generates from any schema: defaults, escaped pipes, missing descriptions', () => {
    const schema = {
      properties: {
        A: { default: 5, description: 'five | six' },
        B: { description: '  ' },
        C: { anyOf: [{ const: 'x' }, { const: 'y' }], default: 'x', description: 'Pick.' }
      }
    }
    expect(configTable(schema)).toBe([
      '| Variable | Default | Meaning |',
      '| --- | --- | --- |',
      '| `A` | `5` | five \\| six |',
      '| `B` | — |  |',
      '| `C` | `x` | Pick. One of `x`, `y`. |'
    ].join('\n'))
    expect(missingDescriptions(schema)).toEqual(['B'])
    expect(() => withConfigTable('no markers here', 'table')).toThrow(/exactly one/)
    expect(withConfigTable(`a\n${START_MARKER}\nold\n${END_MARKER}\nb`, 'new')).toBe(`a\n${START_MARKER}\nnew\n${END_MARKER}\nb`)
  })
})

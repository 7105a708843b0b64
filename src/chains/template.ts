/**
 * Chain prompt templates: text with `{{input}}` (the latest user message's text) and
 * `{{steps.<name>}}` (an earlier step's output text). Compiled once, at start-up; rendering
 * cannot fail.
 */

export type TemplatePart =
  | { readonly kind: 'text', readonly text: string }
  | { readonly kind: 'input' }
  | { readonly kind: 'step', readonly name: string }

export interface Template { readonly parts: readonly TemplatePart[] }

/**
 * Compiles `source`. `earlierSteps` are the step names it may refer to. Throws an Error naming
 * the problem (unknown variable, a later or unknown step, an unclosed `{{`).
 */
export function compileTemplate (source: string, earlierSteps: ReadonlySet<string>): Template {
  const parts: TemplatePart[] = []
  let rest = source
  while (rest.length > 0) {
    const open = rest.indexOf('{{')
    if (open === -1) {
      parts.push({ kind: 'text', text: rest })
      break
    }
    if (open > 0) parts.push({ kind: 'text', text: rest.slice(0, open) })
    const close = rest.indexOf('}}', open + 2)
    if (close === -1) throw new Error(`unclosed "{{" at ${JSON.stringify(rest.slice(open, open + 20))}`)
    const name = rest.slice(open + 2, close).trim()
    if (name === 'input') parts.push({ kind: 'input' })
    else if (name.startsWith('steps.')) {
      const step = name.slice('steps.'.length)
      if (!earlierSteps.has(step)) throw new Error(`{{${name}}} names no earlier step`)
      parts.push({ kind: 'step', name: step })
    } else {
      throw new Error(`unknown template variable {{${name}}} (use {{input}} or {{steps.<name>}})`)
    }
    rest = rest.slice(close + 2)
  }
  return { parts }
}

/** Fills a template in. */
export function renderTemplate (template: Template, values: { readonly input: string, readonly steps: Readonly<Record<string, string>> }): string {
  return template.parts.map((part) => part.kind === 'text' ? part.text : part.kind === 'input' ? values.input : values.steps[part.name] ?? '').join('')
}

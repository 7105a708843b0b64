/**
 * CHAINS_FILE: named prompt chains, JSON or YAML —
 * `{"chains": {"<name>": {"steps": [{"name", "prompt", "model"?, "instructions"?, "tools"?}]}}}`.
 * Every problem names the file and the entry, and fails start-up.
 */
import { isRecord, parseConfigDocument } from '../config-document.js'
import { compileTemplate, type Template } from './template.js'

export interface ChainStep {
  readonly name: string
  readonly prompt: Template
  readonly model?: string
  readonly instructions?: string
  /** Server-side tool names this step may call. */
  readonly tools: readonly string[]
}

export interface ChainDefinition {
  readonly name: string
  readonly steps: readonly ChainStep[]
}

const NAME = /^[a-zA-Z0-9_-]{1,64}$/

/** Parses and checks a chains file. Tool names are checked later, against the tool registry. */
export function parseChainsFile (text: string, file: string): ChainDefinition[] {
  const document = parseConfigDocument(text, file)
  const chains = isRecord(document) ? document['chains'] : undefined
  if (!isRecord(chains)) throw new Error(`${file}: expected {"chains": {"<name>": {"steps": [...]}}}`)
  return Object.entries(chains).map(([name, chain]) => {
    const where = `${file}: chain ${JSON.stringify(name)}`
    if (!NAME.test(name)) throw new Error(`${where}: a chain name must match ${NAME.source}`)
    const steps = isRecord(chain) ? chain['steps'] : undefined
    if (!Array.isArray(steps) || steps.length === 0) throw new Error(`${where}: "steps" must be a non-empty array`)
    const earlier = new Set<string>()
    return {
      name,
      steps: steps.map((step: unknown, index): ChainStep => {
        const at = `${where}, step ${index + 1}`
        if (!isRecord(step)) throw new Error(`${at}: a step must be an object`)
        const stepName = step['name']
        if (typeof stepName !== 'string' || !NAME.test(stepName)) throw new Error(`${at}: "name" must match ${NAME.source}`)
        if (earlier.has(stepName)) throw new Error(`${at} (${stepName}): the step name is used twice`)
        const prompt = step['prompt']
        if (typeof prompt !== 'string' || prompt === '') throw new Error(`${at} (${stepName}): "prompt" must be a non-empty string`)
        let template: Template
        try {
          template = compileTemplate(prompt, earlier)
        } catch (err) {
          throw new Error(`${at} (${stepName}): prompt: ${err instanceof Error ? err.message : String(err)}`)
        }
        const model = optionalString(step, 'model', at)
        const instructions = optionalString(step, 'instructions', at)
        const tools = step['tools'] ?? []
        if (!Array.isArray(tools) || !tools.every((tool): tool is string => typeof tool === 'string')) throw new Error(`${at} (${stepName}): "tools" must be an array of tool names`)
        earlier.add(stepName)
        return { name: stepName, prompt: template, tools, ...(model === undefined ? {} : { model }), ...(instructions === undefined ? {} : { instructions }) }
      })
    }
  })
}

/** Throws naming the chain and step when a step names a tool the gateway does not have. */
export function checkChainTools (chains: readonly ChainDefinition[], file: string, hasTool: (name: string) => boolean): void {
  for (const chain of chains) {
    for (const [index, step] of chain.steps.entries()) {
      const unknown = step.tools.find((tool) => !hasTool(tool))
      if (unknown !== undefined) throw new Error(`${file}: chain ${JSON.stringify(chain.name)}, step ${index + 1} (${step.name}): unknown tool ${JSON.stringify(unknown)}`)
    }
  }
}

function optionalString (step: Record<string, unknown>, key: string, at: string): string | undefined {
  const value = step[key]
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw new Error(`${at}: "${key}" must be a string`)
  return value
}

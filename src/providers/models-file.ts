/**
 * MODELS_FILE: which upstream serves which model, JSON or YAML —
 * `{"models": {"<name or prefix*>": {"baseURL", "apiKeyEnv"?, "upstreamModel"?, "contextTokens"?, "fallback"?}}}`.
 * Parsed and checked once at boot; every problem names the file and the entry. Keys are never in
 * the file: `apiKeyEnv` names the environment variable that holds one.
 */
import { isHttpUrl, isRecord, parseConfigDocument } from '../config-document.js'

/** One route: the models it matches and the upstream that serves them. */
export interface ModelRoute {
  /** An exact model name (`gpt-4o`, `ft:gpt-4o-mini-2024-07-18:acme::abc123`) or a `prefix*` pattern (`ft:gpt-4o-mini:*`). */
  readonly model: string
  /** The upstream's OpenAI-compatible base URL (`…/v1`). */
  readonly baseURL: string
  /** The key read from `apiKeyEnv` at boot. Absent: the upstream needs none (a local server). */
  readonly apiKey?: string
  readonly apiKeyEnv?: string
  /** The name the upstream knows the model by, when it differs. */
  readonly upstreamModel?: string
  /** The model's context window, in tokens (for the context budget). */
  readonly contextTokens?: number
  /** Models tried in turn when this one's upstream fails before the first token. Absent: UPSTREAM_FALLBACK_MODELS; `[]`: none. */
  readonly fallback?: readonly string[]
}

const FIELDS = new Set(['baseURL', 'apiKeyEnv', 'upstreamModel', 'contextTokens', 'fallback'])
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const MAX_NAME = 256

/**
 * The entry of `entries` for `model`, each entry's `model` being an exact name or a `prefix*`
 * pattern: an exact match wins, then the longest matching prefix; among equals, the first listed.
 */
export function matchModel<T extends { readonly model: string }> (entries: readonly T[], model: string): T | undefined {
  const exact = entries.find((entry) => entry.model === model)
  if (exact !== undefined) return exact
  let best: T | undefined
  for (const entry of entries) {
    if (!entry.model.endsWith('*')) continue
    const prefix = entry.model.slice(0, -1)
    if (model.startsWith(prefix) && (best === undefined || entry.model.length > best.model.length)) best = entry
  }
  return best
}

/** Checks a model name or pattern: `*` may only end it. Returns the problem, or undefined. */
export function modelNameProblem (name: string, patternAllowed: boolean): string | undefined {
  if (name === '' || name.length > MAX_NAME) return `must be 1 to ${MAX_NAME} characters`
  const star = name.indexOf('*')
  if (star !== -1 && (!patternAllowed || star !== name.length - 1)) {
    return patternAllowed ? '"*" may only end a name (a prefix pattern such as "ft:gpt-4o-mini:*")' : 'must be a model name, not a pattern'
  }
  return undefined
}

/**
 * Parses the models file `text` (read from `file`, named in every error). Keys come from `env`
 * by each route's `apiKeyEnv`; the error for missing ones lists all of them at once.
 */
export function parseModelsFile (text: string, file: string, env: Readonly<Record<string, string | undefined>>): ModelRoute[] {
  const document = parseConfigDocument(text, file)
  const models = isRecord(document) ? document['models'] : undefined
  if (!isRecord(models) || Object.keys(models).length === 0) {
    throw new Error(`${file}: expected {"models": {"<model name or prefix*>": {"baseURL": "…", "apiKeyEnv": "…"}}} with at least one model`)
  }
  const unknownTop = Object.keys(document as Record<string, unknown>).find((key) => key !== 'models')
  if (unknownTop !== undefined) throw new Error(`${file}: unknown top-level field ${JSON.stringify(unknownTop)} (allowed: models)`)

  const missing: string[] = []
  const routes = Object.entries(models).map(([model, entry]) => {
    const where = `${file}: model ${JSON.stringify(model.slice(0, 80))}`
    const nameProblem = modelNameProblem(model, true)
    if (nameProblem !== undefined) throw new Error(`${where}: the name ${nameProblem}`)
    try {
      const route = parseRoute(model, entry)
      if (route.apiKeyEnv === undefined) return route
      const key = env[route.apiKeyEnv]
      if (key === undefined || key === '') {
        missing.push(`${route.apiKeyEnv} (model ${JSON.stringify(model)})`)
        return route
      }
      return { ...route, apiKey: key }
    } catch (err) {
      throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    }
  })
  if (missing.length > 0) throw new Error(`${file}: apiKeyEnv names environment variables that are not set: ${missing.join(', ')}`)
  return routes
}

function parseRoute (model: string, entry: unknown): ModelRoute {
  if (!isRecord(entry)) throw new Error('must be an object with at least "baseURL"')
  const unknown = Object.keys(entry).find((key) => !FIELDS.has(key))
  if (unknown !== undefined) {
    const hint = /key/i.test(unknown) ? ' — keys never go in this file: put the key in an environment variable and name it in apiKeyEnv' : ''
    throw new Error(`unknown field ${JSON.stringify(unknown)} (allowed: ${[...FIELDS].join(', ')})${hint}`)
  }
  const { baseURL, apiKeyEnv, upstreamModel, contextTokens, fallback } = entry
  if (typeof baseURL !== 'string' || !isHttpUrl(baseURL)) throw new Error('baseURL must be an http(s) URL, such as "https://api.openai.com/v1"')
  if (apiKeyEnv !== undefined && (typeof apiKeyEnv !== 'string' || !ENV_NAME.test(apiKeyEnv))) {
    throw new Error('apiKeyEnv must be the name of an environment variable (letters, digits, _), not a key')
  }
  if (upstreamModel !== undefined && (typeof upstreamModel !== 'string' || modelNameProblem(upstreamModel, false) !== undefined)) {
    throw new Error(`upstreamModel must be a model name of 1 to ${MAX_NAME} characters, without "*"`)
  }
  if (contextTokens !== undefined && (typeof contextTokens !== 'number' || !Number.isInteger(contextTokens) || contextTokens < 1024 || contextTokens > 100_000_000)) {
    throw new Error('contextTokens must be a whole number of tokens from 1024 to 100000000')
  }
  if (fallback !== undefined && (!Array.isArray(fallback) || !fallback.every((name): name is string => typeof name === 'string'))) {
    throw new Error('fallback must be an array of model names')
  }
  for (const name of fallback ?? []) {
    const problem = modelNameProblem(name, false)
    if (problem !== undefined) throw new Error(`fallback ${JSON.stringify(name.slice(0, 80))} ${problem}`)
    if (name === model) throw new Error(`fallback ${JSON.stringify(name)} is the model itself`)
  }
  return {
    model,
    baseURL,
    ...(apiKeyEnv === undefined ? {} : { apiKeyEnv }),
    ...(upstreamModel === undefined ? {} : { upstreamModel }),
    ...(contextTokens === undefined ? {} : { contextTokens }),
    ...(fallback === undefined ? {} : { fallback })
  }
}

/** What `checkRouting` needs to know beside the routes. */
export interface RoutingFacts {
  readonly file: string
  readonly defaultModel: string
  /** UPSTREAM_FALLBACK_MODELS. */
  readonly fallbackModels: readonly string[]
  /** Whether a model no route matches still has an upstream (OPENAI_BASE_URL / OPENAI_API_KEY, or the simulator). */
  readonly hasDefault: boolean
}

/** Problems of the routing as a whole: every fallback, and DEFAULT_MODEL, must reach an upstream. */
export function checkRouting (routes: readonly ModelRoute[], facts: RoutingFacts): string[] {
  const problems: string[] = []
  const served = (name: string) => facts.hasDefault || matchModel(routes, name) !== undefined
  const noDefault = 'no route matches it and there is no default upstream (OPENAI_BASE_URL / OPENAI_API_KEY)'
  for (const name of facts.fallbackModels) {
    const problem = modelNameProblem(name, false)
    if (problem !== undefined) problems.push(`UPSTREAM_FALLBACK_MODELS: ${JSON.stringify(name.slice(0, 80))} ${problem}`)
    else if (!served(name)) problems.push(`UPSTREAM_FALLBACK_MODELS: ${JSON.stringify(name)}: ${noDefault}`)
  }
  for (const route of routes) {
    for (const name of route.fallback ?? []) {
      if (!served(name)) problems.push(`MODELS_FILE: ${facts.file}: model ${JSON.stringify(route.model)}: fallback ${JSON.stringify(name)}: ${noDefault}`)
    }
  }
  if (!served(facts.defaultModel)) problems.push(`DEFAULT_MODEL: ${JSON.stringify(facts.defaultModel)}: ${noDefault}`)
  return problems
}

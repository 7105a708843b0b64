/**
 * The deployment files, checked without Docker: docker-compose.yml is parsed as YAML, the
 * Dockerfile with a small instruction parser (comments, line continuations, stages).
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { EnvSchema } from '../../src/config.js'

const root = (path: string): string => fileURLToPath(new URL(`../../${path}`, import.meta.url))
const read = (path: string): string => readFileSync(root(path), 'utf8')

const SECRET = /sk-[A-Za-z0-9]{10,}/

interface Instruction { keyword: string, args: string }
interface Stage { from: string, instructions: Instruction[] }

/** Dockerfile → instructions grouped by stage (FROM starts one). Handles `\` continuations and comments. */
function parseDockerfile (text: string): Stage[] {
  const logical: string[] = []
  let current = ''
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (current === '' && (line === '' || line.startsWith('#'))) continue
    if (current !== '' && line.startsWith('#')) continue
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1).trim()} `
      continue
    }
    logical.push(`${current}${line}`.trim())
    current = ''
  }
  if (current !== '') logical.push(current.trim())

  const stages: Stage[] = []
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/s.exec(line)
    if (match === null) continue
    const keyword = (match[1] ?? '').toUpperCase()
    const args = match[2] ?? ''
    if (keyword === 'FROM') stages.push({ from: args, instructions: [] })
    else stages.at(-1)?.instructions.push({ keyword, args })
  }
  return stages
}

/** Exec-form (`["a", "b"]`) arguments as an array; shell form as one string. */
function execForm (args: string): string[] | string {
  try {
    const parsed: unknown = JSON.parse(args)
    if (Array.isArray(parsed) && parsed.every((part) => typeof part === 'string')) return parsed
  } catch { /* shell form */ }
  return args
}

/** Every scalar in a parsed YAML document, as strings. */
function scalars (value: unknown): string[] {
  if (value === null || value === undefined) return []
  if (Array.isArray(value)) return value.flatMap(scalars)
  if (typeof value === 'object') return Object.entries(value).flatMap(([key, inner]) => [key, ...scalars(inner)])
  return [String(value)]
}

type Dict = Record<string, unknown>
const isDict = (value: unknown): value is Dict => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Compose `environment` in map or list (`KEY=value`) form, as a map. */
function environmentOf (service: Dict): Map<string, string | null> {
  const env = service['environment']
  if (Array.isArray(env)) {
    return new Map(env.map((entry) => {
      const text = String(entry)
      const eq = text.indexOf('=')
      return eq === -1 ? [text, null] : [text.slice(0, eq), text.slice(eq + 1)]
    }))
  }
  if (isDict(env)) return new Map(Object.entries(env).map(([key, value]) => [key, value === null ? null : String(value)]))
  return new Map()
}

/** Container ports a compose service publishes, from short (`"8080:8080"`) or long syntax. */
function publishedTargets (service: Dict): Array<{ published: string, target: string }> {
  const ports = service['ports']
  if (!Array.isArray(ports)) return []
  return ports.map((port) => {
    if (isDict(port)) return { published: String(port['published'] ?? ''), target: String(port['target'] ?? '') }
    const parts = String(port).replace(/\/(tcp|udp)$/, '').split(':')
    return { published: parts.length > 1 ? parts.at(-2) ?? '' : '', target: parts.at(-1) ?? '' }
  })
}

describe('docker-compose.yml', () => {
  const text = read('docker-compose.yml')
  const doc: unknown = parse(text)
  const services = isDict(doc) && isDict(doc['services']) ? doc['services'] : {}
  const gateway = isDict(services['gateway']) ? services['gateway'] : {}
  const redis = isDict(services['redis']) ? services['redis'] : {}

  it('has a gateway service built from this repository, publishing 8080', () => {
    const build = gateway['build']
    const context = typeof build === 'string' ? build : isDict(build) ? build['context'] : undefined
    expect(typeof context).toBe('string')
    expect(existsSync(root(`${String(context)}/Dockerfile`))).toBe(true)
    expect(publishedTargets(gateway)).toContainEqual({ published: '8080', target: '8080' })
  })

  it('has a redis service with a redis-cli ping healthcheck that the gateway waits for', () => {
    expect(String(redis['image'])).toMatch(/^redis:7(-alpine)?$/)
    const healthcheck = redis['healthcheck']
    expect(isDict(healthcheck)).toBe(true)
    const test = isDict(healthcheck) ? healthcheck['test'] : undefined
    expect(scalars(test).join(' ')).toMatch(/redis-cli.*ping/)
    const dependsOn = gateway['depends_on']
    expect(isDict(dependsOn) && isDict(dependsOn['redis']) ? dependsOn['redis']['condition'] : undefined).toBe('service_healthy')
  })

  it('holds no literal secrets', () => {
    expect(text).not.toMatch(SECRET)
    for (const value of scalars(doc)) expect(value).not.toMatch(SECRET)
    // Anything key-like comes from the host environment, never a literal.
    for (const [key, value] of environmentOf(gateway)) {
      if (/KEY|SECRET|TOKEN|PASSWORD/i.test(key) && value !== null) expect(value, key).toMatch(/^\$\{[A-Z0-9_]+(:?-[^}]*)?\}$/)
    }
  })

  it('sets only environment variables the config schema knows', () => {
    const known = new Set(Object.keys(EnvSchema.properties))
    const names = [...environmentOf(gateway).keys()]
    expect(names.length).toBeGreaterThan(0)
    for (const name of names) expect(known, `${name} is not in EnvSchema`).toContain(name)
    expect(names).toEqual(expect.arrayContaining(['PORT', 'LOG_LEVEL', 'OPENAI_BASE_URL', 'OPENAI_API_KEY']))
  })
})

describe('Dockerfile', () => {
  const stages = parseDockerfile(read('Dockerfile'))
  const runtime = stages.at(-1) ?? { from: '', instructions: [] }
  const args = (stage: Stage, keyword: string): string[] => stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args)

  it('is multi-stage on node:20', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) expect(stage.from).toMatch(/^node:20(\.[\d.]+)?(-slim)?(\s+AS\s+\S+)?$/i)
  })

  it('builds with npm ci + npm run build and installs only production deps at runtime', () => {
    const build = stages.slice(0, -1).flatMap((stage) => args(stage, 'RUN')).join('\n')
    expect(build).toMatch(/npm ci\b/)
    expect(build).toMatch(/npm run build\b/)
    const run = args(runtime, 'RUN').join('\n')
    expect(run).toMatch(/npm ci\b[^\n]*--omit=dev/)
    expect(args(runtime, 'COPY').join('\n')).toMatch(/--from=\S+\s+\S*dist/)
  })

  it('runs as a non-root user', () => {
    const user = args(runtime, 'USER').at(-1)
    expect(user).toBeDefined()
    expect(user).not.toMatch(/^(root|0)(:.*)?$/)
  })

  it('exposes 8080 and health-checks /healthz with node fetch', () => {
    expect(args(runtime, 'EXPOSE').join(' ').split(/\s+/)).toContain('8080')
    const healthcheck = args(runtime, 'HEALTHCHECK').join('\n')
    expect(healthcheck).toMatch(/\bCMD\b/)
    expect(healthcheck).toMatch(/fetch\(/)
    expect(healthcheck).toContain('/healthz')
  })

  it('starts node on the compiled server directly', () => {
    const cmd = args(runtime, 'CMD').at(-1)
    expect(cmd).toBeDefined()
    expect(execForm(cmd ?? '')).toEqual(['node', 'dist/src/server.js'])
    // The compiled entry comes from src/server.ts via tsconfig.build.json (rootDir '.', outDir dist).
    expect(existsSync(root('src/server.ts'))).toBe(true)
  })
})

describe('.dockerignore', () => {
  it('keeps local env files and node_modules out of the build context', () => {
    const lines = read('.dockerignore').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    const allowlist = lines.includes('*')
    if (allowlist) {
      expect(lines).not.toContain('!.env')
      expect(lines).not.toContain('!node_modules')
    } else {
      expect(lines).toEqual(expect.arrayContaining(['.env', 'node_modules']))
    }
  })
})

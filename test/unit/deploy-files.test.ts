/**
 * The deployment files, checked without Docker: docker-compose.yml is parsed as YAML and its
 * environment run through loadConfig, deploy/nginx.conf with a small block parser, the
 * Dockerfile with a small instruction parser (comments, line continuations, stages).
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { EnvSchema, loadConfig } from '../../src/config.js'

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

/**
 * The value compose gives a variable with the host environment empty: `${VAR:-default}` and
 * `${VAR-default}` become the default, `${VAR}` the empty string ("" is "unset" for loadConfig).
 */
function interpolate (value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_m, _name: string, fallback: string | undefined) => fallback ?? '')
}

describe('docker-compose.yml', () => {
  const text = read('docker-compose.yml')
  const doc: unknown = parse(text)
  const services = isDict(doc) && isDict(doc['services']) ? doc['services'] : {}
  const gateway = isDict(services['gateway']) ? services['gateway'] : {}
  const redis = isDict(services['redis']) ? services['redis'] : {}
  const lb = isDict(services['lb']) ? services['lb'] : {}
  const env = environmentOf(gateway)

  it('runs three gateway replicas built from this repository, reachable only through the load balancer', () => {
    const build = gateway['build']
    const context = typeof build === 'string' ? build : isDict(build) ? build['context'] : undefined
    expect(typeof context).toBe('string')
    expect(existsSync(root(`${String(context)}/Dockerfile`))).toBe(true)
    const deploy = gateway['deploy']
    expect(isDict(deploy) ? deploy['replicas'] : undefined).toBe(3)
    expect(publishedTargets(gateway)).toEqual([]) // replicas cannot share a host port
    expect(gateway['container_name']).toBeUndefined()
  })

  it('puts nginx in front, publishing 8080 to the port the gateway listens on, with deploy/nginx.conf', () => {
    expect(String(lb['image'])).toMatch(/^nginx:1\.(2[89]|[3-9]\d)(\.\d+)?-alpine$/) // 1.27.3+: `server … resolve`
    expect(publishedTargets(lb)).toEqual([{ published: '8080', target: '8080' }])
    const volumes = Array.isArray(lb['volumes']) ? lb['volumes'].map(String) : []
    expect(volumes).toContain('./deploy/nginx.conf:/etc/nginx/nginx.conf:ro')
    const dependsOn = lb['depends_on']
    expect(isDict(dependsOn) && isDict(dependsOn['gateway']) ? dependsOn['gateway']['condition'] : undefined).toBe('service_healthy')
  })

  it('has a redis service with a redis-cli ping healthcheck that the gateway waits for and uses', () => {
    expect(String(redis['image'])).toMatch(/^redis:7(-alpine)?$/)
    const healthcheck = redis['healthcheck']
    expect(isDict(healthcheck)).toBe(true)
    const test = isDict(healthcheck) ? healthcheck['test'] : undefined
    expect(scalars(test).join(' ')).toMatch(/redis-cli.*ping/)
    const dependsOn = gateway['depends_on']
    expect(isDict(dependsOn) && isDict(dependsOn['redis']) ? dependsOn['redis']['condition'] : undefined).toBe('service_healthy')
    expect(env.get('REDIS_URL')).toBe('redis://redis:6379')
  })

  it('holds no literal secrets', () => {
    expect(text).not.toMatch(SECRET)
    for (const value of scalars(doc)) expect(value).not.toMatch(SECRET)
    // Anything key-like comes from the host environment, never a literal.
    for (const [key, value] of env) {
      if (/KEY(S)?$|SECRET|TOKEN|PASSWORD/i.test(key) && value !== null) expect(value, key).toMatch(/^\$\{[A-Z0-9_]+(:?-[^}]*)?\}$/)
    }
  })

  it('sets only variables the config schema knows, with values loadConfig accepts', () => {
    const known = new Set(Object.keys(EnvSchema.properties))
    const names = [...env.keys()]
    expect(names.length).toBeGreaterThan(0)
    for (const name of names) expect(known, `${name} is not in EnvSchema`).toContain(name)
    expect(names).toEqual(expect.arrayContaining(['PORT', 'LOG_LEVEL', 'OPENAI_BASE_URL', 'OPENAI_API_KEY', 'REDIS_URL']))
    const resolved = Object.fromEntries([...env].map(([name, value]) => [name, interpolate(value ?? '')]))
    const config = loadConfig(resolved)
    expect(config.store.kind).toBe('redis')
    expect(config.port).toBe(8080)
    // And with the host's variables set, the same file still validates.
    const withHost = Object.fromEntries([...env].map(([name, value]) => [name, (value ?? '').replace(/\$\{([A-Z0-9_]+)[^}]*\}/g, (_m, v: string) => ({
      LOG_LEVEL: 'debug', OPENAI_BASE_URL: 'https://api.openai.com/v1', OPENAI_API_KEY: 'sk-test-not-real', DEFAULT_MODEL: 'gpt-4o-mini', GATEWAY_API_KEYS: 'gw-test-key:acme', EPHEMERAL_KEY_SECRET: 'x'.repeat(32)
    } as Record<string, string>)[v] ?? '')]))
    expect(loadConfig(withHost).upstream.kind).toBe('openai-compatible')
  })

  it('gives the gateway longer to stop than its own shutdown grace', () => {
    const grace = Number(interpolate(env.get('SHUTDOWN_GRACE_MS') ?? '10000'))
    const stop = /^(\d+)s$/.exec(String(gateway['stop_grace_period']))
    expect(stop).not.toBeNull()
    expect(Number(stop?.[1]) * 1000).toBeGreaterThan(grace)
  })
})

interface NginxBlock { name: string, args: string[], directives: Array<{ name: string, args: string[] }>, blocks: NginxBlock[] }

/** nginx.conf → nested blocks of directives (comments, quotes, `{ }` and `;`). */
function parseNginx (text: string): NginxBlock {
  const tokens = text.replace(/#[^\n]*/g, '').match(/'[^']*'|"[^"]*"|[{};]|[^\s{};]+/g) ?? []
  const rootBlock: NginxBlock = { name: 'main', args: [], directives: [], blocks: [] }
  const stack = [rootBlock]
  let words: string[] = []
  for (const token of tokens) {
    const current = stack.at(-1) ?? rootBlock
    if (token === ';') {
      const [name = '', ...args] = words
      current.directives.push({ name, args })
      words = []
    } else if (token === '{') {
      const [name = '', ...args] = words
      const block = { name, args, directives: [], blocks: [] }
      current.blocks.push(block)
      stack.push(block)
      words = []
    } else if (token === '}') {
      stack.pop()
    } else {
      words.push(token.replace(/^(['"])(.*)\1$/, '$2'))
    }
  }
  expect(stack, 'unbalanced braces').toHaveLength(1)
  expect(words, 'a directive without ;').toEqual([])
  return rootBlock
}

function findBlocks (block: NginxBlock, name: string): NginxBlock[] {
  return [...block.blocks.filter((b) => b.name === name), ...block.blocks.flatMap((b) => findBlocks(b, name))]
}
const directive = (block: NginxBlock | undefined, name: string): string[][] => (block?.directives ?? []).filter((d) => d.name === name).map((d) => d.args)

describe('deploy/nginx.conf', () => {
  const conf = parseNginx(read('deploy/nginx.conf'))
  const upstream = findBlocks(conf, 'upstream')[0]
  const server = findBlocks(conf, 'server')[0]
  const location = findBlocks(conf, 'location').find((l) => l.args.join(' ') === '/')

  it('balances over the compose gateway service on the port it listens on', () => {
    expect(upstream?.args).toEqual(['tokenwire'])
    const servers = directive(upstream, 'server')
    expect(servers).toHaveLength(1)
    expect(servers[0]?.[0]).toBe('gateway:8080')
    expect(servers[0]).toContain('resolve') // replicas come and go: re-resolved through Docker's DNS
    expect(directive(findBlocks(conf, 'http')[0], 'resolver')[0]?.[0]).toBe('127.0.0.11')
    expect(directive(upstream, 'least_conn')).toHaveLength(1)
    expect(directive(server, 'listen')).toEqual([['8080']])
    expect(directive(location, 'proxy_pass')).toEqual([['http://tokenwire']])
  })

  it('upgrades WebSockets: HTTP/1.1 with the Upgrade and Connection headers passed on', () => {
    expect(directive(location, 'proxy_http_version')).toEqual([['1.1']])
    const headers = new Map(directive(location, 'proxy_set_header').map(([name, value]) => [name?.toLowerCase(), value]))
    expect(headers.get('upgrade')).toBe('$http_upgrade')
    expect(headers.get('connection')).toBe('$connection_upgrade')
    const map = findBlocks(conf, 'map').find((m) => m.args.join(' ') === '$http_upgrade $connection_upgrade')
    expect(directive(map, 'default')).toEqual([['upgrade']])
  })

  it('streams without buffering, with Nagle off and timeouts longer than the heartbeat', () => {
    expect(directive(location, 'proxy_buffering')).toEqual([['off']])
    expect(directive(location, 'proxy_request_buffering')).toEqual([['off']])
    expect(directive(location, 'tcp_nodelay')).toEqual([['on']])
    const seconds = (value: string | undefined): number => {
      const match = /^(\d+)(s|m|h)?$/.exec(value ?? '')
      return match === null ? 0 : Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] ?? 's'] ?? 1)
    }
    expect(seconds(directive(location, 'proxy_read_timeout')[0]?.[0])).toBeGreaterThanOrEqual(3600)
    expect(seconds(directive(location, 'proxy_send_timeout')[0]?.[0])).toBeGreaterThanOrEqual(3600)
  })
})

describe('Dockerfile', () => {
  const stages = parseDockerfile(read('Dockerfile'))
  const runtime = stages.at(-1) ?? { from: '', instructions: [] }
  const args = (stage: Stage, keyword: string): string[] => stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args)

  it('is multi-stage on a maintained Node LTS, pinned by major, slim', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) expect(stage.from).toMatch(/^node:(20|22|24)(\.[\d.]+)?-(bookworm-)?slim(\s+AS\s+\S+)?$/i)
  })

  it('builds with npm ci + npm run build and installs only production deps at runtime', () => {
    const build = stages.slice(0, -1).flatMap((stage) => args(stage, 'RUN')).join('\n')
    expect(build).toMatch(/npm ci\b/)
    expect(build).toMatch(/npm run build\b/)
    const run = args(runtime, 'RUN').join('\n')
    expect(run).toMatch(/npm ci\b[^\n]*--omit=dev/)
    expect(args(runtime, 'COPY').join('\n')).toMatch(/--from=\S+\s+\S*dist/)
  })

  it('copies what the gateway reads at run time, and the build context lets it in', () => {
    const copies = args(runtime, 'COPY').map((a) => a.split(/\s+/))
    const sources = copies.map((parts) => parts.filter((p) => !p.startsWith('--')).slice(0, -1)).flat()
    // The chat page's static files are read from src/web (the client library is compiled into dist).
    if (existsSync(root('src/web'))) expect(sources.some((s) => /(^|\/)src\/web\/?$/.test(s))).toBe(true)
    // Every COPY from the context names something that exists and that .dockerignore admits.
    const ignore = read('.dockerignore').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    for (const [index, parts] of copies.entries()) {
      if (parts.some((p) => p.startsWith('--from='))) continue
      for (const source of parts.filter((p) => !p.startsWith('--')).slice(0, -1)) {
        expect(existsSync(root(source)), `COPY #${index} ${source}`).toBe(true)
        if (ignore.includes('*')) expect(ignore.some((l) => l === `!${source}` || l === `!${source.replace(/\/?$/, '/')}`), `${source} is not admitted by .dockerignore`).toBe(true)
      }
    }
  })

  it('runs as a non-root user', () => {
    const user = args(runtime, 'USER').at(-1)
    expect(user).toBeDefined()
    expect(user).not.toMatch(/^(root|0)(:.*)?$/)
  })

  it('exposes 8080, health-checks /healthz with node fetch, and stops with SIGTERM', () => {
    expect(args(runtime, 'EXPOSE').join(' ').split(/\s+/)).toContain('8080')
    const healthcheck = args(runtime, 'HEALTHCHECK').join('\n')
    expect(healthcheck).toMatch(/\bCMD\b/)
    expect(healthcheck).toMatch(/fetch\(/)
    expect(healthcheck).toContain('/healthz')
    expect(args(runtime, 'STOPSIGNAL')).toEqual(['SIGTERM'])
  })

  it('starts node on the compiled server directly', () => {
    const cmd = args(runtime, 'CMD').at(-1)
    expect(cmd).toBeDefined()
    expect(execForm(cmd ?? '')).toEqual(['node', 'dist/src/server.js'])
    // The compiled entry comes from src/server.ts via tsconfig.build.json (rootDir '.', outDir dist),
    // and package.json's start script runs the same file.
    expect(existsSync(root('src/server.ts'))).toBe(true)
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>, main: string }
    expect(pkg.scripts['start']).toBe('node dist/src/server.js')
    expect(pkg.main).toBe('dist/src/server.js')
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

/**
 * `calculate`: arithmetic for the model, by a hand-written recursive-descent evaluator over a fixed
 * set of operators, constants and functions. Nothing is ever handed to eval or Function, and names
 * are looked up in Maps, so `constructor` or `__proto__` are just unknown identifiers.
 *
 *   expression := term (('+' | '-') term)*
 *   term       := unary (('*' | '/' | '%') unary)*
 *   unary      := ('+' | '-') unary | power           -2^2 = -4
 *   power      := primary ('^' unary)?                right-associative: 2^3^2 = 2^9
 *   primary    := number | constant | function '(' expression (',' expression)* ')' | '(' expression ')'
 */
import { Type } from '@sinclair/typebox'
import { defineTool, type ServerTool } from '../registry.js'

/** Longest expression accepted. */
export const MAX_EXPRESSION_CHARS = 500
/** Deepest nesting of parentheses, calls, unary signs and powers. */
export const MAX_NESTING = 64

const CONSTANTS: ReadonlyMap<string, number> = new Map([['pi', Math.PI], ['e', Math.E]])

interface MathFunction { readonly minArgs: number, readonly maxArgs: number, readonly apply: (args: readonly number[]) => number }

const unary = (fn: (x: number) => number): MathFunction => ({ minArgs: 1, maxArgs: 1, apply: ([x = Number.NaN]) => fn(x) })

const FUNCTIONS: ReadonlyMap<string, MathFunction> = new Map([
  ['sqrt', unary(Math.sqrt)],
  ['abs', unary(Math.abs)],
  ['round', unary(Math.round)],
  ['floor', unary(Math.floor)],
  ['ceil', unary(Math.ceil)],
  ['log', unary(Math.log)],
  ['log10', unary(Math.log10)],
  ['sin', unary(Math.sin)],
  ['cos', unary(Math.cos)],
  ['tan', unary(Math.tan)],
  ['min', { minArgs: 1, maxArgs: Infinity, apply: (args) => Math.min(...args) }],
  ['max', { minArgs: 1, maxArgs: Infinity, apply: (args) => Math.max(...args) }]
])

type Token =
  | { readonly kind: 'number', readonly value: number, readonly text: string, readonly at: number }
  | { readonly kind: 'name', readonly text: string, readonly at: number }
  | { readonly kind: 'symbol', readonly text: string, readonly at: number }
  | { readonly kind: 'end', readonly text: '', readonly at: number }

const NUMBER = /(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y
const NAME = /[A-Za-z_][A-Za-z0-9_]*/y
const SPACE = /\s+/y
const SYMBOLS = new Set(['+', '-', '*', '/', '%', '^', '(', ')', ','])

/** Thrown for any expression that cannot be evaluated; the message says why and where (1-based column). */
export class CalculationError extends Error {
  override readonly name = 'CalculationError'
}

function tokenize (source: string): Token[] {
  const tokens: Token[] = []
  let at = 0
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = at
    return re.exec(source)?.[0]
  }
  while (at < source.length) {
    const space = match(SPACE)
    if (space !== undefined) {
      at += space.length
      continue
    }
    const number = match(NUMBER)
    const name = number === undefined ? match(NAME) : undefined
    const char = source.charAt(at)
    if (number !== undefined) tokens.push({ kind: 'number', value: Number(number), text: number, at })
    else if (name !== undefined) tokens.push({ kind: 'name', text: name, at })
    else if (SYMBOLS.has(char)) tokens.push({ kind: 'symbol', text: char, at })
    else throw new CalculationError(`unexpected character ${JSON.stringify(char)} at column ${at + 1}`)
    at += (number ?? name ?? char).length
  }
  tokens.push({ kind: 'end', text: '', at })
  return tokens
}

class Parser {
  readonly #tokens: readonly Token[]
  #next = 0
  #depth = 0

  constructor (tokens: readonly Token[]) {
    this.#tokens = tokens
  }

  parse (): number {
    const value = this.#expression()
    const rest = this.#peek()
    if (rest.kind !== 'end') throw new CalculationError(`unexpected ${describe(rest)} at column ${rest.at + 1}`)
    return value
  }

  #expression (): number {
    let value = this.#term()
    for (let op = this.#peek(); op.kind === 'symbol' && (op.text === '+' || op.text === '-'); op = this.#peek()) {
      this.#next++
      const right = this.#term()
      value = finite(op.text === '+' ? value + right : value - right, `${op.text} at column ${op.at + 1}`)
    }
    return value
  }

  #term (): number {
    let value = this.#unary()
    for (let op = this.#peek(); op.kind === 'symbol' && (op.text === '*' || op.text === '/' || op.text === '%'); op = this.#peek()) {
      this.#next++
      const right = this.#unary()
      if (op.text !== '*' && right === 0) throw new CalculationError(`division by zero at column ${op.at + 1}`)
      value = finite(op.text === '*' ? value * right : op.text === '/' ? value / right : value % right, `${op.text} at column ${op.at + 1}`)
    }
    return value
  }

  #unary (): number {
    const sign = this.#peek()
    if (sign.kind === 'symbol' && (sign.text === '-' || sign.text === '+')) {
      this.#next++
      const value = this.#nested(sign, () => this.#unary())
      return sign.text === '-' ? -value : value
    }
    return this.#power()
  }

  #power (): number {
    const base = this.#primary()
    const op = this.#peek()
    if (op.kind !== 'symbol' || op.text !== '^') return base
    this.#next++
    const exponent = this.#nested(op, () => this.#unary())
    return finite(base ** exponent, `^ at column ${op.at + 1}`)
  }

  #primary (): number {
    const token = this.#take()
    if (token.kind === 'number') return finite(token.value, `the number ${token.text}`)
    if (token.kind === 'symbol' && token.text === '(') {
      const value = this.#nested(token, () => this.#expression())
      this.#expect(')', token)
      return value
    }
    if (token.kind === 'name') return this.#name(token)
    throw new CalculationError(`expected a number, name or "(" but found ${describe(token)} at column ${token.at + 1}`)
  }

  #name (token: Token): number {
    const constant = CONSTANTS.get(token.text)
    const fn = FUNCTIONS.get(token.text)
    const open = this.#peek()
    const called = open.kind === 'symbol' && open.text === '('
    if (constant !== undefined) {
      if (called) throw new CalculationError(`${token.text} is a constant, not a function (column ${token.at + 1})`)
      return constant
    }
    if (fn === undefined) {
      throw new CalculationError(`unknown name ${JSON.stringify(token.text)} at column ${token.at + 1}; known: ${[...CONSTANTS.keys(), ...FUNCTIONS.keys()].join(', ')}`)
    }
    if (!called) throw new CalculationError(`${token.text} is a function: call it like ${token.text}(x) (column ${token.at + 1})`)
    this.#next++
    const args = this.#nested(token, () => {
      const values = [this.#expression()]
      for (let comma = this.#peek(); comma.kind === 'symbol' && comma.text === ','; comma = this.#peek()) {
        this.#next++
        values.push(this.#expression())
      }
      return values
    })
    this.#expect(')', open)
    if (args.length < fn.minArgs || args.length > fn.maxArgs) {
      const wanted = fn.maxArgs === fn.minArgs ? String(fn.minArgs) : `at least ${fn.minArgs}`
      throw new CalculationError(`${token.text} takes ${wanted} argument${fn.minArgs === 1 && fn.maxArgs === 1 ? '' : 's'}, got ${args.length} (column ${token.at + 1})`)
    }
    return finite(fn.apply(args), `${token.text}(${args.join(', ')})`)
  }

  /** Runs one level of nesting, refusing to go deeper than MAX_NESTING. */
  #nested<T> (at: Token, inner: () => T): T {
    if (++this.#depth > MAX_NESTING) throw new CalculationError(`the expression nests deeper than ${MAX_NESTING} levels (column ${at.at + 1})`)
    try {
      return inner()
    } finally {
      this.#depth--
    }
  }

  #expect (text: string, opener: Token): void {
    const token = this.#take()
    if (token.kind !== 'symbol' || token.text !== text) {
      throw new CalculationError(`expected "${text}" for the "${opener.text}" at column ${opener.at + 1} but found ${describe(token)} at column ${token.at + 1}`)
    }
  }

  #peek (): Token {
    return this.#tokens[this.#next] ?? this.#end()
  }

  #take (): Token {
    const token = this.#peek()
    if (token.kind !== 'end') this.#next++
    return token
  }

  #end (): Token {
    return { kind: 'end', text: '', at: this.#tokens.at(-1)?.at ?? 0 }
  }
}

function describe (token: Token): string {
  return token.kind === 'end' ? 'the end of the expression' : JSON.stringify(token.text)
}

function finite (value: number, what: string): number {
  if (!Number.isFinite(value)) throw new CalculationError(`${what} does not give a finite number`)
  return value
}

/**
 * Evaluates `expression`. Throws a CalculationError for anything but a finite result: unknown names,
 * division by zero, trailing input, nesting deeper than MAX_NESTING, or longer than MAX_EXPRESSION_CHARS.
 */
export function evaluate (expression: string): number {
  if (expression.length > MAX_EXPRESSION_CHARS) throw new CalculationError(`the expression is longer than ${MAX_EXPRESSION_CHARS} characters`)
  return tidy(new Parser(tokenize(expression)).parse())
}

/**
 * Drops binary floating-point noise: 0.1 + 0.2 gives 0.3, not 0.30000000000000004, as the result is
 * within two units in the last place of its 15-digit rounding. Integers and other results (pi, 1/3) stay exact; -0 is 0.
 */
function tidy (result: number): number {
  if (Number.isInteger(result)) return result + 0
  const rounded = Number(result.toPrecision(15))
  return Math.abs(rounded - result) <= 2 * Number.EPSILON * Math.abs(result) ? rounded : result
}

export const calculate: ServerTool = defineTool({
  name: 'calculate',
  description: 'Evaluates an arithmetic expression exactly as written and returns the number. Supports + - * / % ^ (power), ' +
    'parentheses, the constants pi and e, and sqrt, abs, round, floor, ceil, min, max, log (natural), log10, sin, cos, tan (radians).',
  parameters: Type.Object({
    expression: Type.String({ minLength: 1, maxLength: MAX_EXPRESSION_CHARS, description: 'The expression, e.g. "(2 + 3) * sqrt(16) ^ 2"' })
  }, { additionalProperties: false }),
  timeoutMs: 1000,
  async execute ({ expression }) {
    return { expression, result: evaluate(expression) }
  }
})

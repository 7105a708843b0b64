/**
 * Hand-made SVG line charts for the benchmark report (no chart dependency): linear or log
 * axes, one polyline with dots per series, a legend, a title and axis labels.
 */

export interface Series {
  readonly name: string
  /** [x, y] pairs; non-finite values are skipped. */
  readonly points: ReadonlyArray<readonly [number, number]>
}

export interface ChartOptions {
  readonly title: string
  readonly subtitle?: string
  readonly xLabel: string
  readonly yLabel: string
  readonly xLog?: boolean
  readonly yLog?: boolean
  /** Tick positions on x; default: the distinct x values (log) or 5 even steps (linear). */
  readonly xTicks?: readonly number[]
  /** Start y at 0 (linear only); default true. */
  readonly yFromZero?: boolean
  readonly series: readonly Series[]
}

const WIDTH = 720
const HEIGHT = 420
const MARGIN = { left: 72, right: 180, top: 56, bottom: 56 }
/** Fixed colours per target, so every chart reads alike. */
const COLOURS: Record<string, string> = {
  direct: '#6b7280',
  'bare-relay': '#0ea5e9',
  'gateway-memory': '#16a34a',
  'gateway-redis': '#dc2626',
  peer: '#9333ea'
}
const FALLBACK = ['#f59e0b', '#0d9488', '#db2777', '#4f46e5']

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function format (value: number): string {
  if (value === 0) return '0'
  const abs = Math.abs(value)
  if (abs >= 10_000) return `${Math.round(value / 1000)}k`
  if (abs >= 1000) return `${(value / 1000).toFixed(1).replace(/\.0$/, '')}k`
  if (abs >= 10) return String(Math.round(value))
  if (abs >= 1) return value.toFixed(1).replace(/\.0$/, '')
  return value.toPrecision(2)
}

/** Ticks for a log axis: 1, 2, 5 × powers of ten within [min, max]. */
function logTicks (min: number, max: number): number[] {
  const ticks: number[] = []
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v)
    }
  }
  return ticks
}

function linearTicks (min: number, max: number): number[] {
  const span = max - min || 1
  const step = 10 ** Math.floor(Math.log10(span / 5))
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 6) ?? step * 10
  const ticks: number[] = []
  for (let v = Math.ceil(min / nice) * nice; v <= max + nice * 1e-9; v += nice) ticks.push(Math.round(v / nice) * nice)
  return ticks
}

export function lineChart (options: ChartOptions): string {
  const series = options.series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!options.xLog || x > 0) && (!options.yLog || y > 0)) }))
  const all = series.flatMap((s) => s.points)
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${MARGIN.left}" y="24" font-size="15" font-weight="600">${escape(options.title)}</text>`,
    ...(options.subtitle === undefined ? [] : [`<text x="${MARGIN.left}" y="42" fill="#555">${escape(options.subtitle)}</text>`])
  ]
  if (all.length === 0) {
    parts.push(`<text x="${MARGIN.left}" y="${MARGIN.top + 40}">no data</text></svg>`)
    return parts.join('\n')
  }
  let [xMin, xMax] = [Math.min(...all.map(([x]) => x)), Math.max(...all.map(([x]) => x))]
  let [yMin, yMax] = [Math.min(...all.map(([, y]) => y)), Math.max(...all.map(([, y]) => y))]
  if (!options.yLog && options.yFromZero !== false) yMin = Math.min(0, yMin)
  if (options.yLog) { yMin = 10 ** Math.floor(Math.log10(yMin)); yMax = 10 ** Math.ceil(Math.log10(yMax)) } else { yMax = yMax === yMin ? yMin + 1 : yMax * 1.05 }
  if (options.xLog) { xMin = xMin / 1.15; xMax = xMax * 1.15 } else if (xMax === xMin) { xMax = xMin + 1 }
  const sx = (x: number): number => MARGIN.left + plotW * (options.xLog ? (Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin)) : (x - xMin) / (xMax - xMin))
  const sy = (y: number): number => MARGIN.top + plotH * (1 - (options.yLog ? (Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin)) : (y - yMin) / (yMax - yMin)))

  const xTicks = (options.xTicks ?? (options.xLog ? logTicks(xMin, xMax) : linearTicks(xMin, xMax))).filter((x) => x >= xMin && x <= xMax)
  const yTicks = options.yLog ? logTicks(yMin, yMax) : linearTicks(yMin, yMax)
  parts.push(`<g stroke="#e5e7eb">${yTicks.map((y) => `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}"/>`).join('')}${xTicks.map((x) => `<line y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}"/>`).join('')}</g>`)
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#9ca3af"/>`)
  parts.push(`<g fill="#374151" text-anchor="end">${yTicks.map((y) => `<text x="${MARGIN.left - 6}" y="${(sy(y) + 4).toFixed(1)}">${format(y)}</text>`).join('')}</g>`)
  parts.push(`<g fill="#374151" text-anchor="middle">${xTicks.map((x) => `<text x="${sx(x).toFixed(1)}" y="${MARGIN.top + plotH + 18}">${format(x)}</text>`).join('')}</g>`)
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle" fill="#111">${escape(options.xLabel)}</text>`)
  parts.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#111">${escape(options.yLabel)}</text>`)

  series.forEach((s, i) => {
    const colour = COLOURS[s.name] ?? FALLBACK[i % FALLBACK.length] ?? '#000'
    const pts = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.join(' ')}"/>`)
    if (s.points.length <= 40) parts.push(`<g fill="${colour}">${pts.map((p) => { const [x, y] = p.split(','); return `<circle cx="${x ?? 0}" cy="${y ?? 0}" r="3"/>` }).join('')}</g>`)
    const ly = MARGIN.top + 10 + i * 20
    parts.push(`<line x1="${WIDTH - MARGIN.right + 16}" x2="${WIDTH - MARGIN.right + 40}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="3"/>`)
    parts.push(`<text x="${WIDTH - MARGIN.right + 46}" y="${ly + 4}">${escape(s.name)}</text>`)
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}

/** The empirical CDF of `values` as [value, percentile] points (at most ~200 of them). */
export function cdfPoints (values: readonly number[]): Array<[number, number]> {
  const sorted = [...values].sort((a, b) => a - b)
  const step = Math.max(1, Math.floor(sorted.length / 200))
  const points: Array<[number, number]> = []
  for (let i = 0; i < sorted.length; i += step) points.push([sorted[i] ?? 0, ((i + 1) / sorted.length) * 100])
  const last = sorted.at(-1)
  if (last !== undefined) points.push([last, 100])
  return points
}

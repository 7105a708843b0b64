/**
 * Headless Chromium for the end-to-end tests: the Debian `chromium` package driven by
 * playwright-core (no browser download). `.ci/run` installs the package when it is missing;
 * without it these tests fail with a message that says so. Screenshots go to test-results/e2e/.
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser']

/** Where screenshots are saved (ignored by git; CI keeps it as an artifact). */
export const ARTIFACTS = fileURLToPath(new URL('../../test-results/e2e/', import.meta.url))

export async function launchChromium (): Promise<Browser> {
  const executablePath = CANDIDATES.find((path) => existsSync(path))
  if (executablePath === undefined) {
    throw new Error(`Chromium not found at ${CANDIDATES.join(' or ')}: install the Debian package (apt-get install chromium), as .ci/run does`)
  }
  await mkdir(ARTIFACTS, { recursive: true })
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
}

/** A fresh browser profile (its own storage), light or dark. */
export async function newContext (browser: Browser, colorScheme: 'light' | 'dark' = 'light'): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1100, height: 760 }, colorScheme })
}

/** Saves a screenshot as test-results/e2e/<name>.png and returns its path. */
export async function snap (page: Page, name: string): Promise<string> {
  const path = `${ARTIFACTS}${name}.png`
  await page.screenshot({ path })
  return path
}

/**
 * Collects the page's uncaught errors and console errors, to assert there were none. The
 * browser's own network messages (a refused request, a socket that could not connect) are
 * expected in some tests and are left out.
 */
export function watchErrors (page: Page): string[] {
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
  page.on('console', (message) => {
    const text = message.text()
    if (message.type() === 'error' && !/^Failed to load resource|^WebSocket connection to/.test(text)) errors.push(`console: ${text}`)
  })
  return errors
}

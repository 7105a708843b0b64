/**
 * A fresh self-signed certificate for 127.0.0.1 / localhost, made by the `openssl` CLI in a
 * temporary directory. No key material lives in the repository.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface TestCertificate {
  /** PEM certificate, for TLS_CERT_FILE. */
  readonly certFile: string
  /** PEM private key, for TLS_KEY_FILE. */
  readonly keyFile: string
  /** The certificate itself: being self-signed, it is the CA a client must trust. */
  readonly ca: Buffer
  readonly dir: string
  /** Removes the directory and everything in it. */
  cleanup (): Promise<void>
}

export async function createTestCertificate (): Promise<TestCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'tokenwire-tls-'))
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  const cleanup = async (): Promise<void> => { await rm(dir, { recursive: true, force: true }) }
  try {
    await run('openssl', [
      'req', '-x509',
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-days', '1',
      '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', keyFile,
      '-out', certFile
    ], { timeout: 15_000 })
    const ca = await readFile(certFile)
    return { certFile, keyFile, ca, dir, cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

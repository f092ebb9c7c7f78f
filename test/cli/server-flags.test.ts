/**
 * `lockstep server`'s safe defaults, as a real process: with no tokens it listens on loopback
 * only and says so; on another host without tokens it refuses to start (exit 2, naming
 * `--insecure-open`) unless told; tokens come from `--tokens-file` or `LOCKSTEP_TOKENS_FILE`
 * too, with `#` comments; `--capability-ttl-ms` is a whole number of milliseconds, at least 1000;
 * the capability key is kept in the data directory, mode 0600, and survives a restart.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()

let dir: string
const running = new Set<ReturnType<typeof spawn>>()

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-flags-'))
})

afterEach(async () => {
  for (const child of running) {
    child.kill('SIGTERM')
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise((r) => child.once('exit', r))
    }
  }
  running.clear()
  rmSync(dir, { recursive: true, force: true })
})

interface Started {
  /** The first line on stdout, or undefined when it exited first. */
  line: string | undefined
  code: number | null
  stderr: () => string
}

/** Spawns `lockstep server ARGS` and waits for its first line or its exit. */
function server(args: string[], env: Record<string, string> = {}): Promise<Started> {
  const clean = { ...process.env }
  delete clean.LOCKSTEP_TOKENS
  delete clean.LOCKSTEP_TOKENS_FILE
  delete clean.LOCKSTEP_DATABASE_URL
  const child = spawn(
    process.execPath,
    ['bin/lockstep.js', 'server', '--port', '0', '--data-dir', join(dir, 'data'), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...clean, ...env } },
  )
  opened.child(child, `lockstep server ${args.join(' ')}`)
  running.add(child)
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  return new Promise((resolve) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve({ line: out.slice(0, nl), code: null, stderr: () => err })
    })
    child.on('exit', (code) => resolve({ line: undefined, code, stderr: () => err }))
  })
}

const urlOf = (line: string | undefined) => /listening on (\S+)/.exec(line ?? '')![1]!

describe('lockstep server', () => {
  it('without tokens listens on loopback only, and says so', async () => {
    const s = await server([])
    expect(s.line).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+ .*loopback only/)
  })

  it('refuses a non-loopback host without tokens: exit 2, naming --insecure-open', async () => {
    const s = await server(['--host', '0.0.0.0'])
    expect(s.line).toBeUndefined()
    expect(s.code).toBe(2)
    expect(s.stderr()).toMatch(/no tokens/)
    expect(s.stderr()).toContain('--insecure-open')
  })

  it('starts open on a non-loopback host only with --insecure-open, and says so', async () => {
    const s = await server(['--host', '0.0.0.0', '--insecure-open'])
    expect(s.line).toMatch(/OPEN to anyone/)
  })

  it.each(['flag', 'environment'])(
    'takes tokens from a tokens file given by %s, comments and all',
    async (how) => {
      const file = join(dir, 'tokens')
      writeFileSync(
        file,
        '# the operators\nadmin:ops:file-admin-token  # ops on call\n\n# workers\nworker:w-*:file-worker-token\n',
      )
      const s = await server(
        how === 'flag' ? ['--tokens-file', file] : [],
        how === 'flag' ? {} : { LOCKSTEP_TOKENS_FILE: file },
      )
      expect(s.line).not.toMatch(/open/)
      const url = urlOf(s.line)
      expect((await fetch(`${url}/v1/targets`)).status).toBe(401)
      const admin = await fetch(`${url}/v1/targets`, {
        headers: { authorization: 'Bearer file-admin-token' },
      })
      expect(admin.status).toBe(200)
      const other = await fetch(`${url}/v1/targets`, {
        method: 'POST',
        headers: { authorization: 'Bearer file-worker-token', 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'clinic-1' }),
      })
      expect(other.status).toBe(403)
    },
  )

  it('refuses a tokens file with a bad line, naming the file', async () => {
    const file = join(dir, 'tokens')
    writeFileSync(file, 'admin:ops:short\n')
    const s = await server(['--tokens-file', file])
    expect(s.code).toBe(1)
    expect(s.stderr()).toContain(`${file}[0]`)
  })

  it.each(['5', 'ten', '1.5'])('refuses --capability-ttl-ms %s: exit 2, naming it', async (ttl) => {
    const s = await server(['--capability-ttl-ms', ttl])
    expect(s.code).toBe(2)
    expect(s.stderr()).toContain('--capability-ttl-ms')
  })

  it.each([
    ['--max-jobs-per-order', '0'],
    ['--max-orders-in-flight-per-owner', 'many'],
    ['--max-streams-per-caller', '1.5'],
  ])('refuses %s %s: exit 2, naming the flag', async (flag, value) => {
    const s = await server([flag, value])
    expect(s.code).toBe(2)
    expect(s.stderr()).toContain(`${flag} must be a positive whole number, got '${value}'`)
  })

  it('takes its limits from flags: a packet over --max-jobs-per-order is refused, naming it', async () => {
    const s = await server(['--max-jobs-per-order', '2'])
    const res = await fetch(`${urlOf(s.line)}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        packet: {
          name: 'p',
          jobs: ['a', 'b', 'c'].map((name) => ({ name, op: { builtin: 'noop' } })),
        },
      }),
    })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      'jobs: has 3 jobs; the limit is 2 jobs per order',
    )
  })

  it('keeps its capability key in the data directory, readable by its owner only, across restarts', async () => {
    const kid = async (s: Started) => {
      const url = /listening on (\S+)/.exec(s.line!)![1]!
      const res = await fetch(`${url}/v1/capabilities/key`)
      return ((await res.json()) as { kid: string }).kid
    }
    const first = await server([])
    const before = await kid(first)
    const file = join(dir, 'data', 'capability-key.pem')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    for (const child of running) child.kill('SIGTERM')
    await Promise.all([...running].map((c) => new Promise((r) => c.once('exit', r))))
    running.clear()
    expect(await kid(await server([]))).toBe(before)
  })
})

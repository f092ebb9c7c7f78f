/**
 * The credentials `lockstep up` saves: `cli.json` in the data directory, mode 0600 even over an
 * older, looser file; the workbench commands read it from the data directory, never from a
 * `.lockstep/cli.json` in whatever directory the user stands in, and refuse one others may write.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { credentialsPath, dataDir, readCredentials } from '../../src/cli/credentials.ts'
import { startLocal } from '../../src/cli/process-commands.ts'
import { storeUrlFromEnvironment } from '../../src/store/open-store.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()

let dir: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-credentials-'))
  vi.stubEnv('LOCKSTEP_DATA_DIR', join(dir, 'data'))
  vi.stubEnv('LOCKSTEP_DATABASE_URL', '')
  vi.stubEnv('LOCKSTEP_URL', undefined)
  vi.stubEnv('LOCKSTEP_TOKEN', undefined)
})

afterEach(() => {
  vi.unstubAllEnvs()
  rmSync(dir, { recursive: true, force: true })
})

/** Runs a workbench command as a process in `cwd`; resolves with its exit code and output. */
function lockstep(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [resolve('bin/lockstep.js'), ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  })
  opened.child(child, `lockstep ${args.join(' ')}`)
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  return new Promise((r) => child.on('exit', (code) => r({ code, out })))
}

describe('cli.json', () => {
  it('is written with mode 0600 in the data directory, even over a looser file', async () => {
    const data = join(dir, 'data')
    mkdirSync(data, { recursive: true })
    writeFileSync(join(data, 'cli.json'), '{}', { mode: 0o644 })
    chmodSync(join(data, 'cli.json'), 0o644)
    const local = await startLocal(0, 0)
    try {
      expect(statSync(join(data, 'cli.json')).mode & 0o777).toBe(0o600)
      expect(readCredentials(data)).toEqual({ url: local.url, token: local.token })
    } finally {
      await local.close()
    }
  })

  it('is looked for beside the default store when LOCKSTEP_DATA_DIR names no folder', () => {
    const store = resolve(storeUrlFromEnvironment({}))
    expect(credentialsPath(dataDir({}))).toBe(join(dirname(store), 'cli.json'))
  })

  it('is read from the data directory, not from the directory the user stands in', async () => {
    // A decoy cli.json where the user stands, pointing at a server that records what it hears.
    const heard: string[] = []
    const decoy = createServer((req, res) => {
      heard.push(`${req.url} ${req.headers.authorization}`)
      res.writeHead(200, { 'content-type': 'application/json' }).end('[]')
    })
    await new Promise<void>((r) => decoy.listen(0, '127.0.0.1', r))
    opened.server(decoy, 'decoy')
    const elsewhere = join(dir, 'elsewhere')
    mkdirSync(join(elsewhere, '.lockstep'), { recursive: true })
    writeFileSync(
      join(elsewhere, '.lockstep', 'cli.json'),
      JSON.stringify({ url: `http://127.0.0.1:${(decoy.address() as AddressInfo).port}` }),
      { mode: 0o600 },
    )
    const local = await startLocal(0, 0)
    try {
      const run = await lockstep(['workers', '--json'], elsewhere)
      expect(run.code, run.out).toBe(0)
      expect(JSON.parse(run.out)).toEqual(
        expect.arrayContaining([expect.objectContaining({ live: true })]),
      )
      expect(heard).toEqual([])
    } finally {
      await local.close()
      decoy.closeAllConnections()
      await new Promise((r) => decoy.close(r))
    }
  })

  it('is refused when others may write it, with how to fix it', () => {
    const data = join(dir, 'data')
    mkdirSync(data, { recursive: true })
    writeFileSync(join(data, 'cli.json'), JSON.stringify({ url: 'http://127.0.0.1:1' }))
    chmodSync(join(data, 'cli.json'), 0o666)
    expect(() => readCredentials(data)).toThrow(/chmod 600/)
  })
})

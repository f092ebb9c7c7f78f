/**
 * The Python workbench client (clients/python) against the real thing: a `lockstep server` and
 * three `lockstep worker`s holding the sample clinics' data, on loopback ports, as
 * `lockstep up` would run them; then its unittest suite, run by python3 with the environment
 * its tests read. The suite's output is the failure message, so a failing Python test reads
 * here as it would in a terminal.
 */
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { Cluster, WORKER } from '../e2e/cluster.ts'
import { checkLeaks } from '../leaks.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const opened = checkLeaks()

const ANA = 'ana-workbench-token'
const BOB = 'bob-workbench-token'
const TOKENS = `workbench:ana:${ANA},workbench:bob:${BOB},worker:*:${WORKER}`

/** Runs python3 to its end; its stdout and stderr together, as a terminal shows them. */
function python(args: string[], env: Record<string, string>, timeoutMs: number) {
  const child = opened.child(
    spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }),
    'python3',
  )
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  return new Promise<{ code: number | null; output: string }>((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      done({ code, output: signal === null ? output : `${output}\n(killed by ${signal})` })
    })
  })
}

let backend: Backend
let cluster: Cluster

beforeEach(() => {
  backend = sqliteBackend()
  cluster = new Cluster({ databaseUrl: backend.url, opened, tokens: TOKENS })
})

afterEach(async () => {
  await cluster.stopAll()
  await backend.destroy()
})

it('passes its unittest suite against a scheduler and three clinic workers', async () => {
  await cluster.server()
  await Promise.all(
    [1, 2, 3].map((i) =>
      cluster.worker(`clinic-${i}`, [
        '--slots',
        '2',
        '--data',
        `clinics=${resolve(`examples/data/clinic-${i}.csv`)}`,
      ]),
    ),
  )
  const run = await python(
    ['-m', 'unittest', 'discover', '-s', 'clients/python/tests', '-v'],
    {
      LOCKSTEP_URL: cluster.url,
      LOCKSTEP_TOKEN: ANA,
      LOCKSTEP_OTHER_TOKEN: BOB,
      LOCKSTEP_EXAMPLES: resolve('examples'),
      PYTHONDONTWRITEBYTECODE: '1',
      NO_PROXY: '127.0.0.1,localhost',
    },
    50_000,
  )
  expect(run.code, run.output).toBe(0)
  // Every test ran: one skipped for want of the environment would hide a failure.
  expect(run.output).toMatch(/^Ran [1-9]\d* tests? in /m)
  expect(run.output, run.output).not.toMatch(/skipped/)
}, 60_000)

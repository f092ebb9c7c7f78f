import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Assignment } from '../../src/core/protocol.ts'
import { dataFor, jobEnvironment } from '../../src/runner/environment.ts'
import { runJob } from '../../src/runner/run-job.ts'
import { environmentVariables } from '../environment-variables.ts'

/** What an agent or a scheduler holds in its environment, and no job may see. */
const SECRETS = {
  LOCKSTEP_TOKEN: 'worker-secret',
  LOCKSTEP_TOKENS: 'admin:ana:admin-secret',
  LOCKSTEP_DATABASE_URL: 'postgres://lockstep:db-secret@localhost/lockstep',
  AWS_SECRET_ACCESS_KEY: 'cloud-secret',
}
const secrets = environmentVariables(SECRETS)

function assignment(over: Partial<Assignment> = {}): Assignment {
  return {
    orderId: 'o1',
    jobId: 'j1',
    productId: 'j1',
    name: 'dump',
    attempt: 2,
    target: 'w1',
    op: { exec: ['sh', '-c', 'env > "$LOCKSTEP_OUT/env"'], env: { MODE: 'fast' } },
    resources: [],
    timeoutMs: undefined,
    inputs: [],
    ...over,
  }
}

describe('a job environment', () => {
  const host = { ...SECRETS, PATH: '/opt/bin:/usr/bin', LANG: 'C.UTF-8', TZ: 'UTC', USER: 'ops' }

  it.each([
    { name: 'LOCKSTEP_TOKEN', expected: undefined },
    { name: 'LOCKSTEP_TOKENS', expected: undefined },
    { name: 'LOCKSTEP_DATABASE_URL', expected: undefined },
    { name: 'AWS_SECRET_ACCESS_KEY', expected: undefined },
    { name: 'USER', expected: undefined },
    { name: 'PATH', expected: '/opt/bin:/usr/bin' },
    { name: 'LANG', expected: 'C.UTF-8' },
    { name: 'TZ', expected: 'UTC' },
    { name: 'HOME', expected: '/jobs/j1-2' },
    { name: 'MODE', expected: 'fast' },
    { name: 'LOCKSTEP_JOB_ID', expected: 'j1' },
    { name: 'LOCKSTEP_ORDER_ID', expected: 'o1' },
    { name: 'LOCKSTEP_JOB_NAME', expected: 'dump' },
    { name: 'LOCKSTEP_ATTEMPT', expected: '2' },
    { name: 'LOCKSTEP_INPUTS', expected: '/jobs/j1-2/inputs' },
    { name: 'LOCKSTEP_OUT', expected: '/jobs/j1-2/out' },
    { name: 'LOCKSTEP_ARTEFACTS', expected: '/jobs/j1-2/artefacts' },
    { name: 'LOCKSTEP_RESOURCE_GPU_MODEL', expected: 'a100' },
    { name: 'LOCKSTEP_RESOURCE_LICENCE', expected: 'seat-3' },
  ])('$name is $expected', ({ name, expected }) => {
    const resources = [
      { key: 'gpu.model', value: 'a100', unique: false },
      { key: 'licence', value: 'seat-3', unique: true },
    ]
    expect(jobEnvironment(assignment({ resources }), '/jobs/j1-2', {}, host)[name]).toBe(expected)
  })

  it("lets a resource override the operation's env, and neither override Lockstep's", () => {
    const a = assignment({
      op: { exec: ['true'], env: { LOCKSTEP_RESOURCE_ZONE: 'op', LOCKSTEP_JOB_ID: 'forged' } },
      resources: [{ key: 'zone', value: 'eu-west', unique: false }],
    })
    const env = jobEnvironment(a, '/jobs/j1-2', {}, {})
    expect(env.LOCKSTEP_RESOURCE_ZONE).toBe('eu-west')
    expect(env.LOCKSTEP_JOB_ID).toBe('j1')
  })

  it('gives a PATH when the host has none, and lets no operation override Lockstep variables', () => {
    const a = assignment({ op: { exec: ['true'], env: { LOCKSTEP_OUT: '/etc', HOME: '/root' } } })
    const env = jobEnvironment(a, '/jobs/j1-2', {}, {})
    expect(env.PATH).toBe('/usr/local/bin:/usr/bin:/bin')
    expect(env.LOCKSTEP_OUT).toBe('/jobs/j1-2/out')
    // HOME is the job's own choice to make.
    expect(env.HOME).toBe('/root')
  })

  it.each([
    { name: 'an artifact job: its project only', project: 'clinic', expected: { clinic: '/d/c' } },
    { name: 'a project this worker does not hold', project: 'genomes', expected: {} },
    { name: 'a packet job: no project, no data', project: undefined, expected: {} },
    { name: 'no prototype key', project: 'constructor', expected: {} },
  ])('data paths of $name', ({ project, expected }) => {
    const data = { clinic: '/d/c', census: '/d/s' }
    expect(dataFor(project === undefined ? {} : { project }, data)).toEqual(expected)
  })
})

describe('an exec job run by the runner', () => {
  let dir: string

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-env-'))
    mkdirSync(join(dir, 'inputs'))
    secrets.set()
  })

  afterEach(() => {
    secrets.restore()
    rmSync(dir, { recursive: true, force: true })
  })

  it('sees no secret of the process that runs it, and only its own project’s data', async () => {
    const job = runJob(assignment({ project: 'clinic' }), {
      dir,
      data: { clinic: '/data/clinic.csv', census: '/data/census.csv' },
    })
    expect(await job.result).toEqual({ ok: true, exitCode: 0 })
    const env = readFileSync(join(dir, 'out', 'env'), 'utf8')
    for (const secret of Object.values(SECRETS)) expect(env).not.toContain(secret)
    expect(env).not.toMatch(/^LOCKSTEP_TOKENS?=/m)
    expect(env).not.toMatch(/^LOCKSTEP_DATABASE_URL=/m)
    expect(env).toMatch(/^LOCKSTEP_DATA=\/data\/clinic\.csv$/m)
    expect(env).toMatch(/^LOCKSTEP_DATA_CLINIC=\/data\/clinic\.csv$/m)
    expect(env).not.toContain('census')
    expect(env).toMatch(new RegExp(`^HOME=${dir}$`, 'm'))
  })
})

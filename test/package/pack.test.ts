/**
 * The package as users get it: the sources built and packed with `npm pack`, the tarball
 * installed into an empty project with the machine's npm, and there `npx lockstep up`, an
 * example submitted and its result read with the installed command, a script that imports the
 * library, the client SDK and the embeddable scheduler by their package names, and a TypeScript
 * program checked against the package's declarations.
 *
 * Nothing here runs the sources: the processes get no LOCKSTEP_SOURCE, and the project they run
 * in has no tsx and no src/.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()
const root = resolve(import.meta.dirname, '..', '..')
const dir = mkdtempSync(join(tmpdir(), 'lockstep-pack-'))
const app = join(dir, 'app')
/** Processes a test leaves running on failure, stopped after it. */
const running = new Set<ChildProcess>()

/**
 * The environment of a user's shell: none of the variables npm sets for the script running the
 * tests (its project's bins on PATH, its package's fields), and none of Lockstep's.
 */
function userEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('npm_') || key.startsWith('LOCKSTEP_')) continue
    env[key] = value
  }
  env.PATH = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((p) => !p.includes('node_modules'))
    .join(delimiter)
  return env
}

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs a command in its own process group, and kills the group if it outlasts `timeoutMs`.
 * Resolves with its exit code and output; rejects, with the output, when it exits other than 0.
 */
function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  const child = spawn(command, args, {
    cwd,
    env: userEnvironment(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const timer = setTimeout(() => killGroup(child), timeoutMs)
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const ran = { code, stdout, stderr }
      if (code === 0) resolve(ran)
      else {
        const why = signal === null ? `exited ${code}` : `was killed (${signal})`
        reject(new Error(`${command} ${args.join(' ')} ${why}:\n${stdout}\n${stderr}`))
      }
    })
  })
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    // The group has already gone.
  }
}

/** The package's file names in the tarball, as `npm pack --json` lists them. */
let packed: string[] = []

beforeAll(async () => {
  // What `npm pack` would build through `prepare`, built only when a source is newer than
  // dist/ (after `npm ci`, or a build, the sources at hand are built already).
  await run(process.execPath, ['scripts/build.js', '--if-stale'], root, 180_000)
  const pack = await run(
    'npm',
    ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'],
    root,
    60_000,
  )
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[]
  packed = info!.files.map((f) => f.path)
  mkdirSync(app)
  // better-sqlite3 fetches a prebuilt binary from GitHub as it installs, or else compiles
  // SQLite, which takes minutes. The project pins it to the version the project has installed
  // and installs without running scripts, then takes the binary built for this project: the
  // same code, built for the same Node. Every other dependency resolves as a user's would.
  const sqlite = dirname(
    createRequire(join(root, 'package.json')).resolve('better-sqlite3/package.json'),
  )
  const { version } = JSON.parse(readFileSync(join(sqlite, 'package.json'), 'utf8')) as {
    version: string
  }
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'lockstep-user',
      private: true,
      type: 'module',
      dependencies: { lockstep: `file:${join(dir, info!.filename)}` },
      overrides: { 'better-sqlite3': version },
    }),
  )
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'],
    app,
    180_000,
  )
  const binary = join('build', 'Release', 'better_sqlite3.node')
  mkdirSync(join(app, 'node_modules', 'better-sqlite3', dirname(binary)), { recursive: true })
  copyFileSync(join(sqlite, binary), join(app, 'node_modules', 'better-sqlite3', binary))
}, 360_000)

afterEach(() => {
  for (const child of running) killGroup(child)
  running.clear()
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the packed package', () => {
  it('holds the compiled code with its declarations, the command, the examples and the docs, and no sources or tests', () => {
    expect(packed).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'bin/lockstep.js',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/client/index.js',
        'dist/client/index.d.ts',
        'dist/server/index.js',
        'dist/server/index.d.ts',
        'dist/cli/main.js',
        'dist/web/index.html',
        'dist/web/app.js',
        'examples/federated-mean.yaml',
        'examples/data/clinic-1.csv',
        'docs/architecture.md',
      ]),
    )
    expect(packed.filter((f) => /^(src|test|bench|scripts)\//.test(f))).toEqual([])
    expect(packed.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([])
  })

  it('runs `npx lockstep up`, where an example submitted with the installed command gives its result, and a script imports the library, the SDK and the server', async () => {
    const up = spawn('npx', ['--no', 'lockstep', 'up', '--port', '0', '--workers', '3'], {
      cwd: app,
      env: userEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    opened.child(up, 'npx lockstep up')
    running.add(up)
    const exited = new Promise<void>((r) => up.on('exit', () => r()))
    let err = ''
    up.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const url = await new Promise<string>((resolve, reject) => {
      let out = ''
      up.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const m = /Lockstep is running at (\S+)/.exec(out)
        if (m !== null) resolve(m[1]!)
      })
      up.on('exit', (code) => reject(new Error(`lockstep up exited ${code}: ${out}\n${err}`)))
    })
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)

    const lockstep = (...args: string[]) => run('npx', ['--no', 'lockstep', ...args], app, 60_000)
    const submitted = await lockstep(
      'submit',
      'node_modules/lockstep/examples/federated-mean.yaml',
      '--follow',
    )
    expect(submitted.stdout).toContain('succeeded')
    const [order] = JSON.parse((await lockstep('status', '--json')).stdout) as {
      orderId: string
      state: string
    }[]
    expect(order!.state).toBe('succeeded')
    const download = await lockstep('download', order!.orderId, '--to', 'products', '--json')
    const { jobs } = JSON.parse(download.stdout) as { jobs: string[] }
    const results = jobs
      .map((job) => join(app, 'products', job, 'out', 'result.json'))
      .filter((file) => existsSync(file))
      .map((file) => JSON.parse(readFileSync(file, 'utf8')) as unknown)
    // The mean BMI over the three clinics' rows, as `npm start` prints it.
    expect(results).toContainEqual({ mean: 26.14, count: 180 })

    writeFileSync(join(app, 'use.mjs'), useScript)
    const used = await run(process.execPath, ['use.mjs'], app, 60_000)
    expect(JSON.parse(used.stdout)).toEqual({
      jobs: 4,
      orders: [{ orderId: order!.orderId, state: 'succeeded' }],
      embedded: { health: { ok: true }, dashboard: 200, preact: 200 },
    })

    killGroup(up, 'SIGTERM')
    await exited
    running.delete(up)
  }, 180_000)

  it('types its entry points: a TypeScript program using them type-checks', async () => {
    writeFileSync(join(app, 'use.ts'), typedScript)
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2023',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          typeRoots: [join(root, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['use.ts'],
      }),
    )
    const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], app, 120_000)
  }, 150_000)
})

/**
 * A user's script: binds an artifact with the library, reads the orders of `lockstep up` with
 * the SDK (its credentials are in .lockstep/cli.json), and starts a scheduler of its own with
 * `lockstep/server`, whose API and dashboard answer, then stops it.
 */
const useScript = `
import { readFileSync } from 'node:fs'
import { bind } from 'lockstep'
import { LockstepClient } from 'lockstep/client'
import { serve } from 'lockstep/server'

const bound = bind(
  { project: 'clinics', steps: [{ kind: 'parallel', op: { builtin: 'count' } }, { kind: 'finalize', op: { builtin: 'count' } }] },
  { initiator: 'scheduler', workers: ['a', 'b', 'c'] },
)
const { url, token } = JSON.parse(readFileSync('.lockstep/cli.json', 'utf8'))
const orders = await new LockstepClient({ url, token }).orders()

const scheduler = await serve({ port: 0, host: '127.0.0.1', tokens: [], allowDownload: false, dataDir: 'embedded', log: false })
const health = await new LockstepClient({ url: scheduler.url }).health()
const dashboard = (await fetch(scheduler.url + '/')).status
const preact = (await fetch(scheduler.url + '/ui/vendor/preact.mjs')).status
await scheduler.close()

console.log(JSON.stringify({
  jobs: bound.length,
  orders: orders.map(({ orderId, state }) => ({ orderId, state })),
  embedded: { health, dashboard, preact },
}))
`

/** The same entry points from TypeScript, with the types a user would write against. */
const typedScript = `
import { bind, compileArtifact } from 'lockstep'
import type { Artifact, BoundJob } from 'lockstep'
import { LockstepClient } from 'lockstep/client'
import type { ClientOptions } from 'lockstep/client'
import { openStore, serve } from 'lockstep/server'
import type { ServeOptions, Serving, Store } from 'lockstep/server'

const artifact: Artifact = compileArtifact({ project: 'p', steps: [{ kind: 'initialize', op: { builtin: 'count' } }] })
const jobs: BoundJob[] = bind(artifact, { initiator: 'scheduler', workers: [] })
const options: ClientOptions = { url: 'http://127.0.0.1:7300' }
const client = new LockstepClient(options)
const store: Store = openStore(':memory:')
const serveOptions: ServeOptions = { port: 0, host: '127.0.0.1', tokens: [], allowDownload: false, dataDir: 'd', log: false, store }
const started: Promise<Serving> = serve(serveOptions)
export { jobs, client, started }
`

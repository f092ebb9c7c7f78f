/**
 * The command line's front: help, version and unknown commands, and a start that loads only what
 * the command needs. `lockstep help` and the workbench commands must not load the HTTP server,
 * the databases' drivers or the Kubernetes client: loading them took longer than the commands.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }

/** Runs main in this process; resolves with its exit code and printed lines. */
async function run(...args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = []
  const code = await main(args, (l) => lines.push(l))
  return { code, lines }
}

/** Packages a one-shot command has no use for. */
const heavy = ['fastify', 'pg', 'better-sqlite3', '@kubernetes/client-node', 'pino', 'zod']

/**
 * A module hook that refuses to resolve any of `heavy`, so a command that loads one fails,
 * naming it.
 */
const refuseHeavy = `data:text/javascript,${encodeURIComponent(`
import { register } from 'node:module'
register('data:text/javascript,' + encodeURIComponent(\`
const heavy = ${JSON.stringify(heavy)}
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  const m = /\\\\/node_modules\\\\/((?:@[^/]+\\\\/)?[^/]+)\\\\//.exec(resolved.url)
  if (m !== null && heavy.includes(m[1])) throw new Error('loaded ' + m[1])
  return resolved
}\`))
`)}`

/** Runs `lockstep ARGS` as a process under the hook; resolves with its exit code and stderr. */
function spawnRefusingHeavy(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', refuseHeavy, 'bin/lockstep.js', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LOCKSTEP_URL: '', LOCKSTEP_TOKEN: '' },
  })
  opened.child(child, `lockstep ${args.join(' ')}`)
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((r) => child.on('exit', (code) => r({ code, stderr })))
}

describe('lockstep', () => {
  it.each([
    ['help', ['help'], 0],
    ['--help', ['--help'], 0],
    ['no command', [], 2],
  ])('%s prints the usage, naming every command', async (_name, args, code) => {
    const out = await run(...args)
    expect(out.code).toBe(code)
    for (const command of ['up', 'server', 'worker', 'submit', 'status', 'download', 'version']) {
      expect(out.lines.join('\n')).toContain(`lockstep ${command}`)
    }
  })

  it.each([['version'], ['--version']])('%s prints the package version', async (arg) => {
    expect(await run(arg)).toEqual({ code: 0, lines: [version] })
  })

  it('refuses a command it does not know, with exit code 2', async () => {
    expect((await run('constructor')).code).toBe(2)
  })

  it('the hook that the next test relies on does refuse what it names', async () => {
    const { code, stderr } = await spawnRefusingHeavy(['backup', 'copy.db', '--data-dir', '/'])
    expect(code).toBe(1)
    expect(stderr).toContain('loaded better-sqlite3')
  })

  it.each([
    [['help'], 0],
    [['version'], 0],
    // Nothing listens on port 1: the command gets as far as its request.
    [['status', '--server', 'http://127.0.0.1:1'], 1],
  ])('%j loads none of the server, the drivers or the Kubernetes client', async (args, code) => {
    const { code: exit, stderr } = await spawnRefusingHeavy(args)
    expect(stderr).not.toContain('loaded ')
    expect(exit).toBe(code)
  })
})

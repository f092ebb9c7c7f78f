/**
 * A job reads its inputs as read-only copies: whatever it does to them, the cached product that
 * other jobs read and peers are served stays as it was made. Real processes, a real cache.
 */
import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Assignment, JobInput } from '../../src/core/protocol.ts'
import { execute } from '../../src/runner/execute.ts'
import type { ExecuteOptions } from '../../src/runner/execute.ts'
import { removeJobDir } from '../../src/runner/job-dir.ts'
import { ProductCache } from '../../src/runner/products.ts'

/** Root ignores file modes: there the copy is what protects the cache, not the modes. */
const root = process.getuid?.() === 0

let dir: string
let cache: ProductCache

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-inputs-'))
  cache = new ProductCache(join(dir, 'cache'), 1024 ** 3)
  await cache.open()
})

afterEach(async () => {
  await removeJobDir(dir)
})

/** Puts a product in the cache holding `out/data` and `out/sub/file`; answers its hash. */
async function made(id: string): Promise<string> {
  const scratch = await cache.scratch(id)
  mkdirSync(join(scratch, 'out', 'sub'), { recursive: true })
  writeFileSync(join(scratch, 'out', 'data'), 'original\n')
  writeFileSync(join(scratch, 'out', 'sub', 'file'), 'inside\n')
  await cache.add(id, scratch)
  return cache.hash(id)
}

function input(productId: string, name = 'prev'): JobInput {
  return { jobId: productId, productId, name, holders: ['w1'] }
}

function assignment(script: string, inputs: JobInput[]): Assignment {
  return {
    orderId: 'o1',
    jobId: 'j2',
    productId: 'next',
    name: 'next',
    attempt: 1,
    target: 'w1',
    op: { exec: ['sh', '-c', script] },
    resources: [],
    timeoutMs: undefined,
    inputs,
  }
}

const options = (): ExecuteOptions => ({
  cache,
  jobsDir: join(dir, 'jobs'),
  self: 'w1',
  data: {},
  locate: () => Promise.resolve([]),
})

/** What the job printed, as kept in its product. */
const stdoutOf = (id: string) => readFileSync(join(cache.path(id), 'stdout'), 'utf8')

describe('a job’s inputs', () => {
  it.each([
    { what: 'overwrite a file', write: 'echo changed > "$IN/data"' },
    { what: 'append to a file', write: 'echo more >> "$IN/data"' },
    { what: 'make a file', write: 'echo new > "$IN/sub/new"' },
    { what: 'remove a file', write: 'rm "$IN/sub/file"' },
    {
      what: 'change a file’s mode, then write',
      write: 'chmod 644 "$IN/data" && echo x > "$IN/data"',
    },
  ])('cannot $what of the cached product', async ({ write }) => {
    const before = await made('prev')
    const script = `IN="$LOCKSTEP_INPUTS/prev"; if { ${write}; } 2>/dev/null; then echo wrote; else echo refused; fi`
    const done = await execute(assignment(script, [input('prev')]), options())
    expect(done.result).toMatchObject({ ok: true })
    // Modes stop the write where they bind (not for root, which ignores them)...
    if (!root && !write.startsWith('chmod')) expect(stdoutOf('next')).toBe('refused\n')
    // ...and whatever the job did, it did to its own copy.
    expect(await cache.hash('prev')).toBe(before)
    const kept = new ProductCache(join(dir, 'cache'), 1024 ** 3)
    await kept.open()
    expect(await kept.hash('prev')).toBe(before)
    expect(readFileSync(join(cache.path('prev'), 'out', 'data'), 'utf8')).toBe('original\n')
    expect(readFileSync(join(cache.path('prev'), 'out', 'sub', 'file'), 'utf8')).toBe('inside\n')
  })

  it('are read-only copies the job can read', async () => {
    await made('prev')
    const script = [
      'IN="$LOCKSTEP_INPUTS/prev"',
      'cat "$IN/data" "$IN/sub/file"',
      'stat -c "%a %F" "$IN" "$IN/sub" "$IN/data" "$IN/sub/file"',
      'test -L "$IN" && echo link || echo no-link',
    ].join('; ')
    const done = await execute(assignment(script, [input('prev')]), options())
    expect(done.result).toMatchObject({ ok: true })
    expect(stdoutOf('next').split('\n')).toEqual([
      'original',
      'inside',
      '555 directory',
      '555 directory',
      '444 regular file',
      '444 regular file',
      'no-link',
      '',
    ])
  })

  it.each([
    {
      what: 'an empty product (a no-op’s)',
      make: (): Promise<void> => Promise.resolve(cache.addEmpty('prev')),
    },
    {
      what: 'a product with no out/ (an archive carries no empty directory)',
      make: async (): Promise<void> => {
        const scratch = await cache.scratch('prev')
        writeFileSync(join(scratch, 'stdout'), 'nothing in out\n')
        await cache.add('prev', scratch)
      },
    },
  ])('may be $what: the job sees an empty directory', async ({ make }) => {
    await make()
    const script =
      'ls -A "$LOCKSTEP_INPUTS/prev" | wc -l; test -d "$LOCKSTEP_INPUTS/prev" && echo dir'
    const done = await execute(assignment(script, [input('prev')]), options())
    expect(done.result).toMatchObject({ ok: true })
    expect(stdoutOf('next').trim().split(/\s+/)).toEqual(['0', 'dir'])
  })

  it('go with the job directory, read-only modes and all', async () => {
    await made('prev')
    // The job makes a read-only directory of its own too.
    const script = 'mkdir -p scratch/ro && touch scratch/ro/f && chmod 555 scratch/ro scratch'
    const done = await execute(assignment(script, [input('prev')]), options())
    expect(done.result).toMatchObject({ ok: true })
    expect(readdirSync(join(dir, 'jobs'))).toEqual([])
  })
})

describe('read-only inputs where file modes bind', () => {
  it('refuse writes, and the job directory is removed all the same', () => {
    // Root ignores modes: the check runs as `nobody` then, in a directory it may write. The
    // fixture loads its modules first and drops to `nobody` after, so it does not matter
    // whether `nobody` may read this checkout.
    chmodSync(dir, 0o777)
    const fixture = join(import.meta.dirname, 'fixtures', 'read-only-input.ts')
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', fixture, dir, ...(root ? ['as-nobody'] : [])],
      { encoding: 'utf8' },
    )
    expect(run.stderr).toBe('')
    expect(JSON.parse(run.stdout)).toEqual({
      writes: { file: 'EACCES', newFile: 'EACCES' },
      removed: true,
    })
  })
})

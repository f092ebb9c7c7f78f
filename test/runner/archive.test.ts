/**
 * The product archive: deterministic bytes for the same tree wherever it is, a faithful round
 * trip, and an unpack that refuses what a product cannot be and leaves nothing behind when it does.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import tar from 'tar-stream'
import type { Header } from 'tar-stream'
import { afterEach, describe, expect, it } from 'vitest'
import { ArchiveRefusedError, pack, unpack } from '../../src/runner/archive.ts'

let dir: string

afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** The archive of a directory, as bytes. */
async function archive(of: string): Promise<Buffer> {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  const ended = new Promise((r) => out.on('end', r))
  await pack(of, out)
  await ended
  return Buffer.concat(chunks)
}

/** An archive written by tar-stream itself, entry by entry: what a hostile peer could send. */
async function tarOf(entries: { header: Partial<Header> & { name: string }; body?: string }[]) {
  const p = tar.pack()
  const chunks: Buffer[] = []
  p.on('data', (c) => chunks.push(c as Buffer))
  const ended = new Promise<void>((r) => p.on('end', () => r()))
  for (const e of entries) p.entry(e.header, e.body ?? '')
  p.finalize()
  await ended
  return Buffer.concat(chunks)
}

/** A tree with files at several depths, one of them executable. */
function tree(root: string, o: { fileMode: number; dirMode: number; mtime: number }) {
  const files: Record<string, string> = {
    stdout: 'done\n',
    'out/z': 'last',
    'out/a': 'first',
    'out/bin/run.sh': '#!/bin/sh\necho hi\n',
    [`out/${'long-name-'.repeat(12)}/${'deeper-'.repeat(20)}.txt`]: 'a path past 100 bytes',
  }
  mkdirSync(join(root, 'out', 'empty'), { recursive: true })
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true })
    writeFileSync(join(root, path), content)
    chmodSync(join(root, path), path.endsWith('.sh') ? 0o755 : o.fileMode)
    utimesSync(join(root, path), o.mtime, o.mtime)
  }
  chmodSync(join(root, 'out', 'empty'), o.dirMode)
  return files
}

describe('the product archive', () => {
  it('is the same bytes for the same tree, whatever its times, modes and place', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-archive-'))
    tree(join(dir, 'a'), { fileMode: 0o644, dirMode: 0o755, mtime: 1_000_000 })
    tree(join(dir, 'b'), { fileMode: 0o600, dirMode: 0o700, mtime: 1_700_000_000 })
    const a = await archive(join(dir, 'a'))
    expect(a).toEqual(await archive(join(dir, 'a')))
    expect(a).toEqual(await archive(join(dir, 'b')))
    // A copy unpacked elsewhere archives to the same bytes again: its hash checks anywhere.
    await unpack(Readable.from([a]), join(dir, 'copy'))
    expect(await archive(join(dir, 'copy'))).toEqual(a)
    writeFileSync(join(dir, 'b', 'out', 'a'), 'altered')
    expect(await archive(join(dir, 'b'))).not.toEqual(a)
  })

  it('carries files, empty directories and the execute bit through a round trip', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-archive-'))
    const files = tree(join(dir, 'src'), { fileMode: 0o644, dirMode: 0o755, mtime: 0 })
    const stream = new PassThrough()
    const packed = pack(join(dir, 'src'), stream)
    await unpack(stream, join(dir, 'dst'))
    await packed
    for (const [path, content] of Object.entries(files)) {
      expect(readFileSync(join(dir, 'dst', path), 'utf8')).toBe(content)
    }
    expect(statSync(join(dir, 'dst', 'out', 'empty')).isDirectory()).toBe(true)
    expect(statSync(join(dir, 'dst', 'out', 'bin', 'run.sh')).mode & 0o111).not.toBe(0)
    expect(statSync(join(dir, 'dst', 'out', 'a')).mode & 0o111).toBe(0)
  })

  const file = (name: string, body = 'x') => ({ header: { name, size: body.length }, body })
  it.each([
    ['an absolute path', [file('/etc/evil')], '/etc/evil', 'an absolute path'],
    ['a .. component', [file('out/../../escape')], 'out/../../escape', "a '..' component"],
    [
      'a .. component in a long (pax) path',
      [file(`${'a'.repeat(150)}/../../../escape`)],
      `${'a'.repeat(150)}/../../../escape`,
      "a '..' component",
    ],
    [
      'a symlink',
      [{ header: { name: 'out/link', type: 'symlink' as const, linkname: '/etc/passwd' } }],
      'out/link',
      'a symlink, not a file or a directory',
    ],
    [
      'a hard link',
      [file('out/a'), { header: { name: 'out/hard', type: 'link' as const, linkname: 'out/a' } }],
      'out/hard',
      'a link, not a file or a directory',
    ],
    [
      'a device',
      [{ header: { name: 'out/tty', type: 'character-device' as const, devmajor: 5 } }],
      'out/tty',
      'a character-device, not a file or a directory',
    ],
    [
      'a FIFO',
      [{ header: { name: 'out/pipe', type: 'fifo' as const } }],
      'out/pipe',
      'a fifo, not a file or a directory',
    ],
    [
      'more bytes than the cap',
      [file('out/a', 'x'.repeat(600)), file('out/b', 'y'.repeat(600))],
      'out/b',
      'the archive unpacks to more than 1000 bytes, the cap (--max-input-bytes)',
    ],
    [
      'a second entry of one path',
      [file('out/a'), file('out/a', 'overwritten')],
      'out/a',
      'a second entry of the same path',
    ],
  ])(
    'is refused for %s, naming the entry, with nothing left behind',
    async (_, entries, entry, why) => {
      dir = mkdtempSync(join(tmpdir(), 'lockstep-archive-'))
      const bytes = await tarOf([file('stdout', 'before the bad entry'), ...entries])
      const to = join(dir, 'parent', 'product')
      const refused = unpack(Readable.from([bytes]), to, {
        maxBytes: 1000,
        capName: '--max-input-bytes',
      })
      await expect(refused).rejects.toThrow(ArchiveRefusedError)
      await expect(refused).rejects.toMatchObject({
        entry,
        why,
        message: `the archive is refused at entry '${entry}': ${why}`,
      })
      expect(existsSync(to)).toBe(false)
      expect(readdirSync(join(dir, 'parent'))).toEqual([])
      expect(existsSync(join(dir, 'escape'))).toBe(false)
    },
  )

  it('refuses an archive cut short, even at a block boundary', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-archive-'))
    const whole = await tarOf([file('out/a', 'x'.repeat(700)), file('out/b')])
    for (const cut of [0, 512, 1000, 1536, whole.length - 1024, whole.length - 512]) {
      const to = join(dir, `cut-${cut}`)
      await expect(unpack(Readable.from([whole.subarray(0, cut)]), to)).rejects.toThrow(
        /ended early|Unexpected end of data/,
      )
      expect(existsSync(to)).toBe(false)
    }
    expect(readdirSync(dir)).toEqual([])
  })

  it('does not write into a directory that already holds files', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-archive-'))
    mkdirSync(join(dir, 'to'))
    writeFileSync(join(dir, 'to', 'mine'), 'keep me')
    await expect(
      unpack(Readable.from([await tarOf([file('mine', 'theirs')])]), join(dir, 'to')),
    ).rejects.toThrow(`cannot unpack into ${join(dir, 'to')}: it already holds files`)
    expect(readFileSync(join(dir, 'to', 'mine'), 'utf8')).toBe('keep me')
    expect(readdirSync(dir)).toEqual(['to'])
  })
})

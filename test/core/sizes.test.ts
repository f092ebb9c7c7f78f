import { describe, expect, it } from 'vitest'
import { formatSize, parseSize } from '../../src/core/sizes.ts'

describe('sizes', () => {
  it.each([
    ['4096', 4096],
    ['1b', 1],
    ['64MiB', 64 * 1024 ** 2],
    ['64mib', 64 * 1024 ** 2],
    ['10GiB', 10 * 1024 ** 3],
    ['10 GiB', 10 * 1024 ** 3],
    ['10G', 10 * 1024 ** 3],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['2KiB', 2048],
    ['1TiB', 1024 ** 4],
    ['3MB', 3_000_000],
    ['1GB', 1_000_000_000],
  ])('reads %s as %d bytes', (text, bytes) => {
    expect(parseSize(text, '--max-bytes')).toBe(bytes)
  })

  it.each(['', 'ten', '10 gigs', '-5MiB', '0', '0.1b', '1e9', 'GiB', '10GiB extra', '99999999TiB'])(
    'refuses %j, naming the flag',
    (text) => {
      expect(() => parseSize(text, '--max-bytes')).toThrow(
        `--max-bytes takes a size in bytes, such as 4096, 64MiB or 10GiB, got '${text}'`,
      )
    },
  )

  it.each([
    [10 * 1024 ** 3, '10 GiB'],
    [64 * 1024 ** 2, '64 MiB'],
    [1024, '1 KiB'],
    [1000, '1000 bytes'],
    [1536, '1536 bytes'],
  ])('words %d bytes as %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text)
  })
})

import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { errorCatalogue } from '../../src/index.ts'

describe('the error catalogue', () => {
  it('is documented code by code, with the same status, in docs/errors.md', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
    const rows = new Map(
      [...doc.matchAll(/^\| `([A-Z_]+)`\s*\| (\d{3})\s*\|/gm)].map((m) => [m[1]!, Number(m[2])]),
    )
    const catalogue = new Map(Object.entries(errorCatalogue).map(([code, e]) => [code, e.status]))
    expect(rows).toEqual(catalogue)
  })
})

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { IdGenerator, bytesToId, idTime, idToBytes, isId } from '../../src/index.ts'

describe('ids', () => {
  it('are UUIDv7: version 7, RFC variant, the time in the first 48 bits', () => {
    const id = new IdGenerator().next(1_700_000_000_123)
    expect(isId(id)).toBe(true)
    expect(id[14]).toBe('7')
    expect(['8', '9', 'a', 'b']).toContain(id[19])
    expect(idTime(id)).toBe(1_700_000_000_123)
  })

  it('increase strictly within one generator, also within one millisecond and when time steps back', () => {
    const ids = new IdGenerator()
    const made = [
      ...Array.from({ length: 10_000 }, () => ids.next(1000)),
      ids.next(999),
      ids.next(2000),
    ]
    for (let i = 1; i < made.length; i++) expect(made[i]! > made[i - 1]!).toBe(true)
    expect(new Set(made).size).toBe(made.length)
  })

  it('convert to 16 bytes and back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const id = bytesToId(bytes)
        expect(isId(id)).toBe(true)
        expect(idToBytes(id)).toEqual(bytes)
      }),
    )
    const id = new IdGenerator().next(Date.now())
    expect(bytesToId(idToBytes(id))).toBe(id)
  })

  it('refuse what is not an id', () => {
    expect(() => idToBytes('not-a-uuid')).toThrow('not a UUID: "not-a-uuid"')
    expect(() => bytesToId(new Uint8Array(15))).toThrow('an id has 16 bytes, got 15')
    expect(isId('0190B6A4-7C1E-7D3A-9B2F-1C2D3E4F5A6B')).toBe(false)
  })
})

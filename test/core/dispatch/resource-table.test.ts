import { describe, expect, it } from 'vitest'
import { ResourceTable } from '../../../src/core/dispatch/resource-table.ts'

function setup() {
  const handedBack: string[] = []
  const table = new ResourceTable<string>((job) => handedBack.push(job))
  return { table, handedBack }
}

describe('ResourceTable', () => {
  it('lets one job at a time hold a resource', () => {
    const { table } = setup()
    expect(table.free(['gpu', 'disk'])).toBe(true)
    table.hold('a', ['gpu'])
    expect(table.holder('gpu')).toBe('a')
    expect(table.free(['disk'])).toBe(true)
    expect(table.free(['disk', 'gpu'])).toBe(false)
  })

  it('hands a parked job back once the resource it waits on is freed, not before', () => {
    const { table, handedBack } = setup()
    table.hold('a', ['gpu'])
    table.hold('b', ['disk'])
    // Parked on the first busy resource it needs only.
    table.park('c', ['disk', 'gpu'])
    table.release('a', ['gpu'])
    expect(handedBack).toEqual([])
    expect(table.holder('gpu')).toBeUndefined()
    table.release('b', ['disk'])
    expect(handedBack).toEqual(['c'])
    table.release('b', ['disk'])
    expect(handedBack).toEqual(['c'])
  })

  it('frees only what the finishing job holds', () => {
    const { table } = setup()
    table.hold('a', ['gpu'])
    table.release('b', ['gpu'])
    expect(table.holder('gpu')).toBe('a')
  })

  it('starts a new list for a job that parks again while the old one is handed back', () => {
    const handedBack: string[] = []
    const table: ResourceTable<string> = new ResourceTable<string>((job) => {
      handedBack.push(job)
      if (job === 'c') table.hold('c', ['gpu'])
      else table.park(job, ['gpu'])
    })
    table.hold('a', ['gpu'])
    table.park('c', ['gpu'])
    table.park('d', ['gpu'])
    table.release('a', ['gpu'])
    expect(handedBack).toEqual(['c', 'd'])
    table.release('c', ['gpu'])
    expect(handedBack).toEqual(['c', 'd', 'd'])
  })
})

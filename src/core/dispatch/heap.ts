/**
 * A binary min-heap of items under numeric keys, kept in two parallel arrays so comparisons read
 * plain numbers. push and pop cost O(log n); peek costs O(1). Equal keys come out in no
 * particular order, so callers that need ties broken make keys unique.
 */
export class Heap<T> {
  private readonly keys: number[] = []
  private readonly items: T[] = []

  get size(): number {
    return this.items.length
  }

  /** Calls `fn` on every item, in no particular order: for reports that look past the top. */
  forEach(fn: (item: T) => void): void {
    for (const item of this.items) fn(item)
  }

  peek(): T | undefined {
    return this.items[0]
  }

  push(item: T, key: number): void {
    const keys = this.keys
    const items = this.items
    let i = items.length
    keys.push(key)
    items.push(item)
    while (i > 0) {
      const parent = (i - 1) >> 1
      const pk = keys[parent]!
      if (pk <= key) break
      keys[i] = pk
      items[i] = items[parent]!
      i = parent
    }
    keys[i] = key
    items[i] = item
  }

  pop(): T | undefined {
    const keys = this.keys
    const items = this.items
    const top = items[0]
    const lastKey = keys.pop()!
    const last = items.pop()!
    const n = items.length
    if (n === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && keys[right]! < keys[left]! ? right : left
      if (keys[child]! >= lastKey) break
      keys[i] = keys[child]!
      items[i] = items[child]!
      i = child
    }
    keys[i] = lastKey
    items[i] = last
    return top
  }

  clear(): void {
    this.keys.length = 0
    this.items.length = 0
  }
}

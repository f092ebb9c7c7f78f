/**
 * Sets variables in this process's environment for a test, as an operator would have them set
 * for a scheduler or a worker, and puts back what was there before.
 */
export function environmentVariables(vars: Readonly<Record<string, string>>): {
  set(): void
  restore(): void
} {
  const saved: Record<string, string | undefined> = {}
  return {
    set() {
      for (const [k, v] of Object.entries(vars)) {
        saved[k] = process.env[k]
        process.env[k] = v
      }
    },
    restore() {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    },
  }
}

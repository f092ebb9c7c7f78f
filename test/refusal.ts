/** What a refused client call was refused with. */
import { expect } from 'vitest'
import { LockstepError } from '../src/core/errors.ts'

/** The error a promise is rejected with; fails the test when it is not a {@link LockstepError}. */
export async function refusal(p: Promise<unknown>): Promise<LockstepError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(LockstepError)
  return e as LockstepError
}

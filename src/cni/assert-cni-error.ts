// Test support (used by unit tests only): asserts that a call throws a CniError with a given code
// whose text mentions every fragment.
import assert from "node:assert/strict";
import { CniError } from "./errors.js";

function expectCniError(fn: () => unknown, code: number, fragments: string[], text: (e: CniError) => string): CniError {
  let caught: CniError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CniError, `expected a CniError, got ${String(e)}`);
    assert.equal(e.code, code, `${e.message} (${e.details})`);
    for (const f of fragments) assert.ok(text(e).includes(f), `"${e.message}" should mention "${f}"`);
    caught = e;
    return true;
  });
  return caught!;
}

/** The fragments may be in the message or the details. */
export const assertCniError = (fn: () => unknown, code: number, ...fragments: string[]): CniError =>
  expectCniError(fn, code, fragments, (e) => `${e.message} ${e.details}`);

/** The fragments must be in the message itself (what a user sees first). */
export const assertCniErrorMessage = (fn: () => unknown, code: number, ...fragments: string[]): CniError =>
  expectCniError(fn, code, fragments, (e) => e.message);

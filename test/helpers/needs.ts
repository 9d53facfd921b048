/**
 * For `describe.skipIf` / `it.skipIf`: true (skip, with one line saying why)
 * when this machine lacks what the test needs. With CI=true a missing
 * requirement is an error instead: .ci/run installs everything, so a skip
 * there would hide a test that never ran.
 */
export function lacks(missing: boolean, what: string): boolean {
  if (!missing) return false;
  if (process.env.CI === 'true') throw new Error(`this test needs ${what}, which CI must provide (CI=true)`);
  console.log(`skipped: this test needs ${what}`);
  return true;
}

// Polls until something holds: the one wait loop of the tests.

/**
 * Calls `fn` every `everyMs` until it returns something other than
 * undefined or false, and resolves with that; past `timeoutMs` it throws
 * "timed out waiting for <what>".
 */
export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

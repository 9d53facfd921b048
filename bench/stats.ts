/** The p-th percentile (nearest rank) of `xs`. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** `x` rounded to `d` decimals. */
export const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

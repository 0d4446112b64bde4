// Small pure helpers shared by the views (no DOM).

/** `value` limited to [lo, hi]. */
export const clamp = (value, lo, hi) => Math.max(lo, Math.min(hi, value));

/** "0", "1", ..., String(n - 1): the names of n units that have no other name. */
export const indexNames = (n) => Array.from({length: n}, (_, i) => String(i));

// A few values keyed by DER bytes (intermediates), looked up without making
// a string of the key: the agent looked up the same intermediate for every
// SVID it minted, and the base64 key it made for that (about 700 bytes) was
// a large part of the garbage of minting thousands at once.

/** At most `max` values keyed by exact bytes; the one found last is tried first. Full, it starts over. */
export class DerCache<V> {
  readonly #max: number;
  #items: { der: Buffer; value: V }[] = [];

  constructor(max: number) {
    this.#max = max;
  }

  get size(): number {
    return this.#items.length;
  }

  get(der: Uint8Array): V | undefined {
    const items = this.#items;
    const want = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i]!;
      if (item.der.length === want.length && item.der.equals(want)) {
        if (i !== items.length - 1) {
          items.splice(i, 1);
          items.push(item);
        }
        return item.value;
      }
    }
    return undefined;
  }

  /** Adds a value for a copy of `der` (the caller's bytes may be a view of a larger buffer). */
  set(der: Uint8Array, value: V): void {
    if (this.get(der) !== undefined) this.#items = this.#items.filter((it) => !it.der.equals(der));
    if (this.#items.length >= this.#max) this.#items = [];
    this.#items.push({ der: Buffer.from(der), value });
  }

  clear(): void {
    this.#items = [];
  }

  /** The keys, oldest first. */
  keys(): Buffer[] {
    return this.#items.map((it) => it.der);
  }
}

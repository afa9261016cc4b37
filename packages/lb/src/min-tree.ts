/**
 * A complete binary tree over n numbers (a segment tree) that knows, for every subtree, its least
 * value and how many leaves hold it. Setting a value is O(log n); the least value is O(1); the k-th
 * leaf holding it and the first one at or after an index are O(log n). Internal to the balancers.
 */
export class MinTree {
  /** Leaves start here; padding leaves hold +Infinity. */
  readonly #size: number;
  readonly #min: Float64Array;
  readonly #count: Float64Array;

  /** A tree over `values` (O(n)). */
  constructor(values: ArrayLike<number>) {
    let size = 1;
    while (size < values.length) size *= 2;
    this.#size = size;
    this.#min = new Float64Array(2 * size).fill(Number.POSITIVE_INFINITY);
    this.#count = new Float64Array(2 * size);
    for (let i = 0; i < values.length; i++) {
      this.#min[size + i] = values[i] as number;
      this.#count[size + i] = 1;
    }
    for (let node = size - 1; node >= 1; node--) this.#pull(node);
  }

  /** The least value. */
  get min(): number {
    return this.#min[1] as number;
  }

  /** How many leaves hold the least value. */
  get minCount(): number {
    return this.#count[1] as number;
  }

  /** The value at `index`. */
  get(index: number): number {
    return this.#min[this.#size + index] as number;
  }

  /** Sets the value at `index`. */
  set(index: number, value: number): void {
    let node = this.#size + index;
    this.#min[node] = value;
    for (node >>= 1; node >= 1; node >>= 1) this.#pull(node);
  }

  /** The index of the k-th leaf (from 0, left to right) holding the least value; k < minCount. */
  nthMin(k: number): number {
    const m = this.#min[1] as number;
    let node = 1;
    while (node < this.#size) {
      const left = 2 * node;
      if (this.#min[left] === m) {
        const c = this.#count[left] as number;
        if (k < c) {
          node = left;
          continue;
        }
        k -= c;
      }
      node = left + 1;
    }
    return node - this.#size;
  }

  /** The first index at or after `from` holding the least value, or -1 if there is none. */
  firstMinFrom(from: number): number {
    const m = this.#min[1] as number;
    let node = this.#size + from;
    if (this.#min[node] !== m) {
      // Up until a right sibling holds the least value, then down to its leftmost such leaf.
      for (;;) {
        if (node === 1) return -1;
        if ((node & 1) === 0 && this.#min[node + 1] === m) {
          node++;
          break;
        }
        node >>= 1;
      }
      while (node < this.#size) node = this.#min[2 * node] === m ? 2 * node : 2 * node + 1;
    }
    return node - this.#size;
  }

  #pull(node: number): void {
    const left = 2 * node;
    const l = this.#min[left] as number;
    const r = this.#min[left + 1] as number;
    if (l < r) {
      this.#min[node] = l;
      this.#count[node] = this.#count[left] as number;
    } else if (r < l) {
      this.#min[node] = r;
      this.#count[node] = this.#count[left + 1] as number;
    } else {
      this.#min[node] = l;
      this.#count[node] = (this.#count[left] as number) + (this.#count[left + 1] as number);
    }
  }
}

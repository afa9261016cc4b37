/**
 * Delivers the latest value of some state to a set of listeners (internal).
 *
 * - `subscribe` calls the new listener with the current value at once.
 * - A listener that throws does not stop the others; once every listener ran, the error is
 *   rethrown to whoever changed the state (an AggregateError when several threw).
 * - A change made by a listener while listeners run restarts the round with the newest value, so
 *   every listener ends up having seen the latest state, in order, possibly skipping one in between.
 */
export class Emitter<T> {
  readonly #listeners = new Set<(value: T) => void>();
  readonly #read: () => T;
  #running = false;
  #pending = false;

  constructor(read: () => T) {
    this.#read = read;
  }

  subscribe(listener: (value: T) => void): () => void {
    const wrapper = (value: T): void => listener(value);
    this.#listeners.add(wrapper);
    try {
      wrapper(this.#read());
    } catch (error) {
      this.#listeners.delete(wrapper);
      throw error;
    }
    return () => {
      this.#listeners.delete(wrapper);
    };
  }

  emit(): void {
    if (this.#running) {
      this.#pending = true;
      return;
    }
    this.#running = true;
    let errors: unknown[] | undefined;
    try {
      do {
        this.#pending = false;
        const value = this.#read();
        for (const listener of [...this.#listeners]) {
          if (!this.#listeners.has(listener)) continue;
          try {
            listener(value);
          } catch (error) {
            if (errors === undefined) errors = [];
            errors.push(error);
          }
          if (this.#pending) break;
        }
      } while (this.#pending);
    } finally {
      this.#running = false;
    }
    if (errors !== undefined) {
      throw errors.length === 1 ? errors[0] : new AggregateError(errors, `${errors.length} listeners threw`);
    }
  }

  clear(): void {
    this.#listeners.clear();
  }

  get size(): number {
    return this.#listeners.size;
  }
}

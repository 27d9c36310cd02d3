// A small event emitter with an async iterator, the same in Node, browsers and React Native (none of them
// shares Node's EventEmitter). Listeners that throw do not stop the others.

export class Emitter {
  #listeners = new Map();
  #queues = new Set(); // async iterators' buffers

  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return this;
  }

  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
    return this;
  }

  once(type, listener) {
    const wrapper = (event) => {
      this.off(type, wrapper);
      listener(event);
    };
    return this.on(type, wrapper);
  }

  emit(type, event) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(event);
      } catch (error) {
        // A bug in one listener must not break the session's own bookkeeping.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    for (const queue of this.#queues) queue.push({ type, ...event });
  }

  /** Every event as {type, ...fields}, from now until the session closes. */
  [Symbol.asyncIterator]() {
    const buffer = [];
    let wake = null;
    let ended = false;
    const queue = {
      push: (item) => {
        buffer.push(item);
        if (item.type === "closed") ended = true;
        wake?.();
      },
    };
    this.#queues.add(queue);
    return {
      next: async () => {
        while (!buffer.length) {
          if (ended) {
            this.#queues.delete(queue);
            return { value: undefined, done: true };
          }
          await new Promise((resolve) => (wake = resolve));
          wake = null;
        }
        return { value: buffer.shift(), done: false };
      },
      return: async () => {
        this.#queues.delete(queue);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}

// Audio plumbing that every platform shares: PCM16 views, resampling, 20 ms framing, base64, and the playout
// clock (a player with no speaker, for Node servers and tests: it plays in real time, silently).

export const FRAME_MS = 20;

export const now = () => (globalThis.performance?.now ? globalThis.performance.now() : Date.now());

/** PCM16 little-endian samples as an Int16Array, from an Int16Array, a Uint8Array/Buffer or an ArrayBuffer. */
export function toInt16(pcm) {
  if (pcm instanceof Int16Array) return pcm;
  if (pcm instanceof ArrayBuffer) return new Int16Array(pcm.slice(0, pcm.byteLength & ~1));
  if (ArrayBuffer.isView(pcm)) {
    const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength & ~1);
    return new Int16Array(bytes.slice().buffer); // a copy: aligned, and ours
  }
  throw new TypeError("pcm16 must be an Int16Array, a Uint8Array (little-endian bytes) or an ArrayBuffer");
}

export function int16ToBytes(samples) {
  return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
}

/** Linear-interpolation resampler that keeps its phase across calls, so that chunk edges do not click. */
export class Resampler {
  constructor(fromRate, toRate) {
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.step = fromRate / toRate;
    this.position = 0; // of the next output sample, in input samples from the current call's first one
    this.previous = 0; // the last input sample of the previous call
  }

  process(samples) {
    if (this.fromRate === this.toRate) return samples;
    const out = new Int16Array(Math.ceil((samples.length - this.position) / this.step) + 1);
    let count = 0;
    while (this.position < samples.length - 1) {
      const index = Math.floor(this.position);
      const fraction = this.position - index;
      const left = index < 0 ? this.previous : samples[index];
      const right = samples[index + 1];
      out[count++] = Math.round(left + (right - left) * fraction);
      this.position += this.step;
    }
    this.position -= samples.length;
    if (samples.length) this.previous = samples[samples.length - 1];
    return out.subarray(0, count);
  }
}

/** Collects samples and hands out exact 20 ms frames; what is left waits for the next call (or flush). */
export class Framer {
  constructor(sampleRate, frameMs = FRAME_MS) {
    this.frame = new Int16Array((sampleRate * frameMs) / 1000);
    this.filled = 0;
  }

  push(samples, onFrame) {
    let offset = 0;
    while (offset < samples.length) {
      const take = Math.min(this.frame.length - this.filled, samples.length - offset);
      this.frame.set(samples.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.frame.length) {
        onFrame(this.frame.slice());
        this.filled = 0;
      }
    }
  }

  /** The partial frame, padded with silence (the end of a turn). */
  flush(onFrame) {
    if (!this.filled) return;
    this.frame.fill(0, this.filled);
    onFrame(this.frame.slice());
    this.filled = 0;
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function toBase64(bytes) {
  if (typeof Buffer !== "undefined") return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i], b = bytes[i + 1], c = bytes[i + 2];
    out += B64[a >> 2] + B64[((a & 3) << 4) | ((b ?? 0) >> 4)];
    out += b === undefined ? "=" : B64[((b & 15) << 2) | ((c ?? 0) >> 6)];
    out += c === undefined ? "=" : B64[c & 63];
  }
  return out;
}

export function fromBase64(text) {
  if (typeof Buffer !== "undefined") {
    const buffer = Buffer.from(text || "", "base64");
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  const clean = (text || "").replace(/=+$/, "");
  const bytes = new Uint8Array((clean.length * 3) >> 2);
  let bits = 0, value = 0, index = 0;
  for (const char of clean) {
    value = (value << 6) | B64.indexOf(char);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[index++] = (value >> bits) & 255;
    }
  }
  return bytes;
}

/**
 * The playout's bookkeeping, shared by every player: which turn is playing, when each of its chunks starts
 * and how long it is, so that a flush can say how much of the turn was heard (its audio_end_ms).
 */
export class PlayoutClock {
  constructor() {
    this.turnId = null;
    this.chunks = []; // {start, ms}: the current turn's, in now()'s ms
    this.queueEnd = 0; // when the last scheduled chunk ends
  }

  /** Schedules `ms` of audio of `turnId` after what is queued; returns when it starts playing. */
  schedule(turnId, ms, headroomMs = 0) {
    const at = now();
    if (turnId !== this.turnId) {
      this.turnId = turnId;
      this.chunks = [];
    }
    const start = this.queueEnd > at ? this.queueEnd : at + headroomMs;
    this.chunks.push({ start, ms });
    this.queueEnd = start + ms;
    return start;
  }

  /** Ms of the current turn heard so far. */
  playedMs(at = now()) {
    let played = 0;
    for (const chunk of this.chunks) played += Math.min(chunk.ms, Math.max(0, at - chunk.start));
    return played;
  }

  get playing() {
    return this.queueEnd > now();
  }

  /** Stops: what was heard of the current turn ({turnId, playedMs}); the queue is empty afterwards. */
  flush() {
    const result = { turnId: this.turnId, playedMs: Math.round(this.playedMs()) };
    this.chunks = [];
    this.queueEnd = 0;
    return result;
  }
}

/**
 * A player without a speaker: it "plays" each chunk in real time after the one before, so that the SDK's
 * truncation and e2e figures mean on a server what they mean on a phone. Node's default.
 */
export class ClockPlayer {
  constructor() {
    this.clock = new PlayoutClock();
  }

  /** @returns {number} when the chunk starts playing (now()'s ms) */
  enqueue(turnId, samples, sampleRate) {
    return this.clock.schedule(turnId, (1000 * samples.length) / sampleRate);
  }

  get playing() {
    return this.clock.playing;
  }

  flush() {
    return this.clock.flush();
  }

  /** Resolves when everything queued has played. */
  drained() {
    const wait = Math.max(0, this.clock.queueEnd - now());
    return new Promise((resolve) => setTimeout(resolve, wait));
  }

  close() {
    this.clock.flush();
  }
}

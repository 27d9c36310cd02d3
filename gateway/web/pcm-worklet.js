// The SDK's microphone worklet (clients/js/src/pcm-worklet.js; gateway/web/ has the copy `make clients` makes).
// AudioWorklet processor: the microphone's float samples, at the AudioContext's rate, to PCM16 at the
// API's 24 kHz, posted to the page in fixed-size chunks. It runs on the audio rendering thread, so it does
// no allocation per sample and nothing that could block; the page base64-encodes and sends each chunk.

const TARGET_RATE = 24000;

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const chunkMs = (options.processorOptions && options.processorOptions.chunkMs) || 40;
    // `sampleRate` is the AudioContext's rate (44.1 or 48 kHz on most devices, 16 kHz on some phones).
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    // A box filter of ceil(step) taps before decimating: without it, 12-24 kHz content of a 48 kHz
    // microphone would fold into the speech band. Cheap, and the ASR only keeps up to 8 kHz anyway.
    this.taps = Math.max(1, Math.ceil(this.step));
    this.history = new Float32Array(this.taps);
    this.historyIndex = 0;
    this.historySum = 0;
    // The filtered sample before the current block's first one: linear interpolation between blocks.
    this.previous = 0;
    // Where the next output sample falls, in input samples from the start of the current block
    // (it may be negative: between `previous` and the block's first sample).
    this.position = 0;
    this.chunk = new Int16Array(Math.round((TARGET_RATE * chunkMs) / 1000));
    this.filled = 0;
  }

  filtered(sample) {
    // Running mean of the last `taps` input samples.
    this.historySum += sample - this.history[this.historyIndex];
    this.history[this.historyIndex] = sample;
    this.historyIndex = (this.historyIndex + 1) % this.taps;
    return this.historySum / this.taps;
  }

  emit(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === this.chunk.length) {
      // Transfer a copy: the ring buffer stays ours, the copy's memory moves to the page without copying again.
      const out = this.chunk.slice();
      this.port.postMessage(out.buffer, [out.buffer]);
      this.filled = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    // No input yet (the microphone is starting) or it ended: keep the node alive, emit nothing.
    if (!channels || channels.length === 0) return true;
    const input = channels[0]; // mono: getUserMedia asked for one channel; a second one would be the same voice
    if (!this.block || this.block.length !== input.length) this.block = new Float32Array(input.length);
    const block = this.block;
    for (let i = 0; i < input.length; i++) block[i] = this.filtered(input[i]);
    while (this.position < block.length - 1) {
      const index = Math.floor(this.position);
      const fraction = this.position - index;
      const left = index < 0 ? this.previous : block[index];
      const right = block[index + 1];
      this.emit(left + (right - left) * fraction);
      this.position += this.step;
    }
    this.position -= block.length;
    this.previous = block[block.length - 1];
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);

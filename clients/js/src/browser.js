// Browser helpers: the microphone as 24 kHz PCM16 (an AudioWorklet), and gapless playout through Web Audio
// with an instant flush that says how much of the reply was heard.

import { PlayoutClock, now } from "./audio.js";
import { REALTIME_RATE } from "./realtime.js";

/**
 * The microphone, with the browser's echo canceller on, as PCM16 chunks at 24 kHz.
 * `onAudio(samples: Int16Array, sampleRate)` gets each chunk: hand it to session.sendAudio.
 */
export class MicrophoneCapture {
  constructor(context, { workletUrl = "pcm-worklet.js", chunkMs = 40, onAudio } = {}) {
    this.context = context;
    this.workletUrl = workletUrl;
    this.chunkMs = chunkMs;
    this.onAudio = onAudio ?? (() => {});
    this.stream = null;
    this.node = null;
  }

  async start() {
    if (!globalThis.navigator?.mediaDevices) {
      throw new Error("the microphone needs a secure page: open it over https, or on localhost");
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    await this.context.audioWorklet.addModule(this.workletUrl);
    this.node = new AudioWorkletNode(this.context, "pcm16-capture", { processorOptions: { chunkMs: this.chunkMs } });
    this.node.port.onmessage = (message) => this.onAudio(new Int16Array(message.data), REALTIME_RATE);
    this.context.createMediaStreamSource(this.stream).connect(this.node);
    // Some browsers only run a node that leads to the destination; muted, so the user never hears themselves.
    const mute = this.context.createGain();
    mute.gain.value = 0;
    this.node.connect(mute).connect(this.context.destination);
  }

  stop() {
    this.stream?.getTracks().forEach((track) => track.stop());
    this.node?.disconnect();
    this.stream = this.node = null;
  }
}

/**
 * Gapless playout: each chunk is scheduled to start where the one before ends. flush() stops everything at
 * once and returns how much of the current turn was heard, which the session reports as its truncation.
 */
export class WebAudioPlayer {
  constructor(context, { headroomMs = 50 } = {}) {
    this.context = context;
    this.headroomMs = headroomMs;
    this.clock = new PlayoutClock();
    this.sources = new Set();
    this.scheduledSamples = 0; // every sample handed to the context
  }

  enqueue(turnId, samples, sampleRate) {
    if (!samples.length) return now();
    const buffer = this.context.createBuffer(1, samples.length, sampleRate); // resampled by the context
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
    const startsAt = this.clock.schedule(turnId, (1000 * samples.length) / sampleRate, this.headroomMs);
    // The clock's ms (performance.now) to the context's seconds: both run in real time.
    const when = this.context.currentTime + Math.max(0, startsAt - now()) / 1000;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.start(when);
    source.onended = () => this.sources.delete(source);
    this.sources.add(source);
    this.scheduledSamples += samples.length;
    return startsAt;
  }

  get playing() {
    return this.clock.playing;
  }

  flush() {
    for (const source of this.sources) {
      source.onended = null;
      try {
        source.stop();
      } catch {
        // already stopped
      }
    }
    this.sources.clear();
    return this.clock.flush();
  }

  close() {
    this.flush();
  }
}

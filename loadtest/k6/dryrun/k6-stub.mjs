// Stand-ins for the k6 modules that loadtest/k6/converse.js imports (k6/net/grpc, k6/encoding,
// k6/metrics, k6/timers), for dryrun.mjs. The gRPC Stream talks to a simulated gateway: a VAD that
// ends an utterance after 200 ms of silence, then an agent reply of three audio chunks and its
// TurnMetrics, an Interruption when the user talks over the reply, and ErrorEvents on request.
// Time runs `speed` times faster than the wall clock: Date.now() and the timers agree.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';

const settings = { scriptDir: '.', speed: 10, failBackend: '' };
const realNow = Date.now.bind(Date);
const epoch = realNow();
const started = performance.now();
Date.now = () => Math.round(epoch + (performance.now() - started) * settings.speed);

export function configure(options) {
  Object.assign(settings, options);
}

// ---- k6/timers

const pending = new Set();

function scheduled(fn, ms) {
  const handle = globalThis.setTimeout(() => {
    pending.delete(handle);
    fn();
  }, Math.max(0, ms) / settings.speed);
  pending.add(handle);
  return handle;
}

function cancelled(handle) {
  pending.delete(handle);
  globalThis.clearTimeout(handle);
}

export { cancelled as clearTimeout, scheduled as setTimeout };

// ---- k6/encoding

export function b64encode(input) {
  return (typeof input === 'string' ? Buffer.from(input) : Buffer.from(input)).toString('base64');
}

// ---- k6/metrics

export const metrics = {};

class Metric {
  constructor(name, kind) {
    if (metrics[name]) {
      throw new Error(`metric ${name} defined twice`);
    }
    this.kind = kind;
    this.samples = [];
    metrics[name] = this;
  }

  add(value, tags = {}) {
    if (typeof value !== 'number' && typeof value !== 'boolean') {
      throw new Error(`metric sample ${value} is not a number or a boolean`);
    }
    this.samples.push({ value: Number(value), tags });
  }
}

export class Trend extends Metric {
  constructor(name) { super(name, 'trend'); }
}
export class Rate extends Metric {
  constructor(name) { super(name, 'rate'); }
}
export class Counter extends Metric {
  constructor(name) { super(name, 'counter'); }
}

// ---- k6/net/grpc

export class Client {
  constructor() {
    this.methods = new Set();
    this.connected = false;
  }

  // Parses enough of the protos to know their services, and checks that every import resolves.
  load(importPaths, ...files) {
    const roots = (importPaths && importPaths.length ? importPaths : ['.']).map((p) => path.resolve(settings.scriptDir, p));
    const find = (file) => {
      const found = roots.map((root) => path.join(root, file)).find((candidate) => existsSync(candidate));
      if (!found) {
        throw new Error(`proto ${file} not found under ${roots.join(', ')}`);
      }
      return readFileSync(found, 'utf8');
    };
    const seen = new Set();
    const visit = (file) => {
      if (seen.has(file)) {
        return;
      }
      seen.add(file);
      const text = find(file);
      const pkg = (text.match(/^package\s+([\w.]+);/m) || [])[1];
      for (const imported of text.matchAll(/^import\s+"([^"]+)";/gm)) {
        visit(imported[1]);
      }
      for (const service of text.matchAll(/service\s+(\w+)\s*{([^}]*)}/g)) {
        for (const rpc of service[2].matchAll(/rpc\s+(\w+)\s*\(/g)) {
          this.methods.add(`/${pkg}.${service[1]}/${rpc[1]}`);
        }
      }
    };
    files.forEach(visit);
  }

  connect(address, params = {}) {
    if (!/^[\w.-]+:\d+$/.test(address)) {
      throw new Error(`connect: ${address} is not host:port`);
    }
    this.connected = true;
    this.params = params;
  }

  close() {
    this.connected = false;
  }
}

export const gateway = { streams: 0, configs: 0, audioChunks: 0, ends: 0, replies: 0, interruptions: 0, errors: 0 };
export const openStreams = new Set();

const AUDIO_BYTES = 3200; // 100 ms of 16 kHz PCM16
const MIN_SILENCE_MS = 200;

export class Stream {
  constructor(client, method, params = {}) {
    const name = method.startsWith('/') ? method : `/${method}`;
    if (!client.connected) {
      throw new Error('Stream: the client is not connected');
    }
    if (!client.methods.has(name)) {
      throw new Error(`Stream: method ${name} not found in the loaded protos`);
    }
    this.params = JSON.parse(JSON.stringify(params));
    this.handlers = { data: [], error: [], end: [] };
    this.writing = true;
    this.closed = false;
    this.offsetMs = 0;
    this.utterance = 0;
    this.inSpeech = false;
    this.silentMs = 0;
    this.speechEndMs = 0;
    this.turnId = 0;
    this.reply = null; // the agent turn in progress: { turnId, timers }
    gateway.streams += 1;
    openStreams.add(this);
  }

  on(event, handler) {
    if (!(event in this.handlers)) {
      throw new Error(`Stream.on: unknown event ${event}`);
    }
    this.handlers[event].push(handler);
  }

  write(message) {
    if (!this.writing) {
      return; // k6 ignores writes after the stream closed
    }
    const request = JSON.parse(JSON.stringify(message)); // what k6 marshals
    const kinds = Object.keys(request);
    if (kinds.length !== 1 || !['config', 'audio', 'text', 'end'].includes(kinds[0])) {
      throw new Error(`ConverseRequest must set exactly one of config, audio, text, end: ${JSON.stringify(kinds)}`);
    }
    const [kind] = kinds;
    if ((kind === 'config') !== (this.first === undefined)) {
      throw new Error('the SessionConfig must be the first message, and only the first');
    }
    this.first = this.first || kind;
    if (kind === 'config') {
      const audio = request.config.inputAudio || request.config.input_audio || {};
      if ((audio.sampleRateHz || audio.sample_rate_hz) !== 16000 || audio.encoding !== 'AUDIO_ENCODING_PCM16LE') {
        throw new Error(`unexpected input audio format ${JSON.stringify(audio)}`);
      }
      gateway.configs += 1;
    } else if (kind === 'audio') {
      const pcm = Buffer.from(request.audio, 'base64');
      if (pcm.length !== AUDIO_BYTES || b64encode(pcm) !== request.audio) {
        throw new Error(`an audio chunk must be 100 ms of 16 kHz PCM16 in base64 (${pcm.length} bytes)`);
      }
      gateway.audioChunks += 1;
      this.hear(pcm.some((byte) => byte !== 0));
    } else if (kind === 'end') {
      gateway.ends += 1;
      this.finish();
    }
  }

  end() {
    this.writing = false;
    this.finish();
  }

  // ---- the simulated gateway

  emit(event, delayMs = 0) {
    const timer = scheduled(() => {
      if (!this.closed) {
        this.handlers.data.forEach((handler) => handler(event, { ts: Date.now() }));
      }
    }, delayMs);
    return timer;
  }

  hear(speech) {
    const offset = this.offsetMs;
    this.offsetMs += 100;
    if (speech) {
      this.silentMs = 0;
      this.speechEndMs = this.offsetMs;
      if (!this.inSpeech) {
        this.inSpeech = true;
        this.utterance += 1;
        this.emit({ speechStarted: { utteranceId: this.utterance, offsetMs: offset } });
        if (this.reply) {
          this.interrupt();
        }
      }
    } else if (this.inSpeech) {
      this.silentMs += 100;
      if (this.silentMs >= MIN_SILENCE_MS) {
        this.inSpeech = false;
        this.emit({
          speechEnded: {
            utteranceId: this.utterance, offsetMs: this.speechEndMs, decisionOffsetMs: this.offsetMs, reason: 'REASON_SILENCE',
          },
        });
        this.emit({ finalTranscript: { utteranceId: this.utterance, text: 'a question', processingMs: 100 } }, 100);
        this.answer();
      }
    }
  }

  answer() {
    this.turnId += 1;
    const turnId = this.turnId;
    if (settings.failBackend) {
      gateway.errors += 1;
      this.emit({ error: { code: 'UNAVAILABLE', message: 'simulated failure', backend: settings.failBackend, turnId } }, 200);
      return;
    }
    const timers = [this.emit({ agentText: { turnId, delta: 'An answer.' } }, 250)];
    for (let sequenceNumber = 0; sequenceNumber < 3; sequenceNumber += 1) {
      const audio = b64encode(new ArrayBuffer(4800));
      timers.push(this.emit({ agentAudio: { turnId, sequenceNumber, audio, sampleRateHz: 24000 } }, 300 + 400 * sequenceNumber));
    }
    const metrics = { turnId, vadWaitMs: 200, asrMs: 100, llmTtftMs: 120, ttsTtfaMs: 180, llmTokens: 3, interrupted: false };
    timers.push(this.emit({ turnMetrics: metrics }, 1300));
    timers.push(scheduled(() => {
      this.reply = null;
      gateway.replies += 1;
    }, 1300));
    this.reply = { turnId, timers };
  }

  interrupt() {
    const { turnId, timers } = this.reply;
    timers.forEach(cancelled);
    this.reply = null;
    gateway.interruptions += 1;
    this.emit({ interruption: { turnId, heardText: 'An' } });
    this.emit({ turnMetrics: { turnId, interrupted: true } });
  }

  finish() {
    if (this.closing) {
      return;
    }
    this.closing = true;
    scheduled(() => { // the gateway lets the turn in flight end, then closes the stream
      this.writing = false;
      this.closed = true;
      openStreams.delete(this);
      this.handlers.end.forEach((handler) => handler({}, { ts: Date.now() }));
    }, this.reply ? 1400 : 10);
  }
}

// Resolves when no timer is pending and every stream has closed: where k6 would end the iteration.
export function idle(limitMs = 120000) {
  const deadline = realNow() + limitMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pending.size === 0 && openStreams.size === 0) {
        resolve();
      } else if (realNow() > deadline) {
        reject(new Error(`the iteration did not end: ${pending.size} timers, ${openStreams.size} open streams`));
      } else {
        globalThis.setTimeout(check, 5);
      }
    };
    check();
  });
}

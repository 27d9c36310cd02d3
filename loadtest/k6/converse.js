// k6 load test of the gateway's Converse stream: the scenario of loadtest/locustfile.py.
//
// Each VU iteration is one conversation: one Converse stream, a microphone that
// streams PCM16 at 16 kHz in 100 ms chunks at real-time pace (the recorded
// questions of loadtest/audio/ during a turn, silence otherwise), LOADTEST_TURNS
// turns with a think-time pause before each one.
//
//   k6 run loadtest/k6/converse.js                                  # 4 VUs, 60 s, gateway on 127.0.0.1:50051
//   k6 run -e LOADTEST_HOST=gateway.example:443 -e LOADTEST_TLS=true -e LOADTEST_TOKEN=... loadtest/k6/converse.js
//
// Metrics: e2e_ms (this client's clock, from sending the last sample of the user's
// speech, i.e. the chunk holding the ASR's speech-end offset, to the first agent
// audio chunk received), llm_ttft_ms and tts_ttfa_ms (the gateway's TurnMetrics),
// turn_failures (a Rate: an ErrorEvent, a failed stream or no answer in time),
// gateway_errors and interruptions (Counters). Thresholds: p(95) of e2e_ms under
// LOADTEST_E2E_P95_MS (2000), no failed turn, no gateway error.
//
// Paths (the WAVs, the protos) are relative to this file. `node loadtest/k6/dryrun/dryrun.mjs`
// runs this script against a simulated gateway where k6 is not installed.

import { Client, Stream } from 'k6/net/grpc';
import { b64encode } from 'k6/encoding';
import { Counter, Rate, Trend } from 'k6/metrics';
import { clearTimeout, setTimeout } from 'k6/timers';

const HOST = __ENV.LOADTEST_HOST || '127.0.0.1:50051';
const TURNS = parseInt(__ENV.LOADTEST_TURNS || '3', 10);
const PAUSE_MIN_S = parseFloat(__ENV.LOADTEST_PAUSE_MIN_S || '1');
const PAUSE_MAX_S = parseFloat(__ENV.LOADTEST_PAUSE_MAX_S || '3');
// From the end of the user's speech to the first agent audio.
const TURN_TIMEOUT_S = parseFloat(__ENV.LOADTEST_TURN_TIMEOUT_S || '15');
// How long a reply may take to be spoken after its first audio (the gateway paces it in real time).
const REPLY_MAX_S = 120;
// Share of turns in which the user talks over the agent's reply.
const BARGE_IN = parseFloat(__ENV.LOADTEST_BARGE_IN || '0');
const TOKEN = __ENV.LOADTEST_TOKEN || '';
const TLS = /^(1|true|yes|on)$/i.test(__ENV.LOADTEST_TLS || '');

const SAMPLE_RATE = 16000;
const CHUNK_MS = 100;
const CHUNK_BYTES = (SAMPLE_RATE * CHUNK_MS / 1000) * 2;
// gRPC status code names, by number, for the error tags.
const CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED',
  'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

export const options = {
  scenarios: {
    conversations: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.LOADTEST_USERS || '4', 10),
      duration: __ENV.LOADTEST_TIME || '60s',
      gracefulStop: '30s', // the turns in flight finish
    },
  },
  thresholds: {
    e2e_ms: [`p(95)<${__ENV.LOADTEST_E2E_P95_MS || '2000'}`],
    turn_failures: ['rate==0'],
    gateway_errors: ['count==0'],
  },
};

const e2eMs = new Trend('e2e_ms', true);
const llmTtftMs = new Trend('llm_ttft_ms', true);
const ttsTtfaMs = new Trend('tts_ttfa_ms', true);
const turnFailures = new Rate('turn_failures');
const gatewayErrors = new Counter('gateway_errors');
const interruptions = new Counter('interruptions');

// A 16 kHz mono PCM16 WAV as base64 100 ms chunks (protobuf JSON carries bytes as base64);
// the short last chunk is padded with silence, as a microphone's buffers are.
function wavChunks(buffer, name) {
  const view = new DataView(buffer);
  const tag = (at) => String.fromCharCode(...new Uint8Array(buffer, at, 4));
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new Error(`${name}: not a WAV file`);
  }
  let format = null;
  for (let at = 12; at + 8 <= view.byteLength;) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      format = {
        pcm: view.getUint16(body, true) === 1,
        channels: view.getUint16(body + 2, true),
        rate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!format || !format.pcm || format.channels !== 1 || format.rate !== SAMPLE_RATE || format.bits !== 16) {
        throw new Error(`${name}: must be ${SAMPLE_RATE} Hz mono 16-bit PCM`);
      }
      const end = Math.min(body + size, view.byteLength);
      const chunks = [];
      for (let start = body; start < end; start += CHUNK_BYTES) {
        const chunk = new Uint8Array(CHUNK_BYTES);
        chunk.set(new Uint8Array(buffer, start, Math.min(CHUNK_BYTES, end - start)));
        chunks.push(b64encode(chunk.buffer));
      }
      return chunks;
    }
    at = body + size + (size % 2);
  }
  throw new Error(`${name}: no data chunk`);
}

// Read once, in the init context.
const QUESTIONS = ['question-1.wav', 'question-2.wav', 'question-3.wav'].map(
  (name) => wavChunks(open(`../audio/${name}`, 'b'), name),
);
const BARGE_IN_CHUNKS = wavChunks(open('../audio/barge-in.wav', 'b'), 'barge-in.wav');
const SILENCE = b64encode(new ArrayBuffer(CHUNK_BYTES));

const client = new Client();
client.load(['../../protos'], 'voice_agent/v1/gateway.proto');

let connected = false;

const pauseMs = () => 1000 * (PAUSE_MIN_S + Math.random() * (PAUSE_MAX_S - PAUSE_MIN_S));

export default function () {
  if (!connected) {
    try {
      client.connect(HOST, { plaintext: !TLS, timeout: '10s' });
      connected = true;
    } catch (error) {
      console.error(`cannot connect to ${HOST}: ${error}`);
      gatewayErrors.add(1, { code: 'UNAVAILABLE', backend: 'gateway' });
      turnFailures.add(true, { code: 'UNAVAILABLE' });
      return;
    }
  }
  converse();
}

// One conversation: everything after the first write happens in the stream's and the timers' callbacks.
function converse() {
  const sessionS = TURNS * (PAUSE_MAX_S + TURN_TIMEOUT_S + REPLY_MAX_S + 20) + 30;
  const stream = new Stream(client, 'voice_agent.v1.Gateway/Converse', {
    metadata: TOKEN ? { authorization: `Bearer ${TOKEN}` } : {},
    timeout: `${Math.ceil(sessionS)}s`,
  });
  const speech = []; // base64 chunks of the user's speech, waiting for the microphone
  const sentAt = {}; // audio offset (ms) -> when the chunk starting there was sent
  const startedAt = Date.now();
  let offsetMs = 0;
  let micTimer = null;
  let turn = null; // the turn in progress
  let turnsDone = 0;
  let ending = false;
  let endedByGateway = false; // an error event from the gateway came: its status ends the stream next

  // The microphone: one chunk per 100 ms, on the stream's own audio clock.
  function tick() {
    if (ending) {
      return;
    }
    sentAt[offsetMs] = Date.now();
    stream.write({ audio: speech.length ? speech.shift() : SILENCE });
    offsetMs += CHUNK_MS;
    micTimer = setTimeout(tick, Math.max(0, startedAt + offsetMs - Date.now()));
  }

  function startTurn() {
    if (ending) {
      return;
    }
    const question = QUESTIONS[Math.floor(Math.random() * QUESTIONS.length)];
    turn = {
      bargeIn: Math.random() < BARGE_IN,
      speechEndMs: null, // the ASR's latest speech-end offset
      firstAudio: {}, // agent turn id -> { at, speechEndMs }
      firstTurnId: null,
      timer: null,
    };
    speech.push(...question);
    turn.timer = setTimeout(() => fail('DEADLINE_EXCEEDED', 'no answer in time'),
      question.length * CHUNK_MS + TURN_TIMEOUT_S * 1000);
  }

  function answered(metrics) {
    const first = turn.firstAudio[metrics.turnId];
    const sent = first && first.speechEndMs !== null
      ? sentAt[Math.floor(first.speechEndMs / CHUNK_MS) * CHUNK_MS] : undefined;
    if (sent === undefined) {
      fail('INTERNAL', 'answered without audio, or without a speech-ended event');
      return;
    }
    clearTimeout(turn.timer);
    turn = null;
    e2eMs.add(first.at - sent);
    llmTtftMs.add(metrics.llmTtftMs);
    ttsTtfaMs.add(metrics.ttsTtfaMs);
    turnFailures.add(false);
    turnsDone += 1;
    if (turnsDone < TURNS) {
      setTimeout(startTurn, pauseMs());
    } else {
      finish();
    }
  }

  // The turn failed: it counts, and the conversation ends (a new one starts with the next iteration).
  function fail(code, message) {
    if (turn !== null) {
      clearTimeout(turn.timer);
      turn = null;
      turnFailures.add(true, { code });
      console.warn(`turn failed: ${code}: ${message}`);
    }
    finish();
  }

  function finish() {
    if (ending) {
      return;
    }
    ending = true;
    clearTimeout(micTimer);
    stream.write({ end: {} });
    stream.end();
  }

  stream.on('data', (event) => {
    const now = Date.now();
    if (event.error) {
      const { code, backend, message } = event.error;
      // The gateway's own error event precedes the status that ends the stream: count it once.
      endedByGateway = endedByGateway || backend === 'gateway';
      gatewayErrors.add(1, { code, backend });
      fail(code, `${backend}: ${message}`);
    } else if (turn === null) {
      // between turns: nothing to time
    } else if (event.speechEnded) {
      turn.speechEndMs = event.speechEnded.offsetMs;
    } else if (event.agentAudio) {
      const id = event.agentAudio.turnId;
      if (!(id in turn.firstAudio)) {
        turn.firstAudio[id] = { at: now, speechEndMs: turn.speechEndMs };
      }
      if (turn.firstTurnId === null) {
        turn.firstTurnId = id;
        clearTimeout(turn.timer);
        const bargeInMs = turn.bargeIn ? BARGE_IN_CHUNKS.length * CHUNK_MS + TURN_TIMEOUT_S * 1000 : 0;
        turn.timer = setTimeout(() => fail('DEADLINE_EXCEEDED', 'the reply did not end'), bargeInMs + REPLY_MAX_S * 1000);
        if (turn.bargeIn) {
          speech.push(...BARGE_IN_CHUNKS); // the user talks over the agent
        }
      }
    } else if (event.interruption) {
      interruptions.add(1);
    } else if (event.turnMetrics && !event.turnMetrics.interrupted) {
      // With a barge-in the answer is a later agent turn than the one talked over.
      if (!turn.bargeIn || turn.firstTurnId === null || event.turnMetrics.turnId > turn.firstTurnId) {
        answered(event.turnMetrics);
      }
    }
  });

  stream.on('error', (error) => {
    const code = CODES[error.code] || String(error.code);
    if (!endedByGateway) {
      gatewayErrors.add(1, { code, backend: 'gateway' });
    }
    fail(code, `stream failed: ${error.message}`);
  });

  stream.on('end', () => {
    fail('UNAVAILABLE', 'stream closed by the gateway mid-turn'); // a no-op unless a turn was open
    ending = true;
    clearTimeout(micTimer);
  });

  stream.write({ config: { inputAudio: { encoding: 'AUDIO_ENCODING_PCM16LE', sampleRateHz: SAMPLE_RATE } } });
  tick();
  setTimeout(startTurn, pauseMs());
}

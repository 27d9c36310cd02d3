#!/usr/bin/env node
// One spoken turn against the gateway: the WAV is spoken in real time, the reply's audio is written to --out,
// and one JSON object is printed: {transcript, reply, e2e_ms, audio_ms, ...}; on an error {error, code}, exit 1.
//
//   node clients/js/examples/talk.mjs --wav IN.wav --out REPLY.wav [--token T] [--transport grpc|realtime]
//
// gRPC: the gateway at --address, else VOICE_GATEWAY_ADDRESS, else 127.0.0.1:50051.
// Realtime: --url, else VOICE_REALTIME_URL, else ws://127.0.0.1:8080/v1/realtime.
// The token: --token, else VOICE_API_KEY. --tls: TLS with the system's roots (gRPC; use wss:// for Realtime).

import { parseArgs } from "node:util";

import WebSocket from "ws";

import { createSession } from "../src/index.js";
import { readWav, writeWav } from "../src/wav.js";

const TRAILING_SILENCE_MS = 2000; // after the speech: the gateway ends the turn on silence
const STEP_MS = 20;

function fail(error, code) {
  process.stdout.write(JSON.stringify({ error: String(error?.message ?? error), code: code ?? error?.code ?? "UNKNOWN" }) + "\n");
  process.exit(1);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The samples, 20 ms at a time, in real time (as a microphone would), then silence. */
async function speak(session, samples, sampleRate, stopped) {
  const step = (sampleRate * STEP_MS) / 1000;
  const silence = new Int16Array((sampleRate * TRAILING_SILENCE_MS) / 1000);
  const all = new Int16Array(samples.length + silence.length);
  all.set(samples);
  const started = performance.now();
  for (let offset = 0, index = 0; offset < all.length && !stopped(); offset += step, index++) {
    if (session.state === "open") session.sendAudio(all.subarray(offset, offset + step), sampleRate);
    const due = started + (index + 1) * STEP_MS;
    await sleep(Math.max(0, due - performance.now()));
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      wav: { type: "string" },
      out: { type: "string" },
      token: { type: "string" },
      transport: { type: "string", default: "grpc" },
      address: { type: "string" },
      url: { type: "string" },
      tls: { type: "boolean", default: false },
      "timeout-s": { type: "string", default: "60" },
    },
  });
  if (!values.wav || !values.out) fail("usage: talk.mjs --wav IN.wav --out REPLY.wav [--token T] [--transport grpc|realtime]", "INVALID_ARGUMENT");
  if (!["grpc", "realtime"].includes(values.transport)) fail(`--transport must be grpc or realtime, not ${values.transport}`, "INVALID_ARGUMENT");
  let input;
  try {
    input = readWav(values.wav);
  } catch (error) {
    fail(error, "INVALID_ARGUMENT");
  }
  const session = createSession({
    transport: values.transport,
    address: values.address ?? process.env.VOICE_GATEWAY_ADDRESS ?? "127.0.0.1:50051",
    url: values.url ?? process.env.VOICE_REALTIME_URL ?? "ws://127.0.0.1:8080/v1/realtime",
    token: values.token ?? process.env.VOICE_API_KEY,
    tls: values.tls,
    WebSocket,
    reconnect: { maxAttempts: 3 },
  });

  let transcript = "";
  let replyTurn = null;
  let reply = "";
  const audio = [];
  let sampleRate = 24_000;
  let finalError = null;
  const done = new Promise((resolve) => {
    session.on("transcript", (event) => {
      if (event.final && event.text.trim()) transcript = (transcript + " " + event.text.trim()).trim();
    });
    session.on("agentText", (event) => {
      replyTurn ??= event.turnId;
      if (event.turnId === replyTurn) reply += event.delta;
    });
    session.on("agentAudio", (event) => {
      replyTurn ??= event.turnId;
      if (event.turnId !== replyTurn) return;
      audio.push(event.samples);
      sampleRate = event.sampleRate;
    });
    session.on("turnMetrics", (metrics) => {
      if (metrics.turnId === replyTurn || (replyTurn === null && transcript)) resolve(metrics);
    });
    // A backend failed the turn (asr, llm or tts): the session goes on, but this turn has no reply to give.
    session.on("error", ({ error }) => {
      if (error.backend !== "gateway" && (replyTurn === null || error.turnId === replyTurn)) {
        finalError = error;
        resolve(null);
      }
    });
    session.on("closed", ({ error }) => {
      finalError = error;
      resolve(null);
    });
  });

  const timeoutMs = 1000 * Number(values["timeout-s"]);
  const timer = setTimeout(() => fail(`no reply within ${values["timeout-s"]} s`, "DEADLINE_EXCEEDED"), timeoutMs);
  let metrics = null;
  try {
    await session.connect();
    let finished = false;
    const speaking = speak(session, input.samples, input.sampleRate, () => finished);
    metrics = await done;
    finished = true;
    await speaking;
  } catch (error) {
    fail(error);
  }
  clearTimeout(timer);
  await session.close();
  if (!metrics) fail(finalError ?? new Error("the session ended before a reply"), finalError?.code ?? "UNAVAILABLE");
  if (!audio.length) fail(new Error(`turn ${metrics.turnId} ended with no reply audio (${metrics.status ?? "no status"})`), "INTERNAL");

  const total = audio.reduce((sum, chunk) => sum + chunk.length, 0);
  const samples = new Int16Array(total);
  let offset = 0;
  for (const chunk of audio) {
    samples.set(chunk, offset);
    offset += chunk.length;
  }
  writeWav(values.out, samples, sampleRate);
  const out = {
    transcript,
    reply: reply.trim(),
    e2e_ms: metrics.clientE2eMs === null ? null : Math.round(metrics.clientE2eMs),
    audio_ms: Math.round((1000 * total) / sampleRate),
    sample_rate: sampleRate,
    transport: values.transport,
    conversation_id: session.conversationId,
    turn_id: metrics.turnId,
    metrics: {
      vad_wait_ms: metrics.vadWaitMs,
      asr_ms: metrics.asrMs,
      llm_ttft_ms: metrics.llmTtftMs,
      tts_ttfa_ms: metrics.ttsTtfaMs,
      gateway_first_audio_ms: metrics.gatewayFirstAudioMs,
      llm_tokens: metrics.llmTokens,
    },
  };
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}

main().catch((error) => fail(error));

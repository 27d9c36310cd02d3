// Shared by the suites that run against the real stack (tests/test_client_js.py starts it and sets the env).

import WebSocket from "ws";

import { ConversationsClient, createSession } from "../src/index.js";
import { readWav } from "../src/wav.js";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: tests/test_client_js.py runs these suites against the real stack`);
  return value;
};

export function open(transport, overrides = {}) {
  return createSession({
    transport,
    address: env("VOICE_GATEWAY_ADDRESS"),
    url: env("VOICE_REALTIME_URL"),
    token: env("VOICE_API_KEY"),
    WebSocket,
    reconnect: { maxAttempts: 6, baseDelayMs: 200, maxDelayMs: 2000 },
    ...overrides,
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The next `type` event that passes `test`, within `timeoutMs`. */
export function next(session, type, test = () => true, timeoutMs = 45_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      session.off(type, listener);
      // What the session saw (errors first): why the event never came, a backend's failure, say.
      const seen = (session.recorded ?? []).filter((e) => e.type !== "agentAudio" && e.type !== "agentText");
      reject(new Error(`no ${type} event within ${timeoutMs} ms; saw ${JSON.stringify(seen.slice(-12))}`));
    }, timeoutMs);
    const listener = (event) => {
      if (!test(event)) return;
      clearTimeout(timer);
      session.off(type, listener);
      resolve(event);
    };
    session.on(type, listener);
  });
}

/** Every event of the session, in order, as {type, ...}. */
export function record(session) {
  const events = [];
  session.recorded = events;
  for (const type of ["sessionStarted", "reconnecting", "reconnected", "transcript", "agentText", "agentAudio",
    "interruption", "truncated", "truncateAcknowledged", "turnMetrics", "error", "closed"]) {
    session.on(type, (event) => events.push({ type, ...event, samples: undefined }));
  }
  return events;
}

export function wav(name) {
  return readWav(env(name));
}

/** Speaks `samples` in real time, 20 ms at a time (a microphone), then `silenceMs` of silence. */
export async function speak(session, { samples, sampleRate }, silenceMs = 1500, stop = () => false) {
  const step = (sampleRate * 20) / 1000;
  const all = new Int16Array(samples.length + (sampleRate * silenceMs) / 1000);
  all.set(samples);
  const started = performance.now();
  for (let offset = 0, index = 0; offset < all.length && !stop(); offset += step, index++) {
    if (session.state === "open") session.sendAudio(all.subarray(offset, offset + step), sampleRate);
    await sleep(Math.max(0, started + (index + 1) * 20 - performance.now()));
  }
}

/** Silence in real time until `stop()` (a microphone left open). */
export async function silence(session, stop, sampleRate = 16_000) {
  const frame = new Int16Array((sampleRate * 20) / 1000);
  while (!stop()) {
    if (session.state === "open") session.sendAudio(frame, sampleRate);
    await sleep(20);
  }
}

/** The main gateway's conversation records (its HTTP port: the Realtime URL's host). */
export function records() {
  const { host } = new URL(env("VOICE_REALTIME_URL"));
  return new ConversationsClient({ baseUrl: `http://${host}`, token: env("VOICE_API_KEY") });
}

/** `probe()`'s first truthy value, tried every 200 ms for `timeoutMs`. */
export async function eventually(probe, timeoutMs = 10_000) {
  const deadline = performance.now() + timeoutMs;
  let last;
  while (performance.now() < deadline) {
    last = await probe();
    if (last) return last;
    await sleep(200);
  }
  throw new Error(`not within ${timeoutMs} ms`);
}

// The SDK's pure logic, no server: framing, resampling, base64, the back-off, the playout clock, the emitter.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ClockPlayer, DEFAULT_RECONNECT, Emitter, Framer, Resampler, VoiceError, fromBase64, retryDelayMs, toBase64, toInt16 } from "../src/realtime-entry.js";

test("the framer hands out exact 20 ms frames and keeps the rest for the next call", () => {
  const frames = [];
  const framer = new Framer(16_000);
  framer.push(new Int16Array(500).fill(1), (frame) => frames.push(frame));
  assert.deepEqual(frames.map((f) => f.length), [320]);
  framer.push(new Int16Array(200).fill(2), (frame) => frames.push(frame));
  assert.deepEqual(frames.map((f) => f.length), [320, 320]);
  assert.equal(frames[1][179], 1);
  assert.equal(frames[1][180], 2);
  framer.flush((frame) => frames.push(frame));
  assert.equal(frames[2].length, 320);
  assert.equal(frames[2][59], 2);
  assert.equal(frames[2][60], 0); // padded with silence
});

test("the resampler keeps its phase across chunks: 16 kHz to 24 kHz is 1.5 times the samples", () => {
  const resampler = new Resampler(16_000, 24_000);
  let total = 0;
  const ramp = Int16Array.from({ length: 1600 }, (_, i) => i);
  for (let i = 0; i < 1600; i += 160) total += resampler.process(ramp.subarray(i, i + 160)).length;
  assert.ok(Math.abs(total - 2400) <= 2, String(total));
  const again = new Resampler(16_000, 24_000).process(ramp);
  for (let i = 1; i < again.length; i++) assert.ok(again[i] >= again[i - 1]); // a ramp stays a ramp: no clicks
});

test("PCM16 and base64 round-trip without Buffer (React Native has none)", () => {
  const samples = Int16Array.from([0, 1, -1, 32767, -32768, 1234]);
  const bytes = new Uint8Array(samples.buffer);
  const saved = globalThis.Buffer;
  try {
    globalThis.Buffer = undefined;
    const text = toBase64(bytes);
    assert.equal(text, saved.from(bytes).toString("base64"));
    assert.deepEqual(toInt16(fromBase64(text)), samples);
    assert.deepEqual(toInt16(fromBase64(toBase64(bytes.subarray(0, 5)))).length, 2);
  } finally {
    globalThis.Buffer = saved;
  }
});

test("the back-off: retry hints honoured, a drain at once, final codes never, jittered and capped", () => {
  const policy = DEFAULT_RECONNECT;
  const refusal = new VoiceError("RESOURCE_EXHAUSTED", "limit", { retryAfterMs: 700 });
  assert.equal(retryDelayMs(refusal, 0, policy, () => 0.5), 700);
  assert.equal(retryDelayMs(new VoiceError("UNAVAILABLE", "drain", { retryAfterMs: 0 }), 3, policy), 0);
  for (const code of ["UNAUTHENTICATED", "INVALID_ARGUMENT", "PERMISSION_DENIED"]) {
    assert.equal(retryDelayMs(new VoiceError(code, "no"), 0, policy), null);
  }
  const lost = new VoiceError("UNAVAILABLE", "lost", { transportLost: true });
  assert.equal(retryDelayMs(lost, 0, policy, () => 0), policy.baseDelayMs / 2);
  assert.equal(retryDelayMs(lost, 0, policy, () => 1), policy.baseDelayMs);
  assert.equal(retryDelayMs(lost, 30, policy, () => 1), null); // past maxAttempts
  assert.equal(retryDelayMs(lost, policy.maxAttempts - 1, policy, () => 1), Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (policy.maxAttempts - 1)));
});

test("the clock player plays in real time and a flush says how much of the turn was heard", async () => {
  const player = new ClockPlayer();
  const second = new Int16Array(24_000);
  player.enqueue(7, second, 24_000);
  player.enqueue(7, second, 24_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(player.playing, true);
  const { turnId, playedMs } = player.flush();
  assert.equal(turnId, 7);
  assert.ok(playedMs >= 250 && playedMs < 1000, String(playedMs));
  assert.equal(player.playing, false);
});

test("the emitter's async iterator yields every event until closed", async () => {
  const emitter = new Emitter();
  const seen = [];
  const reading = (async () => {
    for await (const event of emitter) seen.push(event.type);
  })();
  emitter.emit("transcript", { text: "hi" });
  emitter.emit("closed", { error: null });
  await reading;
  assert.deepEqual(seen, ["transcript", "closed"]);
});

// The Realtime transport as a React Native app runs it, against the real gateway: the WebSocket class is
// injected (React Native's own has the browser's API; here `ws` wrapped to look like it, with string frames
// only), and neither Buffer nor any Node module is reachable from the SDK's code on that path.

import assert from "node:assert/strict";
import { test } from "node:test";

import WebSocket from "ws";

import { createRealtimeSession } from "../src/realtime-entry.js";
import { env, next } from "./helpers.mjs";

const NodeBuffer = globalThis.Buffer;

/** Runs SDK code as React Native would: no Buffer in sight (`ws`, standing in for the platform, keeps it). */
function withoutBuffer(run) {
  const saved = globalThis.Buffer;
  globalThis.Buffer = undefined;
  try {
    return run();
  } finally {
    globalThis.Buffer = saved;
  }
}

function withBuffer(run) {
  const saved = globalThis.Buffer;
  globalThis.Buffer = NodeBuffer;
  try {
    return run();
  } finally {
    globalThis.Buffer = saved;
  }
}

/** React Native's WebSocket: new WebSocket(url, protocols); on* handlers; text frames as strings. */
class ReactNativeWebSocket {
  static instances = 0;
  constructor(url, protocols) {
    ReactNativeWebSocket.instances += 1;
    this.inner = new WebSocket(url, protocols);
    this.inner.on("open", () => withoutBuffer(() => this.onopen?.({})));
    this.inner.on("message", (data, binary) => {
      const event = { data: binary ? data : data.toString() };
      withoutBuffer(() => this.onmessage?.(event));
    });
    this.inner.on("error", (error) => withoutBuffer(() => this.onerror?.({ message: error.message })));
    this.inner.on("close", (code, reason) => {
      const event = { code, reason: reason.toString() };
      withoutBuffer(() => this.onclose?.(event));
    });
  }
  get readyState() {
    return this.inner.readyState;
  }
  send(text) {
    assert.equal(typeof text, "string");
    withBuffer(() => this.inner.send(text));
  }
  close(code, reason) {
    withBuffer(() => this.inner.close(code, reason));
  }
}

test("a typed turn through an injected React Native-style WebSocket, without Buffer", async () => {
  const session = createRealtimeSession({ url: env("VOICE_REALTIME_URL"), token: env("VOICE_API_KEY"), WebSocket: ReactNativeWebSocket });
  const started = await withoutBuffer(() => session.connect());
  const audio = [];
  session.on("agentAudio", (event) => audio.push(event.samples.length));
  // 200 ms of silence: framed and base64-encoded without Buffer.
  withoutBuffer(() => session.sendAudio(new Int16Array(4800), 24_000));
  withoutBuffer(() => session.sendText("Say hello."));
  const metrics = await next(session, "turnMetrics");
  await session.close();
  assert.match(started.conversationId, /^conv_/);
  assert.ok(audio.length > 0 && metrics.audioMs > 0, JSON.stringify(metrics));
  assert.equal(ReactNativeWebSocket.instances, 1);
  assert.equal(session.state, "closed");
});

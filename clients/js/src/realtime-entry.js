// Browsers' and React Native's entry: the Realtime WebSocket transport and everything it shares.

import { RealtimeTransport } from "./realtime.js";
import { VoiceSession } from "./session.js";

export { ClockPlayer, Framer, PlayoutClock, Resampler, FRAME_MS, fromBase64, toBase64, toInt16 } from "./audio.js";
export { ConversationsClient } from "./conversations.js";
export { Emitter } from "./emitter.js";
export { DEFAULT_RECONNECT, VoiceError, retryDelayMs } from "./errors.js";
export { REALTIME_RATE, RealtimeTransport } from "./realtime.js";
export { VoiceSession } from "./session.js";

/** A session over the Realtime WebSocket: `url` ws(s)://host:port/v1/realtime, `token`, `WebSocket` class. */
export function createRealtimeSession(options) {
  return new VoiceSession(new RealtimeTransport(options), options);
}

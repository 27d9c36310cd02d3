// Node's entry: both transports. Browsers and React Native import "@voice-agent/client/realtime", which
// leaves gRPC (and Node's http2) out.

import { GrpcTransport } from "./grpc.js";
import { RealtimeTransport } from "./realtime.js";
import { VoiceSession } from "./session.js";

export * from "./realtime-entry.js";
export { GrpcTransport } from "./grpc.js";

/**
 * A session over gRPC (`address`: host:port) or the Realtime WebSocket (`url`: ws(s)://host:port/v1/realtime).
 * Call connect() on it.
 */
export function createSession(options) {
  const transport = options.transport === "realtime" || (options.url && options.transport !== "grpc")
    ? new RealtimeTransport(options)
    : new GrpcTransport(options);
  return new VoiceSession(transport, options);
}

// gRPC Converse (protos/voice_agent/v1/gateway.proto) through @grpc/grpc-js: Node servers only (it needs
// Node's http2). The protos are read at run time by @grpc/proto-loader.

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

import { int16ToBytes, toInt16 } from "./audio.js";
import { VoiceError } from "./errors.js";

const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([name, code]) => [code, name]));
const END_TURN_SILENCE_MS = 1000; // enough for the gateway's end-of-turn silence (its --min-silence-ms)

/** The protos: the package's copy (made by `make clients`), else the repository's. */
function protoRoot() {
  for (const relative of ["../protos", "../../../protos"]) {
    const path = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${path}/voice_agent/v1/gateway.proto`)) return path;
  }
  throw new Error("voice_agent/v1/gateway.proto not found: run `make clients`, or set protoDir");
}

let loaded = null;

function gatewayService(protoDir) {
  if (!loaded || loaded.dir !== protoDir) {
    const definition = protoLoader.loadSync("voice_agent/v1/gateway.proto", {
      includeDirs: [protoDir],
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: false,
      oneofs: true,
    });
    loaded = { dir: protoDir, Gateway: grpc.loadPackageDefinition(definition).voice_agent.v1.Gateway };
  }
  return loaded.Gateway;
}

export class GrpcTransport {
  /**
   * @param {object} options
   * @param {string} options.address host:port of the gateway's gRPC port
   * @param {string} [options.token] bearer token: an API key or a JWT
   * @param {boolean|{rootCerts?: Buffer}} [options.tls] TLS (true: the system's roots); default plaintext
   * @param {number} [options.inputSampleRate] the rate audio is sent at (sendAudio resamples to it); 16000
   * @param {object} [options.config] SessionConfig fields (snake_case, as in gateway.proto)
   */
  constructor(options) {
    if (!options?.address) throw new TypeError("GrpcTransport needs an address (host:port)");
    this.options = options;
    this.inputSampleRate = options.inputSampleRate ?? 16_000;
    const Gateway = gatewayService(options.protoDir ?? protoRoot());
    const tls = options.tls;
    const credentials = tls
      ? grpc.credentials.createSsl(typeof tls === "object" ? (tls.rootCerts ?? null) : null)
      : grpc.credentials.createInsecure();
    this.client = new Gateway(options.address, credentials, {
      // A connection that died silently (a phone's network gone) is noticed within seconds.
      "grpc.keepalive_time_ms": 10_000,
      "grpc.keepalive_timeout_ms": 5_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.initial_reconnect_backoff_ms": 100, // the session's own back-off paces the retries
      "grpc.max_reconnect_backoff_ms": 1000,
    });
  }

  open({ resumeConversationId }, sink) {
    return new GrpcConnection(this, resumeConversationId, sink);
  }

  close() {
    this.client.close();
  }
}

class GrpcConnection {
  constructor(transport, resumeConversationId, sink) {
    this.transport = transport;
    this.sink = sink;
    this.gatewayError = null; // the ErrorEvent that explains how the stream ended (grpc/grpc#36066)
    this.closing = false;
    const metadata = new grpc.Metadata();
    if (transport.options.token) metadata.set("authorization", `Bearer ${transport.options.token}`);
    this.call = transport.client.Converse(metadata);
    this.started = false;
    // SessionStarted starts the session (response headers do not: a refusal has them too); a gateway older
    // than SessionStarted, with its first event.
    this.call.on("data", (response) => this.#onResponse(response));
    this.call.on("error", () => {}); // the status below says it all
    this.call.on("status", (status) => this.#onStatus(status));
    const config = {
      ...(transport.options.config ?? {}),
      input_audio: { encoding: "AUDIO_ENCODING_PCM16LE", sample_rate_hz: transport.inputSampleRate },
    };
    if (resumeConversationId) config.resume_conversation_id = resumeConversationId;
    this.#write({ config });
  }

  #write(request) {
    if (this.closing || this.call.writableEnded || this.call.destroyed) return;
    try {
      this.call.write(request);
    } catch {
      // the stream already failed: its status arrives through 'status'
    }
  }

  sendAudio(frame) {
    this.#write({ audio: Buffer.from(int16ToBytes(frame)) });
  }

  sendText(text) {
    this.#write({ text });
  }

  /** Converse has no commit: the gateway's VAD ends a turn on silence, so silence is what ends it. */
  endTurn() {
    const rate = this.transport.inputSampleRate;
    const frame = Buffer.alloc(((rate * 20) / 1000) * 2);
    for (let ms = 0; ms < END_TURN_SILENCE_MS; ms += 20) this.#write({ audio: frame });
  }

  truncate({ turnId }, audioEndMs) {
    this.#write({ truncate: { turn_id: turnId, audio_end_ms: Math.max(0, Math.round(audioEndMs)) } });
  }

  close() {
    if (this.closing) return;
    this.#write({ end: {} });
    this.closing = true;
    this.call.end();
    // A gateway that does not answer the half-close within a second is not waited for.
    setTimeout(() => this.call.cancel(), 1000).unref?.();
  }

  #start(fields) {
    if (this.started) {
      if (fields.conversationId) this.sink.event({ type: "conversation", ...fields });
      return;
    }
    this.started = true;
    this.sink.event({ type: "started", ...fields });
  }

  #onResponse(response) {
    const event = response.event;
    if (event !== "session_started" && event !== "error") this.#start({});
    const body = response[event];
    const emit = (fields) => this.sink.event(fields);
    switch (event) {
      case "session_started":
        return this.#start({
          conversationId: body.conversation_id,
          resumed: Boolean(body.resumed),
          resumeWindowS: body.resume_window_s ?? null,
          lastTurnId: body.last_turn_id ?? 0,
        });
      case "speech_started":
        return emit({ type: "speechStarted", offsetMs: body.offset_ms ?? 0 });
      case "speech_ended":
        return emit({ type: "speechEnded", offsetMs: body.offset_ms ?? 0 });
      case "interim_transcript":
      case "final_transcript":
        return emit({ type: "transcript", text: body.text ?? "", final: event === "final_transcript" });
      case "agent_text":
        return emit({ type: "agentText", turnId: body.turn_id, delta: body.delta ?? "" });
      case "agent_audio":
        return emit({
          type: "agentAudio",
          turnId: body.turn_id,
          samples: toInt16(body.audio ?? new Uint8Array()),
          sampleRate: body.sample_rate_hz,
        });
      case "interruption":
        return emit({ type: "interruption", turnId: body.turn_id, heardText: body.heard_text ?? "" });
      case "interruption_decision":
        return emit({
          type: "interruptionDecision",
          turnId: body.turn_id,
          kind: body.kind,
          decisionMs: body.decision_ms ?? 0,
          text: body.text ?? "",
        });
      case "turn_metrics":
        return emit({ type: "turnMetrics", ...metrics(body) });
      case "error": {
        const error = new VoiceError(body.code || "UNKNOWN", body.message ?? "", {
          retryAfterMs: body.retry_after_ms ?? null,
          backend: body.backend || "gateway",
          turnId: body.turn_id ?? null,
        });
        if (error.backend === "gateway") this.gatewayError = error;
        return emit({ type: "error", error });
      }
    }
  }

  #onStatus(status) {
    this.sink.ended(endError(status, this.gatewayError, this.closing));
  }
}

/**
 * Why a Converse stream ended (null: normally). The gateway's ErrorEvent, when one came, names the cause:
 * a stream that ends while the client is still writing may report grpc's made-up INTERNAL instead of the
 * gateway's status (grpc/grpc#36066). Else the status, with its retry-after-ms trailer; UNAVAILABLE with no
 * hint is a lost connection.
 */
export function endError(status, gatewayError, closing) {
  if (status.code === grpc.status.OK || (closing && status.code === grpc.status.CANCELLED)) return null;
  if (gatewayError) return gatewayError;
  const code = STATUS_NAMES[status.code] ?? "UNKNOWN";
  const hint = status.metadata?.get("retry-after-ms")?.[0];
  const retryAfterMs = hint !== undefined && /^\d+$/.test(String(hint)) ? Number(hint) : null;
  return new VoiceError(code, status.details || code, {
    retryAfterMs,
    transportLost: code === "UNAVAILABLE" && retryAfterMs === null,
  });
}

function metrics(body) {
  return {
    turnId: body.turn_id,
    vadWaitMs: body.vad_wait_ms ?? 0,
    asrMs: body.asr_ms ?? 0,
    llmTtftMs: body.llm_ttft_ms ?? 0,
    ttsTtfaMs: body.tts_ttfa_ms ?? 0,
    gatewayFirstAudioMs: body.gateway_first_audio_ms ?? 0,
    llmTokens: body.llm_tokens ?? 0,
    interrupted: Boolean(body.interrupted),
    preemptive: Boolean(body.preemptive),
  };
}

// The gateway's OpenAI Realtime-compatible WebSocket (GET /v1/realtime): browsers, React Native and Node.
// Any WebSocket class with the browser's API works (globalThis.WebSocket, or `ws` in Node 20).

import { fromBase64, int16ToBytes, toBase64, toInt16 } from "./audio.js";
import { VoiceError } from "./errors.js";

export const REALTIME_RATE = 24_000; // the API's PCM16 rate, both ways
const KEY_PROTOCOL_PREFIX = "openai-insecure-api-key.";
const GRPC_CODES = /^[A-Z_]+$/;

/** A Realtime error object as a VoiceError: its gRPC code when the gateway gave one, else by its type. */
function toVoiceError(error = {}) {
  const code = GRPC_CODES.test(error.code ?? "")
    ? error.code
    : error.type === "invalid_request_error"
      ? "INVALID_ARGUMENT"
      : error.code === "invalid_api_key"
        ? "UNAUTHENTICATED"
        : "INTERNAL";
  // A backend's failure of one turn reads "llm: ..." (gateway/realtime/server_events.py): the session goes on.
  const backend = /^(asr|llm|tts): /.exec(error.message ?? "")?.[1] ?? "gateway";
  const voiceError = new VoiceError(code, error.message ?? "", { retryAfterMs: error.retry_after_ms ?? null, backend });
  voiceError.type = error.type ?? null;
  voiceError.param = error.param ?? null;
  return voiceError;
}

/** Why a socket closed, from its close code, when no error event said so first (server.py's close codes). */
function fromClose(code, reason, handshakeStatus) {
  if (handshakeStatus === 401 || code === 1008) return new VoiceError("UNAUTHENTICATED", reason || "the key was refused");
  if (handshakeStatus === 403) return new VoiceError("PERMISSION_DENIED", reason || "forbidden");
  if (handshakeStatus === 404) return new VoiceError("NOT_FOUND", reason || "no such conversation to resume");
  if (code === 1001) return new VoiceError("UNAVAILABLE", reason || "the gateway is shutting down", { retryAfterMs: 0 });
  if (code === 1013) return new VoiceError("UNAVAILABLE", reason || "try again later");
  if (code === 1009) return new VoiceError("INVALID_ARGUMENT", reason || "a frame over the gateway's limit");
  if (code === 1011) return new VoiceError("INTERNAL", reason || "the gateway failed");
  return new VoiceError("UNAVAILABLE", reason || `the connection was lost (${code})`, { transportLost: true });
}

export class RealtimeTransport {
  /**
   * @param {object} options
   * @param {string} options.url ws(s)://host:port/v1/realtime
   * @param {string} [options.token] an API key or JWT, sent as the subprotocol browsers can send
   * @param {Function} [options.WebSocket] the WebSocket class; default globalThis.WebSocket
   * @param {object} [options.session] extra `session.update` fields (instructions, audio.output.voice, ...)
   * @param {boolean} [options.serverVad] the gateway ends turns on silence (default true); false: push-to-talk
   * @param {Function} [options.onServerEvent] sees every server event as it came (logs, debugging)
   */
  constructor(options) {
    if (!options?.url) throw new TypeError("RealtimeTransport needs a url (ws://host:port/v1/realtime)");
    this.options = options;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new TypeError("no WebSocket class: pass options.WebSocket (Node 20: `ws`)");
    this.inputSampleRate = REALTIME_RATE;
  }

  open({ resumeConversationId }, sink) {
    return new RealtimeConnection(this, resumeConversationId, sink);
  }

  close() {}
}

class RealtimeConnection {
  constructor(transport, resumeConversationId, sink) {
    this.transport = transport;
    this.sink = sink;
    this.closing = false;
    this.lastError = null; // the error event just before a close: why the gateway ended the session
    this.handshakeStatus = null;
    this.itemOf = new Map(); // response id -> its audio item id (conversation.item.truncate names the item)
    const { url, token } = transport.options;
    const protocols = token ? ["realtime", KEY_PROTOCOL_PREFIX + token] : ["realtime"];
    const target = new URL(url);
    this.resumeConversationId = resumeConversationId;
    // GET /v1/realtime?resume=ID: the gateway resumes the caller's dropped conversation (docs/conversations.md).
    if (resumeConversationId) target.searchParams.set("resume", resumeConversationId);
    this.socket = new transport.WebSocket(target.toString(), protocols);
    this.socket.onopen = () => this.#configure(resumeConversationId);
    this.socket.onmessage = (message) => this.#onMessage(message.data);
    this.socket.onerror = (error) => {
      // `ws` says why a handshake failed in its message ("Unexpected server response: 401"); browsers do not.
      const match = /server response: (\d{3})/.exec(error?.message ?? "");
      if (match) this.handshakeStatus = Number(match[1]);
    };
    this.socket.onclose = (event) => this.#onClose(event.code, event.reason);
  }

  #send(event) {
    if (this.socket.readyState === 1) this.socket.send(JSON.stringify(event));
  }

  #configure(resumeConversationId) {
    const { session = {}, serverVad = true } = this.transport.options;
    if (resumeConversationId) return; // a resumed conversation keeps the settings it had
    const format = { type: "audio/pcm", rate: REALTIME_RATE };
    const audio = session.audio ?? {};
    this.#send({
      type: "session.update",
      session: {
        type: "realtime",
        ...session,
        audio: {
          ...audio,
          input: { format, turn_detection: serverVad ? { type: "server_vad" } : null, ...(audio.input ?? {}) },
          output: { format, ...(audio.output ?? {}) },
        },
      },
    });
  }

  sendAudio(frame) {
    this.#send({ type: "input_audio_buffer.append", audio: toBase64(int16ToBytes(frame)) });
  }

  sendText(text) {
    this.#send({
      type: "conversation.item.create",
      item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
    });
    this.#send({ type: "response.create" }); // the Realtime API answers an item only when asked to
  }

  endTurn() {
    this.#send({ type: "input_audio_buffer.commit" });
    if (this.transport.options.serverVad === false) this.#send({ type: "response.create" });
  }

  truncate({ turnId, itemId }, audioEndMs) {
    const item = itemId ?? this.itemOf.get(turnId);
    if (!item) return;
    this.#send({ type: "conversation.item.truncate", item_id: item, content_index: 0, audio_end_ms: Math.round(audioEndMs) });
  }

  close() {
    this.closing = true;
    if (this.socket.readyState <= 1) this.socket.close(1000, "the client closed the session");
  }

  #onClose(code, reason) {
    if (this.closing) return this.sink.ended(null);
    if (code === 1000 && !this.lastError) return this.sink.ended(null);
    this.sink.ended(this.lastError ?? fromClose(code, reason, this.handshakeStatus));
  }

  #onMessage(data) {
    let event;
    try {
      event = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return; // not an event: ignored, as the API's clients do
    }
    this.transport.options.onServerEvent?.(event); // every server event as it came: for logs and debugging
    if (event.type !== "error") this.lastError = null;
    const emit = (fields) => this.sink.event(fields);
    switch (event.type) {
      case "session.created": {
        const session = event.session ?? {};
        const conversationId = session.id ?? null; // the gateway's session id is its conversation's id
        const resumed = Boolean(this.resumeConversationId) && conversationId === this.resumeConversationId;
        return emit({ type: "started", conversationId, resumed });
      }
      case "input_audio_buffer.speech_started":
        emit({ type: "bargeIn" });
        return emit({ type: "speechStarted", offsetMs: event.audio_start_ms ?? 0, itemId: event.item_id });
      case "input_audio_buffer.speech_stopped":
        return emit({ type: "speechEnded", offsetMs: event.audio_end_ms, itemId: event.item_id });
      case "conversation.item.input_audio_transcription.delta":
        return emit({ type: "transcript", text: event.delta ?? "", final: false, delta: true, itemId: event.item_id });
      case "conversation.item.input_audio_transcription.completed":
        return emit({ type: "transcript", text: event.transcript ?? "", final: true, itemId: event.item_id });
      case "response.created":
        return emit({ type: "turnStarted", turnId: event.response.id });
      case "response.output_item.added":
        if (event.item?.id) this.itemOf.set(event.response_id, event.item.id);
        return;
      case "response.output_audio_transcript.delta":
        return emit({ type: "agentText", turnId: event.response_id, delta: event.delta ?? "" });
      case "response.output_audio.delta":
        this.itemOf.set(event.response_id, event.item_id);
        return emit({
          type: "agentAudio",
          turnId: event.response_id,
          itemId: event.item_id,
          samples: toInt16(fromBase64(event.delta)),
          sampleRate: REALTIME_RATE,
        });
      case "response.done":
        return emit({ type: "turnMetrics", ...metrics(event.response ?? {}) });
      case "conversation.item.truncated":
        return emit({ type: "truncateAcknowledged", itemId: event.item_id, audioEndMs: event.audio_end_ms });
      case "error": {
        const error = toVoiceError(event.error);
        this.lastError = error;
        return emit({ type: "error", error });
      }
    }
  }
}

function metrics(response) {
  const metadata = response.metadata ?? {};
  const number = (key) => (metadata[key] === undefined ? 0 : Number(metadata[key]));
  return {
    turnId: response.id,
    status: response.status ?? "completed",
    vadWaitMs: number("vad_wait_ms"),
    asrMs: number("asr_ms"),
    llmTtftMs: number("llm_ttft_ms"),
    ttsTtfaMs: number("tts_ttfa_ms"),
    gatewayFirstAudioMs: number("gateway_first_audio_ms"),
    llmTokens: number("llm_tokens"),
    interrupted: response.status === "cancelled",
    preemptive: metadata.preemptive === "true",
    serverE2eMs: metadata.e2e_ms === undefined ? null : Number(metadata.e2e_ms),
    metadata,
  };
}

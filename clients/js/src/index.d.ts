// Types of @voice-agent/client (the JavaScript in src/ is the implementation; these are its contract).

export type StatusCode =
  | "OK" | "CANCELLED" | "UNKNOWN" | "INVALID_ARGUMENT" | "DEADLINE_EXCEEDED" | "NOT_FOUND" | "ALREADY_EXISTS"
  | "PERMISSION_DENIED" | "RESOURCE_EXHAUSTED" | "FAILED_PRECONDITION" | "ABORTED" | "OUT_OF_RANGE"
  | "UNIMPLEMENTED" | "INTERNAL" | "UNAVAILABLE" | "DATA_LOSS" | "UNAUTHENTICATED";

/** An error as the server stated it: its gRPC code name, message and retry hint. */
export declare class VoiceError extends Error {
  constructor(code: StatusCode | string, message: string, details?: {
    retryAfterMs?: number | null; backend?: string; turnId?: number | string | null; transportLost?: boolean;
  });
  readonly code: StatusCode | string;
  /** When to try again (ms): set on a refusal past a limit, 0 on a drain; null: no hint. */
  readonly retryAfterMs: number | null;
  /** "gateway", or the backend whose failure cost one turn: "asr", "llm", "tts". */
  readonly backend: string;
  readonly turnId: number | string | null;
  /** The connection went away without the server saying why. */
  readonly transportLost: boolean;
  /** Whether a new connection may succeed (false for UNAUTHENTICATED, INVALID_ARGUMENT, ...). */
  readonly retryable: boolean;
  /** Realtime only: the error object's type (invalid_request_error, server_error, ...). */
  type?: string | null;
}

export interface ReconnectPolicy {
  /** Attempts in a row before giving up (10). */
  maxAttempts: number;
  /** The first back-off, doubled each attempt, jittered (250 ms). */
  baseDelayMs: number;
  /** The back-off's cap (8000 ms). */
  maxDelayMs: number;
}
export declare const DEFAULT_RECONNECT: Readonly<ReconnectPolicy>;
export declare function retryDelayMs(error: VoiceError, attempt: number, policy: ReconnectPolicy, random?: () => number): number | null;

/** Where the agent's audio is played. The SDK flushes it on an interruption and reports what was heard. */
export interface Player {
  /** Queues a chunk after the ones before; returns when it starts playing (performance.now() ms). */
  enqueue(turnId: TurnId, samples: Int16Array, sampleRate: number): number;
  /** Whether audio is playing now. */
  readonly playing: boolean;
  /** Stops at once; returns the turn that was playing and how much of it was heard. */
  flush(): { turnId: TurnId | null; playedMs: number };
  close?(): void;
}

/** Plays in real time without a speaker (Node's default): truncation and e2e mean what they do on a device. */
export declare class ClockPlayer implements Player {
  enqueue(turnId: TurnId, samples: Int16Array, sampleRate: number): number;
  readonly playing: boolean;
  flush(): { turnId: TurnId | null; playedMs: number };
  /** Resolves when what is queued has played. */
  drained(): Promise<void>;
  close(): void;
}

/** gRPC turn ids are numbers; Realtime's are response ids ("resp_..."). */
export type TurnId = number | string;
export type Pcm16 = Int16Array | Uint8Array | ArrayBuffer;

export interface SessionOptions {
  /** Realtime: ws(s)://host:port/v1/realtime. */
  url?: string;
  /** gRPC: host:port. */
  address?: string;
  /** createSession: which transport; default grpc with an address, realtime with a url. */
  transport?: "grpc" | "realtime";
  /** A bearer token: an API key or a JWT. */
  token?: string;
  /** gRPC: TLS (true: the system's roots); default plaintext. Realtime: use a wss:// url. */
  tls?: boolean | { rootCerts?: Uint8Array };
  /** Realtime: the WebSocket class (browsers and React Native: the global one; Node 20: `ws`). */
  WebSocket?: unknown;
  /** gRPC: the SessionConfig (snake_case fields of gateway.proto), input_audio aside. */
  config?: Record<string, unknown>;
  /** gRPC: the rate audio is sent at (16000); sendAudio resamples to it. Realtime: always 24000. */
  inputSampleRate?: number;
  /** Realtime: extra session.update fields (instructions, audio.output.voice, ...). */
  session?: Record<string, unknown>;
  /** Realtime: every server event as it came (logs, debugging). */
  onServerEvent?: (event: { type: string; [field: string]: unknown }) => void;
  /** Realtime: the gateway ends turns on silence (true); false: push-to-talk, endTurn() asks for the reply. */
  serverVad?: boolean;
  /** The playout; default a ClockPlayer. Browsers: the WebAudioPlayer of "@voice-agent/client/browser". */
  player?: Player;
  reconnect?: Partial<ReconnectPolicy>;
  /** Reconnections resume the same conversation by its id (true). */
  resume?: boolean;
  /** Resume this conversation on the first connection. */
  resumeConversationId?: string;
  /** Audio captured before the first connection opened, kept and sent once it is (10000 ms); later, audio
   *  sent while reconnecting is dropped. */
  maxBufferedMs?: number;
}

export interface SessionStartedEvent {
  conversationId: string | null;
  /** This connection resumed the conversation of an earlier one (its history kept). */
  resumed: boolean;
  resumeWindowS?: number | null;
  /** gRPC: the last turn id used so far (0: none). */
  lastTurnId?: number | null;
}
export interface TranscriptEvent { text: string; final: boolean; itemId?: string }
export interface AgentTextEvent { turnId: TurnId; delta: string }
export interface AgentAudioEvent { turnId: TurnId; itemId?: string; samples: Int16Array; sampleRate: number }
export interface InterruptionEvent { turnId: TurnId; heardText: string }
export interface TruncatedEvent { turnId: TurnId; itemId: string | null; audioEndMs: number; audioMs: number }
export interface TurnMetricsEvent {
  turnId: TurnId;
  vadWaitMs: number; asrMs: number; llmTtftMs: number; ttsTtfaMs: number; gatewayFirstAudioMs: number;
  llmTokens: number; interrupted: boolean; preemptive: boolean;
  /** Realtime: "completed", "cancelled" or "failed". */
  status?: string;
  /** Realtime: the gateway's own e2e. */
  serverE2eMs?: number | null;
  /** The client's e2e: the last audio sent before the end of speech (or the typed text) to the first reply audio played. */
  clientE2eMs: number | null;
  /** Reply audio received. */
  audioMs: number;
  /** Reply audio played before an interruption flushed it (null: not interrupted). */
  truncatedMs: number | null;
}
export interface ReconnectingEvent { attempt: number; delayMs: number; error: VoiceError }

export interface SessionEvents {
  sessionStarted: SessionStartedEvent;
  reconnecting: ReconnectingEvent;
  reconnected: SessionStartedEvent;
  speechStarted: { offsetMs: number; itemId?: string };
  speechEnded: { offsetMs: number };
  transcript: TranscriptEvent;
  turnStarted: { turnId: TurnId };
  agentText: AgentTextEvent;
  agentAudio: AgentAudioEvent;
  interruption: InterruptionEvent;
  interruptionDecision: { turnId: TurnId; kind: string; decisionMs: number; text: string };
  truncated: TruncatedEvent;
  truncateAcknowledged: { itemId: string; audioEndMs: number };
  turnMetrics: TurnMetricsEvent;
  error: { error: VoiceError };
  closed: { error: VoiceError | null };
}

export type AnySessionEvent = { [K in keyof SessionEvents]: { type: K } & SessionEvents[K] }[keyof SessionEvents];

export declare class Emitter<Events = SessionEvents, Any = AnySessionEvent> {
  on<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): this;
  off<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): this;
  once<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): this;
  emit<K extends keyof Events>(type: K, event: Events[K]): void;
  /** Every event as {type, ...fields}, until "closed". */
  [Symbol.asyncIterator](): AsyncIterator<Any>;
}

export interface Transport { readonly inputSampleRate: number }
export declare class RealtimeTransport implements Transport {
  constructor(options: SessionOptions & { url: string });
  readonly inputSampleRate: number;
}
export declare class GrpcTransport implements Transport {
  constructor(options: SessionOptions & { address: string; protoDir?: string });
  readonly inputSampleRate: number;
  close(): void;
}

export declare class VoiceSession extends Emitter {
  constructor(transport: Transport, options?: SessionOptions);
  readonly transport: Transport;
  readonly player: Player;
  /** The conversation's id (SessionStarted), to resume it by. */
  readonly conversationId: string | null;
  readonly state: "idle" | "connecting" | "open" | "reconnecting" | "closed";
  readonly turns: Map<TurnId, { turnId: TurnId; itemId: string | null; audioMs: number; clientE2eMs: number | null; truncatedMs: number | null }>;
  /** Opens the conversation, retrying refusals and lost connections; resolves once the gateway started it. */
  connect(): Promise<SessionStartedEvent>;
  /** PCM16 mono at sampleRate: resampled to the transport's rate and sent in 20 ms frames. */
  sendAudio(pcm16: Pcm16, sampleRate: number): void;
  sendText(text: string): void;
  /** Stops the reply on the app's account (audio focus lost): flushed, and the truncation reported. */
  stopPlayout(): void;
  /** Push-to-talk: the user's turn ends now. */
  endTurn(): void;
  close(): Promise<void>;
}

export declare const REALTIME_RATE: 24000;
export declare const FRAME_MS: 20;
export declare function createSession(options: SessionOptions): VoiceSession;
export declare function createRealtimeSession(options: SessionOptions & { url: string }): VoiceSession;
export declare function toInt16(pcm: Pcm16): Int16Array;
export declare function toBase64(bytes: Uint8Array): string;
export declare function fromBase64(text: string): Uint8Array;

/** A conversation's record, as GET /v1/conversations/{id} returns it (docs/conversations.md). */
export interface ConversationRecord {
  conversation_id: string;
  caller: string;
  persona: string;
  settings: Record<string, unknown>;
  started_at_ms: number;
  ended_at_ms: number;
  status: string;
  summary: string;
  has_recording: boolean;
  items?: Array<{
    role: string; text: string; start_ms: number; end_ms: number; turn_id: number;
    interrupted: boolean; heard_text: string; metrics: Record<string, unknown>; undelivered: boolean;
  }>;
}

/** The gateway's conversation records over HTTP: a caller sees their own. */
export declare class ConversationsClient {
  constructor(options: { baseUrl: string; token?: string; fetch?: typeof fetch });
  list(options?: { pageSize?: number; pageToken?: string }): Promise<{ conversations: ConversationRecord[]; next_page_token: string }>;
  get(conversationId: string): Promise<ConversationRecord>;
  /** The stereo recording (user left, agent right) as WAV bytes. */
  recording(conversationId: string): Promise<ArrayBuffer>;
  delete(conversationId: string): Promise<void>;
}

// One conversation with the gateway over any transport: audio framing, playout with truncation on an
// interruption, the client's own e2e per turn, and recovery (reconnect with back-off, resume by the
// conversation id). The transports (realtime.js, grpc.js) only translate messages.

import { ClockPlayer, Framer, FRAME_MS, Resampler, now, toInt16 } from "./audio.js";
import { Emitter } from "./emitter.js";
import { DEFAULT_RECONNECT, VoiceError, retryDelayMs } from "./errors.js";

const SENT_LOG_MS = 60_000; // how far back the send times of audio are kept, to time the end of speech

export class VoiceSession extends Emitter {
  /**
   * @param {object} transport realtime.js's RealtimeTransport or grpc.js's GrpcTransport
   * @param {object} [options] see index.d.ts's SessionOptions
   */
  constructor(transport, options = {}) {
    super();
    this.transport = transport;
    this.player = options.player ?? new ClockPlayer();
    this.reconnectPolicy = { ...DEFAULT_RECONNECT, ...(options.reconnect ?? {}) };
    this.resume = options.resume ?? true;
    this.maxBufferedMs = options.maxBufferedMs ?? 10_000;
    this.conversationId = options.resumeConversationId ?? null;
    this.state = "idle"; // idle | connecting | open | reconnecting | closed
    this.turns = new Map(); // turnId -> {turnId, itemId, audioMs, clientE2eMs, truncatedMs}
    this.#random = options.random ?? Math.random;
  }

  #random;
  #connection = null;
  #closing = false;
  #wakeSleep = null;
  #pending = []; // frames captured before the first connection opened: sent once it is (the first words)
  #everOpen = false;
  #resamplers = new Map();
  #framer = null;
  #sentMs = 0; // stream audio sent on this connection
  #sentLog = []; // {endMs, at}: when each frame left, by its end in stream audio time
  #pendingEndAt = null; // when the user's turn ended (now()'s ms), for the next reply's client e2e
  #dropping = new Set(); // turns whose audio an interruption flushed: their late chunks are not played
  #replying = null; // the turn whose audio is arriving and whose metrics have not: the reply in progress
  #started = null; // {resolve, reject} of connect()
  #run = null;

  /** Opens the conversation; resolves with {conversationId, resumed} once the gateway has started it. */
  connect() {
    if (this.#run) throw new Error("connect() was already called");
    this.state = "connecting";
    const started = new Promise((resolve, reject) => (this.#started = { resolve, reject }));
    this.#run = this.#loop();
    return started;
  }

  /** Microphone audio: PCM16 mono at `sampleRate`; resampled to the transport's rate and sent in 20 ms frames. */
  sendAudio(pcm16, sampleRate) {
    if (this.state === "closed") throw new VoiceError("FAILED_PRECONDITION", "the session is closed");
    const rate = this.transport.inputSampleRate;
    if (!this.#resamplers.has(sampleRate)) this.#resamplers.set(sampleRate, new Resampler(sampleRate, rate));
    this.#framer ??= new Framer(rate);
    const samples = this.#resamplers.get(sampleRate).process(toInt16(pcm16));
    this.#framer.push(samples, (frame) => this.#sendFrame(frame));
  }

  /** A typed user turn: the agent answers it. */
  sendText(text) {
    this.#require().sendText(text);
    this.#pendingEndAt = now();
  }

  /** Push-to-talk: the user's turn ends now (the partial frame is sent, then the transport's end of turn). */
  endTurn() {
    const connection = this.#require();
    this.#framer?.flush((frame) => this.#sendFrame(frame));
    connection.endTurn();
    this.#pendingEndAt ??= now();
  }

  /** Stops the reply on the app's account (audio focus lost, a stop button): flushed, and the truncation reported. */
  stopPlayout() {
    if (this.player.playing) this.#interrupt(this.player.clock?.turnId ?? null);
  }

  /** Ends the conversation and the connection; no reconnection follows. */
  async close() {
    if (!this.#run) {
      this.state = "closed";
      return;
    }
    if (this.#closing) return this.#run;
    this.#closing = true;
    this.#wakeSleep?.();
    this.#connection?.close();
    this.player.flush();
    await this.#run;
  }

  // ---- the connection loop

  async #loop() {
    let attempt = 0;
    let everStarted = false;
    let finalError = null;
    while (!this.#closing) {
      const { error, started, resumedTried } = await this.#oneConnection();
      everStarted ||= started;
      if (started) attempt = 0;
      if (this.#closing) break;
      if (error === null) break; // the gateway ended the conversation normally
      if (resumedTried && error.code === "NOT_FOUND") {
        // The conversation is gone (its resume window passed): a new one, at once.
        this.emit("error", { error });
        this.conversationId = null;
        continue;
      }
      const delayMs = retryDelayMs(error, attempt, this.reconnectPolicy, this.#random);
      if (delayMs === null) {
        finalError = error;
        break;
      }
      this.state = "reconnecting";
      this.emit("reconnecting", { attempt: attempt + 1, delayMs, error });
      await this.#sleep(delayMs);
      attempt += 1;
    }
    this.state = "closed";
    this.player.close?.();
    this.transport.close?.(); // gRPC: its channel, so that nothing keeps a Node process alive
    if (!everStarted) this.#started?.reject(finalError ?? new VoiceError("CANCELLED", "closed before it started"));
    this.emit("closed", { error: finalError });
  }

  #oneConnection() {
    const resumeConversationId = this.resume ? this.conversationId : null;
    this.#sentMs = 0;
    this.#sentLog = [];
    return new Promise((resolve) => {
      let started = false;
      let ended = false;
      const connection = this.transport.open(
        { resumeConversationId },
        {
          event: (event) => {
            if (ended) return;
            if (event.type === "started") started = true;
            this.#onEvent(event, connection);
          },
          ended: (error) => {
            if (ended) return;
            ended = true;
            if (this.#connection === connection) this.#connection = null;
            resolve({ error, started, resumedTried: Boolean(resumeConversationId) });
          },
        },
      );
      this.#connection = connection;
    });
  }

  #sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wakeSleep = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #require() {
    if (!this.#connection || this.state !== "open") {
      throw new VoiceError("UNAVAILABLE", `the session is ${this.state}, not open`, { retryAfterMs: 0 });
    }
    return this.#connection;
  }

  // ---- audio out

  #sendFrame(frame) {
    if (this.#connection && this.state === "open") {
      this.#connection.sendAudio(frame);
      this.#logSent(frame.length);
      return;
    }
    // While reconnecting, audio is dropped, as a phone line drops it; before the first connection it is kept.
    if (this.#everOpen) return;
    this.#pending.push(frame);
    const limit = Math.ceil(this.maxBufferedMs / FRAME_MS);
    if (this.#pending.length > limit) this.#pending.splice(0, this.#pending.length - limit);
  }

  #logSent(samples) {
    const at = now();
    this.#sentMs += (1000 * samples) / this.transport.inputSampleRate;
    this.#sentLog.push({ endMs: this.#sentMs, at });
    while (this.#sentLog.length && at - this.#sentLog[0].at > SENT_LOG_MS) this.#sentLog.shift();
  }

  /** When the frame holding stream time `offsetMs` was sent: the user's end of speech on the client's clock. */
  #sentAt(offsetMs) {
    const frame = this.#sentLog.find((entry) => entry.endMs >= offsetMs);
    return frame ? frame.at : now();
  }

  // ---- events in

  #onEvent(event, connection) {
    switch (event.type) {
      case "started":
        return this.#onStarted(event, connection);
      case "conversation": // the conversation's id, after the connection had started
        this.conversationId = event.conversationId;
        return this.emit("sessionStarted", { conversationId: event.conversationId, resumed: Boolean(event.resumed) });
      case "speechEnded":
        this.#pendingEndAt = this.#sentAt(event.offsetMs ?? this.#sentMs);
        return this.emit("speechEnded", event);
      case "bargeIn": {
        // The Realtime convention: the client stops its playout as soon as the user speaks, over audio
        // playing or over a reply still arriving (its playout may have run dry between two chunks).
        const turnId = this.player.playing ? (this.player.clock?.turnId ?? this.#replying) : this.#replying;
        if (turnId !== null) this.#interrupt(turnId);
        return;
      }
      case "interruption":
        this.#interrupt(event.turnId);
        return this.emit("interruption", event);
      case "agentAudio":
        return this.#onAudio(event);
      case "turnMetrics":
        return this.#onMetrics(event);
      case "error":
        return this.emit("error", { error: event.error });
      default:
        return this.emit(event.type, event);
    }
  }

  #onStarted(event, connection) {
    const reconnected = this.state === "reconnecting";
    const resumed = Boolean(event.resumed);
    if (event.conversationId) this.conversationId = event.conversationId;
    this.state = "open";
    this.#everOpen = true;
    for (const frame of this.#pending.splice(0)) {
      connection.sendAudio(frame);
      this.#logSent(frame.length);
    }
    const started = {
      conversationId: this.conversationId,
      resumed,
      resumeWindowS: event.resumeWindowS ?? null,
      lastTurnId: event.lastTurnId ?? null,
    };
    this.emit("sessionStarted", started);
    if (reconnected) this.emit("reconnected", started);
    this.#started?.resolve(started);
    this.#started = null;
  }

  #turn(turnId, itemId) {
    if (!this.turns.has(turnId)) {
      this.turns.set(turnId, { turnId, itemId: itemId ?? null, audioMs: 0, clientE2eMs: null, truncatedMs: null });
    }
    const turn = this.turns.get(turnId);
    if (itemId && !turn.itemId) turn.itemId = itemId;
    return turn;
  }

  #onAudio(event) {
    if (this.#dropping.has(event.turnId)) return;
    const turn = this.#turn(event.turnId, event.itemId);
    this.#replying = event.turnId;
    const startsAt = this.player.enqueue(event.turnId, event.samples, event.sampleRate);
    if (turn.audioMs === 0 && this.#pendingEndAt !== null) {
      turn.clientE2eMs = Math.max(0, startsAt - this.#pendingEndAt);
      this.#pendingEndAt = null;
    }
    turn.audioMs += (1000 * event.samples.length) / event.sampleRate;
    this.emit("agentAudio", event);
  }

  /** The user interrupted `turnId`: the playout stops at once, and the gateway hears how much was played. */
  #interrupt(turnId) {
    const flushed = this.player.flush();
    const id = turnId ?? flushed.turnId;
    if (id === null || id === undefined || this.#dropping.has(id)) return;
    this.#dropping.add(id);
    const turn = this.#turn(id);
    // The flushed turn's played part; a turn that had finished playing was heard whole.
    const audioEndMs = flushed.turnId === id ? flushed.playedMs : Math.round(turn.audioMs);
    turn.truncatedMs = audioEndMs;
    this.#connection?.truncate({ turnId: id, itemId: turn.itemId }, audioEndMs);
    this.emit("truncated", { turnId: id, itemId: turn.itemId, audioEndMs, audioMs: Math.round(turn.audioMs) });
  }

  #onMetrics(event) {
    if (this.#replying === event.turnId) this.#replying = null;
    const turn = this.#turn(event.turnId);
    // A reply the gateway cut short (Realtime: response.done "cancelled") stops here too, and what was heard
    // of it is reported, if the user's speech did not already.
    if (event.interrupted && turn.truncatedMs === null && turn.audioMs > 0) this.#interrupt(event.turnId);
    this.emit("turnMetrics", {
      ...event,
      clientE2eMs: turn.clientE2eMs,
      audioMs: Math.round(turn.audioMs),
      truncatedMs: turn.truncatedMs,
    });
  }
}

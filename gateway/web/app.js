// The browser client of the gateway's OpenAI Realtime-compatible WebSocket API (GET /v1/realtime, served on the
// same port as this page), built on the TypeScript SDK (clients/js, loaded as voice-agent-client.js, the bundle
// `make clients` builds): the SDK's microphone capture (an AudioWorklet, 24 kHz PCM16), its session (framing,
// reconnection with resume, truncation on a barge-in) and its gapless Web Audio playout with an instant flush.
// The server's VAD decides the turns.
"use strict";

const { createRealtimeSession, ConversationsClient, MicrophoneCapture, WebAudioPlayer, REALTIME_RATE } =
  window.VoiceAgentClient;

const KEY_STORAGE = "voice-agent.api-key";
const STAGES = ["vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms"];
const STAGE_NAMES = { vad_wait_ms: "end of turn", asr_ms: "ASR", llm_ttft_ms: "LLM first token",
  tts_ttfa_ms: "TTS first audio", rest: "rest" };

const $ = (id) => document.getElementById(id);
const ui = { key: $("key"), talk: $("talk"), status: $("status"), log: $("log"), history: $("history"), past: $("past") };

// What happened, for tests and for anyone curious in the console (window.voiceAgent).
const hooks = {
  state: "idle", // idle | connecting | listening | closed | error
  conversationId: null, // the SDK resumes it after a dropped connection
  transcripts: [], // {id, text, final}: the user's turns as the ASR heard them
  agentText: [], // {id, text, status, samples}: the coach's replies, as spoken, and their audio scheduled
  samplesScheduled: 0, // agent audio samples (24 kHz) handed to the AudioContext
  samplesPlayedBeforeStop: 0, // of those, played before a barge-in stopped playback (summed over stops)
  stops: [], // {reason, at, scheduled, played}: each time playback was cut short (the SDK's truncations)
  turns: [], // {id, status, metadata, clientE2eMs}: each response.done, its latency breakdown in metadata
  errors: [], // error events and connection failures
  reconnections: [], // {attempt, delayMs, code}: each time the SDK reconnected
  events: {}, // count of each server event type
  past: { conversations: [], opened: {} }, // the conversation records listed, and those opened (by id)
  listPast,
  openPast,
  start,
  stop,
};
window.voiceAgent = hooks;

let session = null;
let audio = null; // one AudioContext for the microphone and the playback
let microphone = null; // the SDK's MicrophoneCapture

// --- the key: ?key= in the URL, else the one remembered ----------------------------------------------

(function restoreKey() {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("key");
  if (fromUrl !== null) {
    localStorage.setItem(KEY_STORAGE, fromUrl);
    // Out of the address bar (and the history) once remembered.
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  ui.key.value = localStorage.getItem(KEY_STORAGE) || "";
})();

ui.talk.addEventListener("click", () => (audio ? stop() : start()));

function setState(state, message) {
  hooks.state = state;
  ui.talk.setAttribute("aria-pressed", String(state === "connecting" || state === "listening"));
  ui.talk.textContent = state === "connecting" || state === "listening" ? "Stop" : "Talk";
  if (message !== undefined) ui.status.textContent = message;
}

// --- starting and stopping ---------------------------------------------------------------------------

async function start() {
  if (audio) return; // already started (or starting)
  const key = ui.key.value.trim();
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  setState("connecting", "Connecting…");
  try {
    // Created inside the click: mobile browsers only let a user gesture start audio.
    audio = new AudioContext();
    await audio.resume();
    session = connect(key);
    // Audio captured before the socket opens is kept by the session: the first words are not lost.
    microphone = new MicrophoneCapture(audio, { workletUrl: "pcm-worklet.js", onAudio: sendAudio });
    await microphone.start();
  } catch (error) {
    fail(`Could not start: ${error.message || error}`);
    return;
  }
  try {
    const started = await session.connect();
    hooks.conversationId = started.conversationId;
    setState("listening", "Listening: speak.");
  } catch (error) {
    // Refused for good (a wrong key, say): the session's "closed" handler has said why.
  }
}

function connect(key) {
  // Same host and port as the page, so it works behind Envoy too; wss when the page came over https.
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/realtime`;
  const created = createRealtimeSession({
    url,
    token: key || undefined, // browsers cannot set headers: the SDK sends the key as a subprotocol
    player: new WebAudioPlayer(audio),
    onServerEvent: (event) => (hooks.events[event.type] = (hooks.events[event.type] || 0) + 1),
  });
  created.on("speechStarted", (event) => {
    ui.talk.classList.add("speaking");
    ui.status.textContent = "Listening…";
    userLine(event.itemId);
  });
  created.on("speechEnded", () => ui.talk.classList.remove("speaking"));
  created.on("transcript", transcript);
  created.on("turnStarted", (event) => {
    agentLine(event.turnId);
    ui.status.textContent = "The coach is answering: speak to interrupt.";
  });
  created.on("agentText", (event) => {
    const line = agentLine(event.turnId);
    line.entry.text += event.delta;
    render(line);
  });
  created.on("agentAudio", (event) => {
    agentLine(event.turnId).entry.samples += event.samples.length;
    hooks.samplesScheduled += event.samples.length;
  });
  // Barge-in: the SDK stopped the coach's audio the moment the user spoke and told the gateway how much was heard.
  created.on("truncated", (event) => {
    const played = Math.round((event.audioEndMs * REALTIME_RATE) / 1000);
    const scheduled = Math.round((event.audioMs * REALTIME_RATE) / 1000);
    hooks.stops.push({ reason: "speech_started", at: Date.now(), scheduled, played, turnId: event.turnId });
    hooks.samplesPlayedBeforeStop += played;
  });
  created.on("turnMetrics", responseDone);
  created.on("error", ({ error }) => {
    hooks.errors.push({ code: error.code, message: error.message, retry_after_ms: error.retryAfterMs });
    addLine("error", `${error.code}: ${error.message}`);
  });
  created.on("reconnecting", ({ attempt, delayMs, error }) => {
    hooks.reconnections.push({ attempt, delayMs, code: error.code });
    if (session === created) setState("connecting", `Connection lost (${error.code}): reconnecting…`);
  });
  created.on("reconnected", (started) => {
    hooks.conversationId = started.conversationId;
    if (session === created) setState("listening", started.resumed ? "Reconnected: speak." : "Reconnected (a new conversation): speak.");
  });
  created.on("closed", ({ error }) => {
    if (session !== created) return; // an older session, already replaced
    teardown();
    if (error) {
      hooks.errors.push({ code: error.code, message: error.message });
      setState("error", `Disconnected (${error.code}: ${error.message}).`);
    } else if (hooks.state !== "idle") {
      setState("closed", "Disconnected.");
    }
  });
  return created;
}

function sendAudio(samples, rate) {
  if (session && session.state !== "closed") session.sendAudio(samples, rate);
}

function stop() {
  const ending = session;
  teardown();
  setState("idle", "Stopped. Tap Talk to go on.");
  if (ending) ending.close();
}

function fail(message) {
  hooks.errors.push({ message });
  const ending = session;
  teardown();
  setState("error", message);
  if (ending) ending.close();
}

function teardown() {
  if (session) session.player.flush();
  if (microphone) microphone.stop();
  if (audio) audio.close();
  session = microphone = audio = null;
  ui.talk.classList.remove("speaking");
}

// --- the conversation's lines ------------------------------------------------------------------------

function transcript(event) {
  const line = userLine(event.itemId);
  if (event.delta) line.entry.text += event.text;
  else line.entry.text = event.text;
  line.entry.final = event.final;
  render(line);
}

// Lines of the conversation, by item or response id: the entry (what the hooks show) and its element.
const lines = new Map();

function userLine(id) {
  const key = "user:" + (id || "current");
  if (!lines.has(key)) {
    const entry = { id, text: "", final: false };
    hooks.transcripts.push(entry);
    lines.set(key, { entry, element: addLine("user partial", "…") });
  }
  return lines.get(key);
}

function agentLine(id) {
  const key = "agent:" + id;
  if (!lines.has(key)) {
    const entry = { id, text: "", status: "in_progress", samples: 0 }; // samples: its audio scheduled
    hooks.agentText.push(entry);
    lines.set(key, { entry, element: addLine("agent", "…") });
  }
  return lines.get(key);
}

function addLine(kind, text) {
  const element = document.createElement("li");
  element.className = kind;
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  element.append(span);
  ui.log.append(element);
  element.scrollIntoView({ block: "end" });
  return element;
}

function render(line) {
  line.element.querySelector(".text").textContent = line.entry.text || "…";
  if (line.entry.final) line.element.classList.remove("partial");
}

function responseDone(metrics) {
  const status = metrics.status || "completed";
  const metadata = metrics.metadata || {};
  hooks.turns.push({ id: metrics.turnId, status, metadata, clientE2eMs: metrics.clientE2eMs });
  const line = agentLine(metrics.turnId);
  line.entry.status = status;
  line.element.classList.add(status);
  if (hooks.state === "listening") ui.status.textContent = "Listening: speak.";
  const bar = latencyBar(metadata);
  if (bar) line.element.append(bar);
}

// --- the latency bar ---------------------------------------------------------------------------------

const bars = []; // {bar, e2e}: every bar shares one scale, the slowest turn's e2e
let scaleMs = 1000;

function latencyBar(metadata) {
  const ms = (key) => Math.max(0, parseFloat(metadata[key]) || 0);
  const e2e = ms("e2e_ms");
  if (!e2e) return null;
  const parts = STAGES.map((stage) => [stage, ms(stage)]);
  // What the named stages do not cover (the gateway's own work, queueing), up to the end-to-end time.
  parts.push(["rest", Math.max(0, e2e - parts.reduce((sum, [, value]) => sum + value, 0))]);
  const total = Math.max(e2e, parts.reduce((sum, [, value]) => sum + value, 0));

  const row = document.createElement("div");
  row.className = "latency";
  const track = document.createElement("div");
  track.className = "track";
  const bar = document.createElement("div");
  bar.className = "bar";
  for (const [stage, value] of parts) {
    if (!value) continue;
    const span = document.createElement("span");
    span.className = stage;
    span.style.width = `${(100 * value) / total}%`;
    span.title = `${STAGE_NAMES[stage]}: ${Math.round(value)} ms`;
    bar.append(span);
  }
  track.append(bar);
  const label = document.createElement("span");
  label.textContent = `${Math.round(e2e)} ms`;
  label.title = parts.map(([stage, value]) => `${STAGE_NAMES[stage]} ${Math.round(value)} ms`).join(", ");
  row.append(track, label);

  bars.push({ bar, e2e: total });
  if (total > scaleMs) scaleMs = total;
  for (const each of bars) each.bar.style.width = `${(100 * each.e2e) / scaleMs}%`;
  return row;
}

// --- past conversations: the gateway's records (/v1/conversations), the transcript as heard, the recording --

function records() {
  return new ConversationsClient({ baseUrl: location.origin, token: ui.key.value.trim() || undefined });
}

ui.history.addEventListener("toggle", () => ui.history.open && listPast());

async function listPast() {
  ui.past.replaceChildren();
  try {
    const { conversations } = await records().list({ pageSize: 20 });
    hooks.past.conversations = conversations;
    if (!conversations.length) ui.past.append(pastLine("None yet."));
    for (const conversation of conversations) {
      const line = pastLine("");
      const open = document.createElement("button");
      open.type = "button";
      const when = new Date(conversation.started_at_ms).toLocaleString();
      open.textContent = `${when} · ${conversation.status}${conversation.summary ? " · " + conversation.summary : ""}`;
      open.addEventListener("click", () => openPast(conversation.conversation_id, line));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "delete";
      remove.textContent = "Delete";
      remove.addEventListener("click", async () => {
        await records().delete(conversation.conversation_id).catch((error) => addLine("error", `${error.code}: ${error.message}`));
        listPast();
      });
      line.append(open, remove);
    }
  } catch (error) {
    ui.past.append(pastLine(`Could not list them (${error.code}: ${error.message}).`));
  }
  return hooks.past.conversations;
}

async function openPast(conversationId, line) {
  const client = records();
  const conversation = await client.get(conversationId);
  hooks.past.opened[conversationId] = conversation;
  if (!line) return conversation;
  line.querySelectorAll(".turn, audio").forEach((element) => element.remove());
  for (const item of conversation.items || []) {
    const turn = document.createElement("p");
    turn.className = `turn ${item.role}`;
    // An interrupted reply is kept as heard: what the user heard, then what they did not.
    turn.textContent = `${item.role === "user" ? "You" : "Coach"}: ${item.interrupted ? item.heard_text : item.text}`;
    if (item.interrupted) {
      const cut = document.createElement("span");
      cut.className = "cut";
      cut.textContent = " (interrupted)";
      turn.append(cut);
    }
    line.append(turn);
  }
  if (conversation.has_recording) {
    const wav = await client.recording(conversationId);
    const player = document.createElement("audio");
    player.controls = true;
    player.src = URL.createObjectURL(new Blob([wav], { type: "audio/wav" }));
    line.append(player);
  }
  return conversation;
}

function pastLine(text) {
  const element = document.createElement("li");
  element.textContent = text;
  ui.past.append(element);
  return element;
}

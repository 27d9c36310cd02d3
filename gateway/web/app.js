// The browser client of the gateway's OpenAI Realtime-compatible WebSocket API (GET /v1/realtime, served
// on the same port as this page): the microphone goes up as PCM16 24 kHz `input_audio_buffer.append`
// events, the coach's `response.output_audio.delta` chunks come back and are played gaplessly, and the
// server's VAD decides the turns. Plain JS, no build step: the gateway serves these files as they are.
"use strict";

const RATE = 24000; // the API's PCM16 rate, both ways
const CHUNK_MS = 40; // microphone chunk per append: small enough for a quick end of turn, few messages
const KEY_STORAGE = "voice-agent.api-key";
const STAGES = ["vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms"];
const STAGE_NAMES = { vad_wait_ms: "end of turn", asr_ms: "ASR", llm_ttft_ms: "LLM first token",
  tts_ttfa_ms: "TTS first audio", rest: "rest" };

const $ = (id) => document.getElementById(id);
const ui = { key: $("key"), talk: $("talk"), status: $("status"), log: $("log") };

// What happened, for tests and for anyone curious in the console (window.voiceAgent).
const hooks = {
  state: "idle", // idle | connecting | listening | closed | error
  transcripts: [], // {id, text, final}: the user's turns as the ASR heard them
  agentText: [], // {id, text, status, samples}: the coach's replies, as spoken, and their audio scheduled
  samplesScheduled: 0, // agent audio samples (24 kHz) handed to the AudioContext
  samplesPlayedBeforeStop: 0, // of those, played before a barge-in stopped playback (summed over stops)
  stops: [], // {reason, at, scheduled, played}: each time playback was cut short
  turns: [], // {id, status, metadata}: each response.done, its latency breakdown in metadata
  errors: [], // error events and connection failures
  events: {}, // count of each server event type
  start,
  stop,
};
window.voiceAgent = hooks;

let socket = null;
let audio = null; // one AudioContext for the microphone and the playback
let microphone = null; // MediaStream
let capture = null; // AudioWorkletNode
let pending = []; // microphone chunks captured before the socket opened: the first words are not lost

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
    if (!navigator.mediaDevices) {
      throw new Error("the microphone needs a secure page: open it over https, or on localhost");
    }
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    await audio.audioWorklet.addModule("pcm-worklet.js");
    capture = new AudioWorkletNode(audio, "pcm16-capture", { processorOptions: { chunkMs: CHUNK_MS } });
    capture.port.onmessage = (message) => sendAudio(message.data);
    audio.createMediaStreamSource(microphone).connect(capture);
    // Some browsers only run a node that leads to the destination; silent, so the user never hears themselves.
    const mute = audio.createGain();
    mute.gain.value = 0;
    capture.connect(mute).connect(audio.destination);
  } catch (error) {
    fail(`Could not start: ${error.message || error}`);
    return;
  }
  connect(key);
}

function connect(key) {
  // Same host and port as the page, so it works behind Envoy too; wss when the page came over https.
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/realtime`;
  // Browsers cannot set headers on a WebSocket: the key rides as a subprotocol, as OpenAI's API accepts it.
  const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
  socket = new WebSocket(url, protocols);
  const opened = socket;
  socket.onopen = () => {
    send({
      type: "session.update",
      session: {
        type: "realtime",
        audio: {
          input: { format: { type: "audio/pcm", rate: RATE }, turn_detection: { type: "server_vad" } },
          output: { format: { type: "audio/pcm", rate: RATE } },
        },
      },
    });
    for (const chunk of pending) sendAudio(chunk);
    pending = [];
    setState("listening", "Listening: speak.");
  };
  socket.onmessage = (message) => handle(JSON.parse(message.data));
  socket.onclose = (event) => {
    if (socket !== opened) return; // an older socket, already replaced
    const why = event.reason || (event.code === 1006 ? "could not connect, or the key was refused" : "");
    teardown();
    if (hooks.state !== "error") {
      setState(event.code === 1000 ? "closed" : "error", `Disconnected (${event.code}${why ? ": " + why : ""}).`);
    }
    if (event.code !== 1000) hooks.errors.push({ code: event.code, message: why });
  };
}

function stop() {
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "user stopped");
  teardown();
  setState("idle", "Stopped. Tap Talk to go on.");
}

function fail(message) {
  hooks.errors.push({ message });
  teardown();
  setState("error", message);
}

function teardown() {
  stopPlayback("hangup", false);
  if (microphone) microphone.getTracks().forEach((track) => track.stop());
  if (capture) capture.disconnect();
  if (audio) audio.close();
  socket = microphone = capture = audio = null;
  pending = [];
  ui.talk.classList.remove("speaking");
}

function send(event) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(event));
}

function sendAudio(buffer) {
  if (!socket || socket.readyState === WebSocket.CONNECTING) {
    if (pending.length < 250) pending.push(buffer); // 10 s at most, should the connection hang
    return;
  }
  send({ type: "input_audio_buffer.append", audio: toBase64(buffer) });
}

// --- server events -----------------------------------------------------------------------------------

function handle(event) {
  hooks.events[event.type] = (hooks.events[event.type] || 0) + 1;
  switch (event.type) {
    case "input_audio_buffer.speech_started":
      ui.talk.classList.add("speaking");
      ui.status.textContent = "Listening…";
      // Barge-in: the user talks over the coach, who falls silent at once rather than when the
      // server's cancel makes it back; the rest of this reply's audio, still in flight, is dropped.
      if (player.sources.size) stopPlayback("speech_started");
      userLine(event.item_id);
      break;
    case "input_audio_buffer.speech_stopped":
      ui.talk.classList.remove("speaking");
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const line = userLine(event.item_id);
      line.entry.text += event.delta || "";
      render(line);
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const line = userLine(event.item_id);
      line.entry.text = event.transcript || "";
      line.entry.final = true;
      render(line);
      break;
    }
    case "response.created":
      agentLine(event.response.id);
      ui.status.textContent = "The coach is answering: speak to interrupt.";
      break;
    case "response.output_audio.delta":
      if (event.response_id !== player.dropping) schedule(event.delta, agentLine(event.response_id).entry);
      break;
    case "response.output_audio_transcript.delta": {
      const line = agentLine(event.response_id);
      line.entry.text += event.delta || "";
      render(line);
      break;
    }
    case "response.done":
      responseDone(event.response);
      break;
    case "error": {
      const error = event.error || {};
      hooks.errors.push(error);
      addLine("error", `${error.code || error.type || "error"}: ${error.message || ""}`);
      break;
    }
  }
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

function responseDone(response) {
  const status = response.status || "completed";
  const metadata = response.metadata || {};
  hooks.turns.push({ id: response.id, status, metadata });
  const line = agentLine(response.id);
  line.entry.status = status;
  line.element.classList.add(status);
  if (status === "cancelled" && player.sources.size) stopPlayback("cancelled");
  if (hooks.state === "listening") ui.status.textContent = "Listening: speak.";
  const bar = latencyBar(metadata);
  if (bar) line.element.append(bar);
  if (status === "failed") {
    const details = response.status_details && response.status_details.error;
    if (details) hooks.errors.push(details);
  }
}

// --- the latency bar ---------------------------------------------------------------------------------

const bars = []; // {track, e2e}: every bar shares one scale, the slowest turn's e2e
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

// --- playback ----------------------------------------------------------------------------------------

const player = {
  sources: new Set(), // scheduled and not yet ended
  nextTime: 0, // where the next chunk starts, in the AudioContext's time: chunks end to end, no gaps
  played: 0, // samples of sources that ended since the last stop
  scheduled: 0, // samples scheduled since the last stop
  dropping: null, // the response whose audio a barge-in cut off: its late chunks are not played
};

function schedule(base64, entry) {
  if (!audio) return;
  const pcm = fromBase64(base64);
  if (!pcm.length) return;
  const buffer = audio.createBuffer(1, pcm.length, RATE); // the context resamples 24 kHz to its own rate
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
  const source = audio.createBufferSource();
  source.buffer = buffer;
  source.connect(audio.destination);
  // After an underrun (or at the start of a reply), a little headroom so the first chunk is not clipped.
  const now = audio.currentTime;
  if (player.nextTime < now + 0.02) player.nextTime = now + 0.05;
  source.startTime = player.nextTime;
  source.start(player.nextTime);
  player.nextTime += buffer.duration;
  player.sources.add(source);
  player.scheduled += pcm.length;
  hooks.samplesScheduled += pcm.length;
  entry.samples += pcm.length;
  source.onended = () => {
    if (player.sources.delete(source)) player.played += pcm.length;
  };
}

function stopPlayback(reason, record = true) {
  if (!player.sources.size && !record) return;
  const now = audio ? audio.currentTime : 0;
  let played = player.played;
  for (const source of player.sources) {
    // Samples of this chunk already heard: from its start time up to now.
    const heard = Math.min(source.buffer.length, Math.max(0, (now - source.startTime) * RATE));
    played += Math.round(heard);
    source.onended = null;
    try {
      source.stop();
    } catch {
      // already stopped
    }
  }
  if (record) {
    hooks.stops.push({ reason, at: Date.now(), scheduled: player.scheduled, played });
    hooks.samplesPlayedBeforeStop += played;
    // The reply still streaming is the newest one; its audio still in flight must not start playing.
    const current = hooks.agentText.filter((entry) => entry.status === "in_progress").pop();
    player.dropping = current ? current.id : player.dropping;
  }
  player.sources.clear();
  player.nextTime = 0;
  player.played = player.scheduled = 0;
}

// --- base64 PCM16 ------------------------------------------------------------------------------------

// PCM16 little-endian, as the API sends it; typed arrays use the platform's order, little-endian on
// every platform browsers run on.
function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  // In slices: String.fromCharCode with too many arguments overflows the stack.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(base64) {
  const binary = atob(base64 || "");
  const bytes = new Uint8Array(binary.length & ~1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Int16Array(bytes.buffer);
}

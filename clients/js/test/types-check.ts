// Compiled by `npm run typecheck` (tsc, no output): the declarations read as an app would use them.
import { ConversationsClient, createRealtimeSession, createSession, VoiceError } from "../src/index.js";
import { MicrophoneCapture, WebAudioPlayer } from "../src/browser.js";

async function app(): Promise<void> {
  const session = createSession({ address: "127.0.0.1:50051", token: "key", tls: false });
  session.on("turnMetrics", (metrics) => console.log(metrics.clientE2eMs ?? 0, metrics.llmTtftMs));
  session.on("closed", ({ error }) => error && console.log(error.code, error.retryAfterMs));
  const started = await session.connect();
  console.log(started.conversationId, started.resumed);
  session.sendAudio(new Int16Array(320), 16000);
  session.sendText("hi");
  for await (const event of session) {
    if (event.type === "truncated") console.log(event.audioEndMs);
    if (event.type === "error" && event.error instanceof VoiceError) break;
  }
  await session.close();

  const audio = new AudioContext();
  const browser = createRealtimeSession({ url: "wss://x/v1/realtime", player: new WebAudioPlayer(audio) });
  const microphone = new MicrophoneCapture(audio, { onAudio: (samples, rate) => browser.sendAudio(samples, rate) });
  await microphone.start();
  const records = new ConversationsClient({ baseUrl: "https://x" });
  const { conversations } = await records.list();
  console.log(conversations[0]?.items?.[0]?.heard_text);
}
void app;

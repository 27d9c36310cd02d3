// The browser bundle's entry (make clients: gateway/web/voice-agent-client.js, global VoiceAgentClient).
export * from "./realtime-entry.js";
export { MicrophoneCapture, WebAudioPlayer } from "./browser.js";

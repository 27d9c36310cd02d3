import type { Player, TurnId } from "./index.js";
export * from "./index.js";

/** The microphone, echo canceller on, as 24 kHz PCM16 chunks (an AudioWorklet at workletUrl). */
export declare class MicrophoneCapture {
  constructor(context: AudioContext, options?: {
    workletUrl?: string; chunkMs?: number; onAudio?: (samples: Int16Array, sampleRate: number) => void;
  });
  start(): Promise<void>;
  stop(): void;
}

/** Gapless Web Audio playout with an instant flush. */
export declare class WebAudioPlayer implements Player {
  constructor(context: AudioContext, options?: { headroomMs?: number });
  enqueue(turnId: TurnId, samples: Int16Array, sampleRate: number): number;
  readonly playing: boolean;
  readonly scheduledSamples: number;
  flush(): { turnId: TurnId | null; playedMs: number };
  close(): void;
}

package voiceagent.client;

/**
 * The session's events, typed. Every method has an empty default, so an app (or a Kotlin {@code object :
 * VoiceListener}) overrides only what it needs. Called on gRPC's thread, one event at a time, in order: hand
 * long work to another thread.
 */
public interface VoiceListener {
    /** A stream started (also after every reconnection): the conversation's id and whether it was resumed. */
    default void onSessionStarted(SessionInfo session) {}

    /** The user started speaking, at {@code offsetMs} of this stream's audio. */
    default void onSpeechStarted(int offsetMs) {}

    /** The user stopped speaking, at {@code offsetMs} of this stream's audio. */
    default void onSpeechEnded(int offsetMs) {}

    /** What the user said so far ({@code isFinal} false), or the turn's final transcript. */
    default void onTranscript(String text, boolean isFinal) {}

    /** A piece of the agent's reply text, as the LLM streams it. */
    default void onAgentText(int turnId, String delta) {}

    /** A chunk of the agent's reply audio (PCM16LE mono), already handed to the playout. */
    default void onAgentAudio(int turnId, byte[] pcm16, int sampleRate) {}

    /**
     * What speech over the agent turned out to be: "interruption", "backchannel", "noise" or "echo".
     */
    default void onInterruptionDecision(int turnId, String kind, String text) {}

    /**
     * The user interrupted the agent: the playout was flushed, {@code playedMs} of the reply had been played,
     * and the SDK reported that to the gateway (which keeps only the heard part in the history).
     * {@code heardText} is the gateway's own estimate of the words heard.
     */
    default void onInterruption(int turnId, String heardText, long playedMs) {}

    /** One agent turn ended: its timings, with the client's own e2e. */
    default void onTurnMetrics(TurnMetrics metrics) {}

    /**
     * An error: a backend failed one turn (the session goes on), the gateway refused a message, or the stream
     * ended with this error (then {@link #onReconnecting} or {@link #onClosed} follows).
     */
    default void onError(VoiceError error) {}

    /** The stream ended with {@code cause}; a new one starts in {@code delayMs} (attempt 1, 2, ...). */
    default void onReconnecting(int attempt, long delayMs, VoiceError cause) {}

    /** The session is over: {@code error} null after {@link VoiceSession#close}, or why it could not go on. */
    default void onClosed(VoiceError error) {}
}

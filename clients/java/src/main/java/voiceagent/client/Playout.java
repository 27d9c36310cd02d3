package voiceagent.client;

/**
 * Where the agent's reply audio is played: the SDK queues each chunk as it arrives and, on an interruption,
 * flushes the playout at once and reports to the gateway how much of the reply was actually heard.
 *
 * <p>{@link RealTimePlayout} plays on a wall clock (the JVM, tests, a headless client, and the base of an
 * Android {@code AudioTrack} playout: see the README). Calls come from the session's gRPC thread.
 */
public interface Playout {
    /** Queues a chunk of turn {@code turnId}'s reply (PCM16LE mono) after everything already queued. */
    void play(int turnId, byte[] pcm16, int sampleRate);

    /** Stops playing now and drops everything queued; returns the ms of {@code turnId}'s audio that had played. */
    long flush(int turnId);

    /** Ms of {@code turnId}'s audio played so far. */
    long playedMs(int turnId);

    /** {@link System#nanoTime()} when the first sample of {@code turnId} played (or will, if queued); -1: none. */
    long startedAtNanos(int turnId);

    /** A new conversation began (the old one could not be resumed): forget its turns, whose ids start again. */
    void reset();

    /** Releases the device; nothing plays after it. */
    default void close() {}
}

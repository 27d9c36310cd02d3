package voiceagent.client;

import java.util.HashMap;
import java.util.Map;

/**
 * A playout on the wall clock: each chunk plays right after the one before it (or now, if nothing is playing),
 * at real time. It holds no audio device, so it serves a headless client and tests; an Android app extends the
 * idea with an {@code AudioTrack} (README). {@link #onPlayed} sees every chunk as it is queued, to keep or write
 * it somewhere.
 */
public class RealTimePlayout implements Playout {
    /** One turn's audio on the playout's clock. */
    private static final class Span {
        final long startNanos;
        long endNanos;
        long flushedAtNanos = Long.MAX_VALUE;

        Span(long startNanos) {
            this.startNanos = startNanos;
            this.endNanos = startNanos;
        }

        long playedMs(long now) {
            long until = Math.min(Math.min(now, endNanos), flushedAtNanos);
            return Math.max(0, (until - startNanos) / 1_000_000);
        }
    }

    private final Map<Integer, Span> turns = new HashMap<>();
    /** When everything queued so far has played. */
    private long queuedUntilNanos = Long.MIN_VALUE;

    @Override
    public synchronized void play(int turnId, byte[] pcm16, int sampleRate) {
        long now = System.nanoTime();
        long start = Math.max(now, queuedUntilNanos);
        Span span = turns.get(turnId);
        if (span == null || span.flushedAtNanos != Long.MAX_VALUE) {
            if (span != null) {
                return; // the turn was interrupted: its late chunks are not played
            }
            span = new Span(start);
            turns.put(turnId, span);
        }
        long duration = pcm16.length / 2 * 1_000_000_000L / sampleRate;
        queuedUntilNanos = start + duration;
        span.endNanos = queuedUntilNanos;
        onPlayed(turnId, pcm16, sampleRate);
    }

    @Override
    public synchronized long flush(int turnId) {
        long now = System.nanoTime();
        for (Span span : turns.values()) {
            span.flushedAtNanos = Math.min(span.flushedAtNanos, now);
            span.endNanos = Math.min(span.endNanos, now);
        }
        queuedUntilNanos = now;
        Span span = turns.get(turnId);
        if (span == null) {
            turns.put(turnId, flushedBeforeStart(now));
            return 0;
        }
        return span.playedMs(now);
    }

    private static Span flushedBeforeStart(long now) {
        Span span = new Span(now);
        span.flushedAtNanos = now;
        return span;
    }

    @Override
    public synchronized void reset() {
        turns.clear();
    }

    @Override
    public synchronized long playedMs(int turnId) {
        Span span = turns.get(turnId);
        return span == null ? 0 : span.playedMs(System.nanoTime());
    }

    @Override
    public synchronized long startedAtNanos(int turnId) {
        Span span = turns.get(turnId);
        return span == null || span.endNanos == span.startNanos ? -1 : span.startNanos;
    }

    /** Whether audio is still playing (or queued). */
    public synchronized boolean isPlaying() {
        return queuedUntilNanos > System.nanoTime();
    }

    /** Each chunk as it is queued: override to write it to a device or keep it. */
    protected void onPlayed(int turnId, byte[] pcm16, int sampleRate) {}
}

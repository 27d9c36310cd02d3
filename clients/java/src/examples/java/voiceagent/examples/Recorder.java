package voiceagent.examples;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import voiceagent.client.SessionInfo;
import voiceagent.client.TurnMetrics;
import voiceagent.client.VoiceError;
import voiceagent.client.VoiceListener;

/** A listener that keeps everything a session said, and lets a caller wait for what it expects. */
public class Recorder implements VoiceListener {
    /** One interruption as the SDK saw it. */
    public static final class Interruption {
        public final int turnId;
        public final String heardText;
        public final long playedMs;
        public final long receivedMs;

        Interruption(int turnId, String heardText, long playedMs, long receivedMs) {
            this.turnId = turnId;
            this.heardText = heardText;
            this.playedMs = playedMs;
            this.receivedMs = receivedMs;
        }
    }

    /** One reconnection: its attempt number, the wait and why, and when it was scheduled. */
    public static final class Reconnect {
        public final int attempt;
        public final long delayMs;
        public final VoiceError cause;
        public final long atNanos = System.nanoTime();

        Reconnect(int attempt, long delayMs, VoiceError cause) {
            this.attempt = attempt;
            this.delayMs = delayMs;
            this.cause = cause;
        }
    }

    public final List<SessionInfo> sessions = new ArrayList<>();
    public final List<Long> sessionStartedNanos = new ArrayList<>();
    public final List<String> finalTranscripts = new ArrayList<>();
    public final Map<Integer, StringBuilder> replies = new LinkedHashMap<>();
    public final Map<Integer, ByteArrayOutputStream> audio = new LinkedHashMap<>();
    public final List<TurnMetrics> metrics = new ArrayList<>();
    public final List<VoiceError> errors = new ArrayList<>();
    public final List<Interruption> interruptions = new ArrayList<>();
    public final List<Reconnect> reconnects = new ArrayList<>();
    public int audioSampleRate = 24_000;
    public boolean closed;
    public VoiceError closedWith;

    @Override
    public synchronized void onSessionStarted(SessionInfo session) {
        sessions.add(session);
        sessionStartedNanos.add(System.nanoTime());
        notifyAll();
    }

    @Override
    public synchronized void onTranscript(String text, boolean isFinal) {
        if (isFinal && !text.isEmpty()) {
            finalTranscripts.add(text);
            notifyAll();
        }
    }

    @Override
    public synchronized void onAgentText(int turnId, String delta) {
        replies.computeIfAbsent(turnId, id -> new StringBuilder()).append(delta);
    }

    @Override
    public synchronized void onAgentAudio(int turnId, byte[] pcm16, int sampleRate) {
        audioSampleRate = sampleRate;
        audio.computeIfAbsent(turnId, id -> new ByteArrayOutputStream()).write(pcm16, 0, pcm16.length);
        notifyAll();
    }

    @Override
    public synchronized void onInterruption(int turnId, String heardText, long playedMs) {
        interruptions.add(new Interruption(turnId, heardText, playedMs, audioMs(turnId)));
        notifyAll();
    }

    @Override
    public synchronized void onTurnMetrics(TurnMetrics turn) {
        metrics.add(turn);
        notifyAll();
    }

    @Override
    public synchronized void onError(VoiceError error) {
        errors.add(error);
        notifyAll();
    }

    @Override
    public synchronized void onReconnecting(int attempt, long delayMs, VoiceError cause) {
        reconnects.add(new Reconnect(attempt, delayMs, cause));
        notifyAll();
    }

    @Override
    public synchronized void onClosed(VoiceError error) {
        closed = true;
        closedWith = error;
        notifyAll();
    }

    /** Waits until {@code condition} holds or the session closed; false on a timeout. */
    public synchronized boolean await(BooleanSupplier condition, long timeout, TimeUnit unit)
            throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        while (!condition.getAsBoolean() && !closed) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            TimeUnit.NANOSECONDS.timedWait(this, left);
        }
        return condition.getAsBoolean();
    }

    /** The metrics of the first turn after {@code afterTurns} earlier ones that answered (was not interrupted). */
    public synchronized TurnMetrics answer(int afterTurns) {
        for (int i = afterTurns; i < metrics.size(); i++) {
            if (!metrics.get(i).isInterrupted()) {
                return metrics.get(i);
            }
        }
        return null;
    }

    public synchronized String reply(int turnId) {
        StringBuilder text = replies.get(turnId);
        return text == null ? "" : text.toString().trim();
    }

    public synchronized byte[] audio(int turnId) {
        ByteArrayOutputStream bytes = audio.get(turnId);
        return bytes == null ? new byte[0] : bytes.toByteArray();
    }

    public synchronized long audioMs(int turnId) {
        return audio(turnId).length / 2 * 1000L / audioSampleRate;
    }

    public synchronized byte[] allAudio() {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (ByteArrayOutputStream turn : audio.values()) {
            byte[] bytes = turn.toByteArray();
            all.write(bytes, 0, bytes.length);
        }
        return all.toByteArray();
    }

    public synchronized SessionInfo lastSession() {
        return sessions.isEmpty() ? null : sessions.get(sessions.size() - 1);
    }
}

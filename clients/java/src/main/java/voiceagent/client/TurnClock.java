package voiceagent.client;

import java.util.HashMap;
import java.util.Map;
import voice_agent.v1.GatewayOuterClass;

/**
 * The client's own e2e: when each 20 ms frame of this stream went out, so that the gateway's end-of-speech
 * offset (stream-audio time) maps to the moment its last sample was sent; that moment (or a typed turn's) to
 * when the playout started the reply is the turn's e2e.
 */
final class TurnClock {
    /** The last 60 s of frames: an end of speech is reported well within it. */
    private static final int KEPT_FRAMES = 60_000 / AudioFramer.FRAME_MS;

    private final long[] sentNanos = new long[KEPT_FRAMES];
    private long framesSent;
    /** When the user's turn that the next reply answers ended; -1: none pending. */
    private long userTurnEndedNanos = -1;
    private final Map<Integer, Long> answering = new HashMap<>();

    synchronized void newStream() {
        framesSent = 0;
    }

    synchronized void newConversation() {
        answering.clear();
        userTurnEndedNanos = -1;
    }

    synchronized void frameSent(long nanos) {
        sentNanos[(int) (framesSent % KEPT_FRAMES)] = nanos;
        framesSent++;
    }

    /** The gateway heard the speech end at {@code offsetMs}: its last sample was in frame (offset - 1) / 20. */
    synchronized void speechEnded(int offsetMs) {
        long frame = Math.min(Math.max(0, (offsetMs - 1) / AudioFramer.FRAME_MS), framesSent - 1);
        if (frame >= 0 && frame >= framesSent - KEPT_FRAMES) {
            userTurnEndedNanos = sentNanos[(int) (frame % KEPT_FRAMES)];
        }
    }

    synchronized void textSent(long nanos) {
        userTurnEndedNanos = nanos;
    }

    /** The first audio of {@code turnId} arrived: it answers the user's turn that ended last. */
    synchronized void replyStarted(int turnId) {
        if (!answering.containsKey(turnId) && userTurnEndedNanos >= 0) {
            answering.put(turnId, userTurnEndedNanos);
            userTurnEndedNanos = -1;
        }
    }

    synchronized TurnMetrics metrics(GatewayOuterClass.TurnMetrics reported, Playout playout) {
        Long ended = answering.remove(reported.getTurnId());
        long started = playout.startedAtNanos(reported.getTurnId());
        double e2eMs = ended != null && started >= 0 ? Math.round((started - ended) / 100_000.0) / 10.0 : -1;
        return new TurnMetrics(reported.getTurnId(), reported.getVadWaitMs(), reported.getAsrMs(),
                reported.getLlmTtftMs(), reported.getTtsTtfaMs(), reported.getGatewayFirstAudioMs(),
                reported.getLlmTokens(), reported.getInterrupted(), reported.getPreemptive(), e2eMs);
    }
}

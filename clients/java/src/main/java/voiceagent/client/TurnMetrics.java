package voiceagent.client;

/**
 * One agent turn's timings: the gateway's stages (wall-clock ms) and the client's own end-to-end latency.
 *
 * <p>{@code e2eMs} is measured on this device: from when the last audio before the end of speech was sent (or
 * the typed text) to when the reply's first audio started playing. -1 where it could not be measured (no
 * playout of this turn, or the turn was not answering the user).
 */
public final class TurnMetrics {
    private final int turnId;
    private final float vadWaitMs;
    private final float asrMs;
    private final float llmTtftMs;
    private final float ttsTtfaMs;
    private final float gatewayFirstAudioMs;
    private final int llmTokens;
    private final boolean interrupted;
    private final boolean preemptive;
    private final double e2eMs;

    public TurnMetrics(int turnId, float vadWaitMs, float asrMs, float llmTtftMs, float ttsTtfaMs,
            float gatewayFirstAudioMs, int llmTokens, boolean interrupted, boolean preemptive, double e2eMs) {
        this.turnId = turnId;
        this.vadWaitMs = vadWaitMs;
        this.asrMs = asrMs;
        this.llmTtftMs = llmTtftMs;
        this.ttsTtfaMs = ttsTtfaMs;
        this.gatewayFirstAudioMs = gatewayFirstAudioMs;
        this.llmTokens = llmTokens;
        this.interrupted = interrupted;
        this.preemptive = preemptive;
        this.e2eMs = e2eMs;
    }

    public int getTurnId() {
        return turnId;
    }

    /** Audio ms between the end of speech and the end-of-turn decision. */
    public float getVadWaitMs() {
        return vadWaitMs;
    }

    /** End of turn decided to the final transcript. */
    public float getAsrMs() {
        return asrMs;
    }

    public float getLlmTtftMs() {
        return llmTtftMs;
    }

    public float getTtsTtfaMs() {
        return ttsTtfaMs;
    }

    /** Final transcript at the gateway to the first agent audio sent. */
    public float getGatewayFirstAudioMs() {
        return gatewayFirstAudioMs;
    }

    public int getLlmTokens() {
        return llmTokens;
    }

    public boolean isInterrupted() {
        return interrupted;
    }

    public boolean isPreemptive() {
        return preemptive;
    }

    /** The client's end-to-end latency in ms; -1: not measured. */
    public double getE2eMs() {
        return e2eMs;
    }

    /** e2eMs minus the four server stages: network, buffering and the gateway's own work; NaN if not measured. */
    public double getOverheadMs() {
        return e2eMs < 0 ? Double.NaN : e2eMs - vadWaitMs - asrMs - llmTtftMs - ttsTtfaMs;
    }

    @Override
    public String toString() {
        return "TurnMetrics{turn=" + turnId + ", e2e=" + e2eMs + ", vadWait=" + vadWaitMs + ", asr=" + asrMs
                + ", llmTtft=" + llmTtftMs + ", ttsTtfa=" + ttsTtfaMs + (interrupted ? ", interrupted" : "") + "}";
    }
}

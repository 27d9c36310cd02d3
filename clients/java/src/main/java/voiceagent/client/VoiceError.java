package voiceagent.client;

/**
 * An error the gateway reported, or the transport's status when it reported none.
 *
 * <p>{@code code} is a gRPC status code name (UNAVAILABLE, RESOURCE_EXHAUSTED, ...). When a stream ends while
 * the client is still writing, grpc may report a made-up INTERNAL instead of the gateway's status
 * (grpc/grpc#36066); the gateway sends its status as an error event first, and this is that event.
 */
public final class VoiceError {
    private final String code;
    private final String message;
    private final Long retryAfterMs;
    private final String backend;
    private final int turnId;

    public VoiceError(String code, String message, Long retryAfterMs, String backend, int turnId) {
        this.code = code;
        this.message = message;
        this.retryAfterMs = retryAfterMs;
        this.backend = backend;
        this.turnId = turnId;
    }

    /** A gRPC status code name. */
    public String getCode() {
        return code;
    }

    public String getMessage() {
        return message;
    }

    /** When to try again in ms (0: at once, a drain); null: the server gave no hint. */
    public Long getRetryAfterMs() {
        return retryAfterMs;
    }

    /** "asr", "llm" or "tts" (one turn failed, the session goes on), "gateway", or "transport" (no event came). */
    public String getBackend() {
        return backend;
    }

    /** The agent turn it concerns; 0 for none. */
    public int getTurnId() {
        return turnId;
    }

    /** One turn failed and the session goes on. */
    public boolean isTurnError() {
        return "asr".equals(backend) || "llm".equals(backend) || "tts".equals(backend);
    }

    @Override
    public String toString() {
        return code + ": " + message + (retryAfterMs != null ? " (retry after " + retryAfterMs + " ms)" : "");
    }
}

package voiceagent.examples;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import voiceagent.client.TurnMetrics;
import voiceagent.client.VoiceError;
import voiceagent.client.VoiceSession;

/**
 * {@code clients/java/talk --wav IN.wav --out REPLY.wav [--token T]}: one spoken turn against the gateway at
 * VOICE_GATEWAY_ADDRESS, the microphone played in real time; prints one JSON object (transcript, reply, e2e_ms,
 * audio_ms, ...) and writes the reply audio. On an error: a JSON object with error and code, exit status 1.
 */
public final class Talk {
    private static final long TURN_TIMEOUT_S = 120;

    private Talk() {}

    public static void main(String[] args) {
        Map<String, String> options = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length && args[i].startsWith("--"); i += 2) {
            options.put(args[i].substring(2), args[i + 1]);
        }
        if (!options.containsKey("wav") || !options.containsKey("out") || args.length % 2 != 0) {
            fail("usage: talk --wav IN.wav --out REPLY.wav [--token T] [--tls-ca CA.pem]", "INVALID_ARGUMENT");
        }
        try {
            System.out.println(Json.of(talk(options)));
            System.exit(0);
        } catch (TalkFailed failure) {
            fail(failure.getMessage(), failure.code);
        } catch (Exception error) {
            fail(error.toString(), "UNKNOWN");
        }
    }

    static Map<String, Object> talk(Map<String, String> options) throws Exception {
        Wav input = Wav.read(Paths.get(options.get("wav")));
        String address = System.getenv().getOrDefault("VOICE_GATEWAY_ADDRESS", "127.0.0.1:50051");
        Recorder recorder = new Recorder();
        VoiceSession.Builder builder = VoiceSession.builder(address).sampleRate(input.sampleRate).listener(recorder);
        if (options.containsKey("token")) {
            builder.token(options.get("token"));
        }
        if (options.containsKey("tls-ca")) {
            builder.tlsTrusting(Paths.get(options.get("tls-ca")).toFile());
        }
        VoiceSession session = builder.connect();
        try {
            // Refused at a limit: the SDK waits retry_after_ms and connects again; speak once admitted.
            if (!recorder.await(() -> !recorder.sessions.isEmpty(), TURN_TIMEOUT_S, TimeUnit.SECONDS)) {
                throw failed(recorder, "no session started in " + TURN_TIMEOUT_S + " s");
            }
            speakInRealTime(session, input);
            session.endTurn();
            if (!recorder.await(() -> recorder.answer(0) != null, TURN_TIMEOUT_S, TimeUnit.SECONDS)) {
                throw failed(recorder, "no answer in " + TURN_TIMEOUT_S + " s");
            }
        } finally {
            session.close();
            session.awaitClosed(10, TimeUnit.SECONDS);
        }
        return result(recorder, Paths.get(options.get("out")));
    }

    /** The WAV as a microphone sends it: 20 ms at a time, at real time. */
    private static void speakInRealTime(VoiceSession session, Wav input) throws InterruptedException {
        int bytesPer20Ms = input.sampleRate / 50 * 2;
        long start = System.nanoTime();
        for (int offset = 0, frame = 0; offset < input.pcm16.length; offset += bytesPer20Ms, frame++) {
            long due = start + frame * 20_000_000L;
            long wait = due - System.nanoTime();
            if (wait > 0) {
                TimeUnit.NANOSECONDS.sleep(wait);
            }
            session.sendAudio(Arrays.copyOfRange(input.pcm16, offset, Math.min(offset + bytesPer20Ms,
                    input.pcm16.length)), input.sampleRate);
        }
    }

    private static Map<String, Object> result(Recorder recorder, Path out) throws Exception {
        TurnMetrics answer = recorder.answer(0);
        new Wav(recorder.allAudio(), recorder.audioSampleRate).write(out);
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("transcript", String.join(" ", recorder.finalTranscripts));
        result.put("reply", recorder.reply(answer.getTurnId()));
        result.put("e2e_ms", answer.getE2eMs() < 0 ? null : answer.getE2eMs());
        result.put("audio_ms", recorder.allAudio().length / 2 * 1000L / recorder.audioSampleRate);
        result.put("turn_id", answer.getTurnId());
        result.put("conversation_id", recorder.lastSession().getConversationId());
        Map<String, Object> stages = new LinkedHashMap<>();
        stages.put("vad_wait_ms", answer.getVadWaitMs());
        stages.put("asr_ms", answer.getAsrMs());
        stages.put("llm_ttft_ms", answer.getLlmTtftMs());
        stages.put("tts_ttfa_ms", answer.getTtsTtfaMs());
        stages.put("gateway_first_audio_ms", answer.getGatewayFirstAudioMs());
        result.put("metrics", stages);
        return result;
    }

    private static TalkFailed failed(Recorder recorder, String otherwise) {
        VoiceError error = recorder.closedWith;
        if (error == null && !recorder.errors.isEmpty()) {
            error = recorder.errors.get(recorder.errors.size() - 1);
        }
        return error != null ? new TalkFailed(error.getMessage(), error.getCode())
                : new TalkFailed(otherwise, "DEADLINE_EXCEEDED");
    }

    private static void fail(String message, String code) {
        Map<String, Object> error = new LinkedHashMap<>();
        error.put("error", message);
        error.put("code", code);
        System.out.println(Json.of(error));
        System.exit(1);
    }

    /** The turn failed with the server's code. */
    private static final class TalkFailed extends Exception {
        private static final long serialVersionUID = 1L;
        final String code;

        TalkFailed(String message, String code) {
            super(message);
            this.code = code;
        }
    }
}

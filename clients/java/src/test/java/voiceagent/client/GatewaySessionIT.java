package voiceagent.client;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

import java.io.FileWriter;
import java.io.IOException;
import java.io.Writer;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.After;
import org.junit.AfterClass;
import org.junit.FixMethodOrder;
import org.junit.Test;
import org.junit.runners.MethodSorters;
import voiceagent.examples.Json;
import voiceagent.examples.Recorder;
import voiceagent.examples.Wav;

/**
 * The SDK against the real embedded stack, started by tests/test_client_java.py: a gateway with --max-streams 1
 * and an API key, behind a TCP proxy the test can cut, and a control URL that drains the gateway (a new one takes
 * its place behind the proxy). What the gateway must confirm afterwards (the truncation in the history) goes to
 * the results file for the Python side.
 */
@FixMethodOrder(MethodSorters.NAME_ASCENDING)
public class GatewaySessionIT {
    private static final String ADDRESS = System.getenv("VOICE_GATEWAY_ADDRESS");
    private static final String KEY = System.getenv("VOICE_TEST_KEY");
    private static final String CONTROL = System.getenv("VOICE_TEST_CONTROL");
    private static final String SPEECH = System.getenv("VOICE_TEST_SPEECH_DIR");
    private static final String RESULTS = System.getenv("VOICE_TEST_RESULTS");
    private static final Map<String, Object> results = new LinkedHashMap<>();
    private static final long TURN_S = 120;

    /** The sessions a test opened: closed after it, also when it failed (the gateway serves one at a time). */
    private final List<VoiceSession> opened = new ArrayList<>();

    /** A recorder that also logs every event but audio to stderr, for a failure's report. */
    private static Recorder recorder(String name) {
        return new Recorder() {
            private void log(String what) {
                System.err.printf("%tT.%<tL %s: %s%n", System.currentTimeMillis(), name, what);
            }

            @Override
            public synchronized void onSessionStarted(SessionInfo session) {
                log(session.toString());
                super.onSessionStarted(session);
            }

            @Override
            public synchronized void onTranscript(String text, boolean isFinal) {
                if (isFinal) {
                    log("final transcript: " + text);
                }
                super.onTranscript(text, isFinal);
            }

            @Override
            public synchronized void onInterruption(int turnId, String heardText, long playedMs) {
                log("interruption of turn " + turnId + " after " + playedMs + " ms: " + heardText);
                super.onInterruption(turnId, heardText, playedMs);
            }

            @Override
            public synchronized void onTurnMetrics(TurnMetrics turn) {
                log(turn + " reply: " + reply(turn.getTurnId()));
                super.onTurnMetrics(turn);
            }

            @Override
            public synchronized void onError(VoiceError error) {
                log("error " + error + " (" + error.getBackend() + ")");
                super.onError(error);
            }

            @Override
            public synchronized void onReconnecting(int attempt, long delayMs, VoiceError cause) {
                log("reconnecting (attempt " + attempt + ") in " + delayMs + " ms after " + cause);
                super.onReconnecting(attempt, delayMs, cause);
            }

            @Override
            public synchronized void onClosed(VoiceError error) {
                log("closed " + error);
                super.onClosed(error);
            }
        };
    }

    private VoiceSession connect(Recorder recorder) {
        return opened(VoiceSession.builder(ADDRESS).token(KEY).listener(recorder).connect());
    }

    private VoiceSession opened(VoiceSession session) {
        opened.add(session);
        return session;
    }

    @After
    public void closeSessions() throws InterruptedException {
        for (VoiceSession session : opened) {
            session.close();
            session.awaitClosed(30, TimeUnit.SECONDS);
        }
    }

    private static void started(Recorder recorder, int sessions) throws InterruptedException {
        assertTrue("no session started: " + recorder.errors,
                recorder.await(() -> recorder.sessions.size() >= sessions, TURN_S, TimeUnit.SECONDS));
    }

    /** The answer to the user's turn after {@code afterTurns} earlier agent turns; fails at once when a backend
     * failed the turn (the session goes on, but this test's turn is lost). */
    private static TurnMetrics answered(Recorder recorder, int afterTurns) throws InterruptedException {
        int errorsBefore = recorder.errors.size();
        assertTrue("no answer", recorder.await(() -> recorder.answer(afterTurns) != null
                || turnFailed(recorder, errorsBefore), TURN_S, TimeUnit.SECONDS));
        assertFalse("the turn failed: " + recorder.errors, turnFailed(recorder, errorsBefore));
        return recorder.answer(afterTurns);
    }

    private static boolean turnFailed(Recorder recorder, int errorsBefore) {
        synchronized (recorder) {
            return recorder.errors.subList(errorsBefore, recorder.errors.size()).stream()
                    .anyMatch(error -> "llm".equals(error.getBackend()) || "tts".equals(error.getBackend()));
        }
    }

    private static Wav speech(String name) throws IOException {
        return Wav.read(Paths.get(SPEECH, name + ".wav"));
    }

    /** A microphone: the WAV 20 ms at a time in real time (in 10 ms pieces: the SDK frames them itself). */
    private static void speak(VoiceSession session, Wav wav) throws InterruptedException {
        int piece = wav.sampleRate / 100 * 2;
        long start = System.nanoTime();
        for (int offset = 0, n = 0; offset < wav.pcm16.length; offset += piece, n++) {
            long wait = start + n * 10_000_000L - System.nanoTime();
            if (wait > 0) {
                TimeUnit.NANOSECONDS.sleep(wait);
            }
            session.sendAudio(Arrays.copyOfRange(wav.pcm16, offset, Math.min(offset + piece, wav.pcm16.length)),
                    wav.sampleRate);
        }
    }

    private static void post(String action) throws IOException {
        HttpURLConnection request = (HttpURLConnection) new URL(CONTROL + "/" + action).openConnection();
        request.setRequestMethod("POST");
        request.setReadTimeout(120_000);
        assertEquals(action, 200, request.getResponseCode());
        request.disconnect();
    }

    private static void closeAndWait(VoiceSession session) throws InterruptedException {
        session.close();
        assertTrue("the session did not close", session.awaitClosed(30, TimeUnit.SECONDS));
    }

    @AfterClass
    public static void writeResults() throws IOException {
        try (Writer out = new FileWriter(RESULTS)) {
            out.write(Json.of(results));
        }
    }

    @Test
    public void a_spokenTurnFromAWavResampledFromTwentyFourKilohertz() throws Exception {
        Recorder recorder = recorder("spoken");
        VoiceSession session = connect(recorder);
        started(recorder, 1);
        speak(session, speech("question-24k"));
        session.endTurn();
        TurnMetrics turn = answered(recorder, 0);
        closeAndWait(session);
        String heard = String.join(" ", recorder.finalTranscripts).toLowerCase();
        assertTrue(heard, heard.contains("interview"));
        assertFalse(recorder.reply(turn.getTurnId()).isEmpty());
        assertTrue(recorder.audioMs(turn.getTurnId()) > 500);
        assertTrue("e2e " + turn.getE2eMs(), turn.getE2eMs() > 0 && turn.getE2eMs() < 60_000);
        assertFalse(recorder.lastSession().getConversationId().isEmpty());
        assertEquals(null, recorder.closedWith);
    }

    @Test
    public void b_typedTurn() throws Exception {
        Recorder recorder = recorder("typed");
        VoiceSession session = connect(recorder);
        started(recorder, 1);
        session.sendText("How should I answer a question about my weaknesses?");
        TurnMetrics turn = answered(recorder, 0);
        closeAndWait(session);
        assertFalse(recorder.reply(turn.getTurnId()).isEmpty());
        assertTrue(recorder.audioMs(turn.getTurnId()) > 500);
        assertTrue("e2e " + turn.getE2eMs(), turn.getE2eMs() > 0);
        assertTrue(recorder.finalTranscripts.isEmpty());
    }

    /** The user talks over the reply: the playout stops at once and the gateway hears how much was played. */
    @Test
    public void c_bargeInFlushesThePlayoutAndReportsWhatWasHeard() throws Exception {
        Recorder recorder = recorder("barge-in");
        RealTimePlayout playout = new RealTimePlayout();
        VoiceSession session = opened(VoiceSession.builder(ADDRESS).token(KEY).listener(recorder).playout(playout)
                .connect());
        started(recorder, 1);
        session.sendText("I have a job interview next week and I feel nervous. What should I do?");
        assertTrue("no reply audio: " + recorder.errors,
                recorder.await(() -> !recorder.audio.isEmpty(), TURN_S, TimeUnit.SECONDS));
        speak(session, speech("interruption"));
        session.endTurn();
        assertTrue("no interruption: " + recorder.errors,
                recorder.await(() -> !recorder.interruptions.isEmpty(), TURN_S, TimeUnit.SECONDS));
        Recorder.Interruption cut = recorder.interruptions.get(0);
        Thread.sleep(300);
        // The interrupted turn stopped playing at the flush (the answer to the interruption may play by now).
        assertEquals(cut.playedMs, playout.playedMs(cut.turnId));
        answered(recorder, 0); // the interruption is answered
        closeAndWait(session);
        assertTrue("played " + cut.playedMs, cut.playedMs > 0);
        assertTrue("played " + cut.playedMs + " of " + cut.receivedMs, cut.playedMs < cut.receivedMs);
        assertEquals(cut.playedMs, playout.playedMs(cut.turnId));
        Map<String, Object> barge = new LinkedHashMap<>();
        barge.put("conversation_id", recorder.lastSession().getConversationId());
        barge.put("turn_id", cut.turnId);
        barge.put("played_ms", cut.playedMs);
        barge.put("received_ms", cut.receivedMs);
        barge.put("reply", recorder.reply(cut.turnId));
        barge.put("heard_text", cut.heardText);
        results.put("barge_in", barge);
    }

    /** At --max-streams 1, a second session is refused with a retry hint and admitted once the first ends. */
    @Test
    public void d_refusalIsRetriedAfterRetryAfterMs() throws Exception {
        Recorder holder = recorder("holder");
        VoiceSession holding = connect(holder);
        started(holder, 1);
        Recorder waiting = recorder("waiting");
        VoiceSession refused = connect(waiting);
        assertTrue(waiting.await(() -> !waiting.reconnects.isEmpty(), 30, TimeUnit.SECONDS));
        Thread.sleep(1_500); // refused at least once more while the first session holds the one stream
        closeAndWait(holding);
        started(waiting, 1);
        closeAndWait(refused);
        for (Recorder.Reconnect retry : waiting.reconnects) {
            assertEquals("RESOURCE_EXHAUSTED", retry.cause.getCode());
            assertNotNull(retry.cause.getRetryAfterMs());
            assertEquals((long) retry.cause.getRetryAfterMs(), retry.delayMs);
            assertTrue(retry.cause.getRetryAfterMs() >= 700);
        }
        assertTrue(waiting.reconnects.size() >= 2);
        Recorder.Reconnect last = waiting.reconnects.get(waiting.reconnects.size() - 1);
        long waitedMs = (waiting.sessionStartedNanos.get(0) - last.atNanos) / 1_000_000;
        assertTrue("admitted " + waitedMs + " ms after a hint of " + last.delayMs, waitedMs >= last.delayMs);
    }

    @Test
    public void e_aWrongKeyIsNotRetried() throws Exception {
        Recorder recorder = recorder("wrong-key");
        VoiceSession session = opened(VoiceSession.builder(ADDRESS).token("not-the-key").listener(recorder).connect());
        assertTrue(session.awaitClosed(30, TimeUnit.SECONDS));
        assertEquals("UNAUTHENTICATED", recorder.closedWith.getCode());
        assertTrue(recorder.reconnects.isEmpty());
        assertTrue(recorder.sessions.isEmpty());
    }

    /** The gateway drains (SIGTERM): UNAVAILABLE with retry 0, and the session is on the new gateway at once. */
    @Test
    public void f_aDrainReconnectsAtOnce() throws Exception {
        Recorder recorder = recorder("drain");
        VoiceSession session = connect(recorder);
        started(recorder, 1);
        session.sendText("What should I wear to an interview?");
        answered(recorder, 0);
        post("drain");
        started(recorder, 2);
        Recorder.Reconnect drained = recorder.reconnects.get(0);
        assertEquals("UNAVAILABLE", drained.cause.getCode());
        assertEquals(Long.valueOf(0), drained.cause.getRetryAfterMs());
        assertEquals(0, drained.delayMs);
        int turns = recorder.metrics.size();
        session.sendText("And what should I bring?");
        answered(recorder, turns);
        closeAndWait(session);
        assertEquals(null, recorder.closedWith);
    }

    /** The TCP connection drops: the SDK backs off, connects again and resumes the conversation by its id. */
    @Test
    public void g_aDroppedConnectionIsResumedWithItsHistory() throws Exception {
        Recorder recorder = recorder("drop");
        VoiceSession session = connect(recorder);
        started(recorder, 1);
        session.sendText("My name is Ada and I am preparing for a nursing interview.");
        TurnMetrics first = answered(recorder, 0);
        String id = recorder.lastSession().getConversationId();
        post("drop");
        started(recorder, 2);
        SessionInfo resumed = recorder.lastSession();
        Recorder.Reconnect lost = recorder.reconnects.get(0);
        assertEquals(lost.cause.toString(), "UNAVAILABLE", lost.cause.getCode());
        assertTrue(lost.delayMs > 0);
        assertEquals(id, resumed.getConversationId());
        assertTrue(resumed.isResumed());
        assertTrue(resumed.getLastTurnId() >= first.getTurnId());
        int turns = recorder.metrics.size();
        session.sendText("What is my name?");
        TurnMetrics next = answered(recorder, turns);
        assertTrue(next.getTurnId() > first.getTurnId());
        closeAndWait(session);
        Map<String, Object> drop = new LinkedHashMap<>();
        drop.put("conversation_id", id);
        drop.put("first_turn_id", first.getTurnId());
        drop.put("next_turn_id", next.getTurnId());
        results.put("dropped", drop);
    }
}

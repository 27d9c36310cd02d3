package voiceagent.client;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.File;
import java.io.IOException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import voice_agent.v1.AsrOuterClass;
import voice_agent.v1.Audio;
import voice_agent.v1.GatewayGrpc;
import voice_agent.v1.GatewayOuterClass.ConverseRequest;
import voice_agent.v1.GatewayOuterClass.ConverseResponse;
import voice_agent.v1.GatewayOuterClass.ErrorEvent;
import voice_agent.v1.GatewayOuterClass.SessionConfig;
import voice_agent.v1.GatewayOuterClass.Truncate;

/**
 * One conversation with the gateway over its gRPC Converse stream, kept across dropped connections.
 *
 * <pre>{@code
 * VoiceSession session = VoiceSession.builder("gateway.example.com:443")
 *         .token(apiKey).listener(listener).connect();
 * session.sendAudio(pcm16, 48000);   // any rate, any length: framed into 20 ms at the session's rate
 * session.endTurn();                 // push-to-talk: the user let go
 * session.sendText("Hello");         // a typed turn
 * session.close();
 * }</pre>
 *
 * <p>On an interruption the playout is flushed and the SDK tells the gateway how much of the reply was played
 * (the Realtime API's {@code conversation.item.truncate}). When the stream ends with a retryable error the
 * session connects again (see {@link ReconnectPolicy}) and resumes the conversation by its id; audio sent while
 * it is disconnected is dropped, as a phone line drops it. Thread-safe.
 */
public final class VoiceSession implements AutoCloseable {
    static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    static final Metadata.Key<String> RETRY_AFTER_MS =
            Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER);

    /** How long close() waits for the gateway to end the stream before it cancels it. */
    static final long CLOSE_TIMEOUT_S = 10;

    private final ManagedChannel channel;
    private final boolean ownsChannel;
    private final GatewayGrpc.GatewayStub stub;
    private final SessionConfig config;
    private final VoiceListener listener;
    private final Playout playout;
    private final ReconnectPolicy policy;
    private final AudioFramer framer;
    private final TurnClock clock = new TurnClock();
    private final ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor(runnable -> {
        Thread thread = new Thread(runnable, "voice-session");
        thread.setDaemon(true);
        return thread;
    });
    private final CountDownLatch closed = new CountDownLatch(1);

    private final Object lock = new Object();
    private Stream stream;
    private String conversationId = "";
    /** The conversation the last stream was in: another one means the turn ids start again. */
    private String startedConversationId = "";
    private int attempt;
    private boolean closing;
    private boolean finished;
    /** The agent turn whose audio was played last (0: none since the last flush). */
    private int playingTurn;
    private ScheduledFuture<?> silence;
    private volatile VoiceError closedWith;

    private VoiceSession(Builder builder) {
        this.channel = builder.channel != null ? builder.channel : builder.newChannel();
        this.ownsChannel = builder.channel == null;
        GatewayGrpc.GatewayStub base = GatewayGrpc.newStub(channel);
        if (builder.token != null) {
            Metadata headers = new Metadata();
            headers.put(AUTHORIZATION, "Bearer " + builder.token);
            base = base.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
        }
        this.stub = base;
        this.config = builder.config.setInputAudio(Audio.AudioFormat.newBuilder()
                .setEncoding(Audio.AudioEncoding.AUDIO_ENCODING_PCM16LE)
                .setSampleRateHz(builder.sampleRate)).build();
        this.listener = builder.listener;
        this.playout = builder.playout;
        this.policy = builder.policy;
        this.framer = new AudioFramer(builder.sampleRate);
    }

    public static Builder builder(String address) {
        return new Builder(address);
    }

    /** Opens a session on an existing channel (an app's own, e.g. grpc-okhttp's on Android). */
    public static Builder builder(ManagedChannel channel) {
        return new Builder(null).channel(channel);
    }

    /** The conversation's id ("" until the gateway sent it): keep it to resume in a later session. */
    public String getConversationId() {
        synchronized (lock) {
            return conversationId;
        }
    }

    /**
     * Sends the user's audio: PCM16LE mono at {@code sampleRate} (8000 to 48000 Hz), any length. It goes out in
     * 20 ms frames at the session's rate; a partial frame waits for the next call (or {@link #endTurn}).
     */
    public void sendAudio(byte[] pcm16, int sampleRate) {
        byte[][] frames = framer.add(pcm16, sampleRate);
        synchronized (lock) {
            stopSilence();
            for (byte[] frame : frames) {
                sendFrame(frame);
            }
        }
    }

    /** {@link #sendAudio(byte[], int)} for samples as shorts (Android's {@code AudioRecord.read(short[] ...)}). */
    public void sendAudio(short[] samples, int count, int sampleRate) {
        byte[] pcm16 = new byte[count * 2];
        for (int i = 0; i < count; i++) {
            pcm16[2 * i] = (byte) samples[i];
            pcm16[2 * i + 1] = (byte) (samples[i] >> 8);
        }
        sendAudio(pcm16, sampleRate);
    }

    /**
     * The user finished speaking (push-to-talk released): the last partial frame goes out padded, then silence
     * in real time, as a muted microphone sends, so that the gateway hears the end of speech; until the next
     * {@link #sendAudio}.
     */
    public void endTurn() {
        byte[][] frames = framer.finish();
        synchronized (lock) {
            for (byte[] frame : frames) {
                sendFrame(frame);
            }
            stopSilence();
            byte[] quiet = new byte[framer.frameBytes()];
            silence = scheduler.scheduleAtFixedRate(() -> {
                synchronized (lock) {
                    sendFrame(quiet);
                }
            }, AudioFramer.FRAME_MS, AudioFramer.FRAME_MS, TimeUnit.MILLISECONDS);
        }
    }

    /** A typed user turn. */
    public void sendText(String text) {
        synchronized (lock) {
            clock.textSent(System.nanoTime());
            send(ConverseRequest.newBuilder().setText(text).build());
        }
    }

    /**
     * Stops the reply playing now, on the app's own account (an audio focus loss, a mute button): flushes the
     * playout and tells the gateway how much of the reply was played, as an interruption does. Returns the ms
     * played of the turn that was playing (0: none was).
     */
    public long stopPlayout() {
        synchronized (lock) {
            if (playingTurn == 0) {
                return 0;
            }
            long played = playout.flush(playingTurn);
            truncate(playingTurn, played);
            playingTurn = 0;
            return played;
        }
    }

    private void truncate(int turnId, long playedMs) {
        send(ConverseRequest.newBuilder().setTruncate(Truncate.newBuilder()
                .setTurnId(turnId).setAudioEndMs((int) Math.min(playedMs, Integer.MAX_VALUE))).build());
    }

    /** Ends the conversation: the gateway ends the stream, then {@link VoiceListener#onClosed}(null). */
    @Override
    public void close() {
        Runnable notification;
        synchronized (lock) {
            if (closing) {
                return;
            }
            closing = true;
            stopSilence();
            if (stream != null) {
                Stream ending = stream;
                ending.end();
                // A gateway that does not end the stream in time (a lost network the OS has not noticed yet)
                // does not hold the app: the call is cancelled, and the session closes all the same.
                scheduler.schedule(ending::cancel, CLOSE_TIMEOUT_S, TimeUnit.SECONDS);
                return;
            }
            notification = finish(null);
        }
        notification.run();
    }

    /**
     * Leaves without ending the conversation, as a dropped connection does (the app goes to the background):
     * the call is cancelled, and the gateway keeps the conversation resumable by {@link #getConversationId} for
     * its resume window ({@link Builder#resume}). The session is over: {@link VoiceListener#onClosed}(null).
     */
    public void detach() {
        Runnable notification;
        synchronized (lock) {
            if (closing) {
                return;
            }
            closing = true;
            stopSilence();
            if (stream != null) {
                stream.cancel();
                return;
            }
            notification = finish(null);
        }
        notification.run();
    }

    /** Waits for the session to be over (after {@link #close}, or an error that is not retried). */
    public boolean awaitClosed(long timeout, TimeUnit unit) throws InterruptedException {
        return closed.await(timeout, unit);
    }

    /** Why the session ended (null: closed by the app, or not over yet). */
    public VoiceError getClosedWith() {
        return closedWith;
    }

    private void stopSilence() {
        if (silence != null) {
            silence.cancel(false);
            silence = null;
        }
    }

    private void sendFrame(byte[] frame) {
        if (stream != null && !closing) {
            clock.frameSent(System.nanoTime());
            stream.write(ConverseRequest.newBuilder()
                    .setAudio(com.google.protobuf.ByteString.copyFrom(frame)).build());
        }
    }

    private void send(ConverseRequest request) {
        if (stream != null && !closing) {
            stream.write(request);
        }
    }

    private VoiceSession open() {
        synchronized (lock) {
            if (closing) {
                return this;
            }
            SessionConfig.Builder resume = config.toBuilder().setResumeConversationId(conversationId);
            framer.reset();
            clock.newStream();
            stream = new Stream(resume.build());
        }
        return this;
    }

    /**
     * Ends the session (once); returns the listener's notification, which the caller runs after it let go of
     * the lock: a listener may block, or call the session from another thread.
     */
    private Runnable finish(VoiceError error) {
        if (finished) {
            return () -> {};
        }
        finished = true;
        closing = true;
        closedWith = error;
        stopSilence();
        scheduler.shutdownNow(); // a pending reconnection or close timeout has nothing left to do
        playout.close();
        if (ownsChannel) {
            channel.shutdown();
        }
        return () -> {
            try {
                listener.onClosed(error);
            } finally {
                closed.countDown();
            }
        };
    }

    /** The stream ended: connect again or end the session. Called with {@code lock} held; see finish. */
    private Runnable ended(Stream ended, VoiceError error) {
        if (ended != stream) {
            return () -> {};
        }
        stream = null;
        if (closing || error == null) {
            return finish(closing ? null : error);
        }
        if ("NOT_FOUND".equals(error.getCode()) && !conversationId.isEmpty()) {
            // The conversation can no longer be resumed (expired, or another replica's): start a new one.
            conversationId = "";
            return reconnect(0, 0, error);
        }
        attempt++;
        long delay = policy.delayMs(attempt, error);
        if (delay < 0) {
            return finish(error);
        }
        return reconnect(attempt, delay, error);
    }

    /** Tells the listener, then opens a new stream after {@code delayMs}. */
    private Runnable reconnect(int number, long delayMs, VoiceError cause) {
        return () -> {
            listener.onReconnecting(number, delayMs, cause);
            try {
                scheduler.schedule(this::open, delayMs, TimeUnit.MILLISECONDS);
            } catch (RejectedExecutionException closedMeanwhile) {
                // close() ran in between: nothing to open
            }
        };
    }

    /** One Converse stream: writes are serialized by the session's lock, events arrive on gRPC's thread. */
    private final class Stream implements StreamObserver<ConverseResponse> {
        private final StreamObserver<ConverseRequest> requests;
        /** The gateway's error event, when it was the last event: the stream's real status. */
        private ErrorEvent lastGatewayError;
        private boolean halfClosed;

        Stream(SessionConfig config) {
            requests = stub.converse(this);
            requests.onNext(ConverseRequest.newBuilder().setConfig(config).build());
        }

        void write(ConverseRequest request) {
            if (!halfClosed) {
                requests.onNext(request);
            }
        }

        void cancel() {
            if (requests instanceof ClientCallStreamObserver) {
                ((ClientCallStreamObserver<ConverseRequest>) requests).cancel("the session was closed", null);
            }
        }

        void end() {
            if (!halfClosed) {
                requests.onNext(ConverseRequest.newBuilder()
                        .setEnd(ConverseRequest.EndSession.getDefaultInstance()).build());
                requests.onCompleted();
                halfClosed = true;
            }
        }

        @Override
        public void onNext(ConverseResponse event) {
            lastGatewayError = null;
            switch (event.getEventCase()) {
                case SESSION_STARTED:
                    synchronized (lock) {
                        String id = event.getSessionStarted().getConversationId();
                        if (!startedConversationId.isEmpty() && !id.equals(startedConversationId)) {
                            // A new conversation (the old one could not be resumed): its turn ids start again.
                            playout.reset();
                            clock.newConversation();
                        }
                        conversationId = id;
                        startedConversationId = id;
                        attempt = 0;
                    }
                    listener.onSessionStarted(new SessionInfo(event.getSessionStarted().getConversationId(),
                            event.getSessionStarted().getResumed(), event.getSessionStarted().getResumeWindowS(),
                            event.getSessionStarted().getLastTurnId()));
                    break;
                case SPEECH_STARTED:
                    listener.onSpeechStarted(event.getSpeechStarted().getOffsetMs());
                    break;
                case SPEECH_ENDED:
                    AsrOuterClass.SpeechEnded ended = event.getSpeechEnded();
                    clock.speechEnded(ended.getOffsetMs());
                    listener.onSpeechEnded(ended.getOffsetMs());
                    break;
                case INTERIM_TRANSCRIPT:
                    listener.onTranscript(event.getInterimTranscript().getText(), false);
                    break;
                case FINAL_TRANSCRIPT:
                    listener.onTranscript(event.getFinalTranscript().getText(), true);
                    break;
                case AGENT_TEXT:
                    listener.onAgentText(event.getAgentText().getTurnId(), event.getAgentText().getDelta());
                    break;
                case AGENT_AUDIO:
                    agentAudio(event);
                    break;
                case INTERRUPTION:
                    interrupted(event.getInterruption().getTurnId(), event.getInterruption().getHeardText());
                    break;
                case INTERRUPTION_DECISION:
                    listener.onInterruptionDecision(event.getInterruptionDecision().getTurnId(),
                            event.getInterruptionDecision().getKind(), event.getInterruptionDecision().getText());
                    break;
                case TURN_METRICS:
                    listener.onTurnMetrics(clock.metrics(event.getTurnMetrics(), playout));
                    break;
                case ERROR:
                    ErrorEvent error = event.getError();
                    if ("gateway".equals(error.getBackend())) {
                        lastGatewayError = error;
                    }
                    listener.onError(new VoiceError(error.getCode(), error.getMessage(),
                            error.hasRetryAfterMs() ? Long.valueOf(error.getRetryAfterMs()) : null,
                            error.getBackend(), error.getTurnId()));
                    break;
                default:
                    break; // an event this SDK does not know yet: newer gateways may add some
            }
        }

        private void agentAudio(ConverseResponse event) {
            int turnId = event.getAgentAudio().getTurnId();
            byte[] pcm16 = event.getAgentAudio().getAudio().toByteArray();
            int rate = event.getAgentAudio().getSampleRateHz();
            clock.replyStarted(turnId);
            synchronized (lock) {
                playout.play(turnId, pcm16, rate);
                playingTurn = turnId;
            }
            listener.onAgentAudio(turnId, pcm16, rate);
        }

        /** The gateway stopped the reply: flush what is queued and tell it how much was heard. */
        private void interrupted(int turnId, String heardText) {
            long played;
            synchronized (lock) {
                played = playout.flush(turnId);
                truncate(turnId, played);
                playingTurn = 0;
            }
            listener.onInterruption(turnId, heardText, played);
        }

        @Override
        public void onError(Throwable cause) {
            VoiceError error = statusError(Status.fromThrowable(cause), Status.trailersFromThrowable(cause));
            Runnable notification;
            synchronized (lock) {
                halfClosed = true;
                notification = ended(this, error);
            }
            notification.run();
        }

        @Override
        public void onCompleted() {
            Runnable notification;
            synchronized (lock) {
                halfClosed = true;
                // OK: the gateway ended the conversation normally (after the client's end): nothing to resume.
                notification = ended(this, null);
            }
            notification.run();
        }

        /** The stream's real status: the gateway's last error event when there was one (grpc/grpc#36066). */
        private VoiceError statusError(Status status, Metadata trailers) {
            if (lastGatewayError != null) {
                ErrorEvent told = lastGatewayError;
                return new VoiceError(told.getCode(), told.getMessage(),
                        told.hasRetryAfterMs() ? Long.valueOf(told.getRetryAfterMs()) : null, "gateway",
                        told.getTurnId());
            }
            Long retryAfter = null;
            String hint = trailers == null ? null : trailers.get(RETRY_AFTER_MS);
            if (hint != null) {
                try {
                    retryAfter = Long.parseLong(hint.trim());
                } catch (NumberFormatException ignored) {
                    // a malformed hint is no hint
                }
            }
            String message = status.getDescription() != null ? status.getDescription()
                    : status.getCause() != null ? status.getCause().toString() : status.getCode().name();
            VoiceError error = new VoiceError(status.getCode().name(), message, retryAfter, "transport", 0);
            listener.onError(error);
            return error;
        }
    }

    /** Connection and session settings; {@link #connect} opens the session. */
    public static final class Builder {
        private final String address;
        private ManagedChannel channel;
        private String token;
        private boolean tls;
        private File trustedCertificates;
        private int sampleRate = 16_000;
        private final SessionConfig.Builder config = SessionConfig.newBuilder();
        private VoiceListener listener = new VoiceListener() {};
        private Playout playout = new RealTimePlayout();
        private ReconnectPolicy policy = ReconnectPolicy.defaults();

        private Builder(String address) {
            this.address = address;
        }

        Builder channel(ManagedChannel channel) {
            this.channel = channel;
            return this;
        }

        /** A bearer token, JWT or API key: sent as {@code authorization: Bearer <token>}. */
        public Builder token(String token) {
            this.token = token;
            return this;
        }

        /** TLS verified against the system's trusted roots (off: plaintext, as the embedded stack serves). */
        public Builder tls(boolean tls) {
            this.tls = tls;
            return this;
        }

        /** TLS verified against these CA certificates (PEM), e.g. a gateway that serves its own. */
        public Builder tlsTrusting(File caCertificates) {
            this.tls = true;
            this.trustedCertificates = caCertificates;
            return this;
        }

        /** The rate the audio goes to the gateway at (8000 to 48000 Hz; 16000 by default). */
        public Builder sampleRate(int sampleRate) {
            this.sampleRate = sampleRate;
            return this;
        }

        /** The coach's persona; unset: the gateway's. */
        public Builder systemPrompt(String systemPrompt) {
            config.setSystemPrompt(systemPrompt);
            return this;
        }

        /** A TTS voice or a Realtime voice name (alloy, ash, ...); unset: the TTS engine's default. */
        public Builder voice(String voice) {
            config.setVoice(voice);
            return this;
        }

        /** The agent audio's rate; unset: the TTS engine's own. */
        public Builder outputSampleRate(int sampleRate) {
            config.setOutputSampleRateHz(sampleRate);
            return this;
        }

        /** Whether the user may interrupt the agent; unset: the gateway's setting (on). */
        public Builder bargeIn(boolean bargeIn) {
            config.setBargeIn(bargeIn);
            return this;
        }

        /** Resume an earlier conversation by its id (within the gateway's resume window). */
        public Builder resume(String conversationId) {
            config.setResumeConversationId(conversationId);
            return this;
        }

        public Builder listener(VoiceListener listener) {
            this.listener = listener;
            return this;
        }

        /** Where the reply is played; a {@link RealTimePlayout} by default. */
        public Builder playout(Playout playout) {
            this.playout = playout;
            return this;
        }

        public Builder reconnect(ReconnectPolicy policy) {
            this.policy = policy;
            return this;
        }

        /** Opens the stream; events arrive on the listener. */
        public VoiceSession connect() {
            VoiceSession session = new VoiceSession(this);
            synchronized (session.lock) {
                session.conversationId = config.getResumeConversationId();
            }
            return session.open();
        }

        private ManagedChannel newChannel() {
            ChannelCredentials credentials;
            if (!tls) {
                credentials = InsecureChannelCredentials.create();
            } else if (trustedCertificates != null) {
                try {
                    credentials = TlsChannelCredentials.newBuilder().trustManager(trustedCertificates).build();
                } catch (IOException error) {
                    throw new IllegalArgumentException("cannot read " + trustedCertificates + ": " + error, error);
                }
            } else {
                credentials = TlsChannelCredentials.create();
            }
            return Grpc.newChannelBuilder(address, credentials).build();
        }
    }
}

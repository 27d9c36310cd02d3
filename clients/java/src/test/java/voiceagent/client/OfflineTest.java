package voiceagent.client;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Random;
import org.junit.Test;

/** The SDK's logic that needs no server: framing and resampling, the back-off, the playout's clock. */
public class OfflineTest {
    private static byte[] ramp(int samples) {
        byte[] pcm = new byte[samples * 2];
        for (int i = 0; i < samples; i++) {
            pcm[2 * i] = (byte) i;
            pcm[2 * i + 1] = (byte) (i >> 8);
        }
        return pcm;
    }

    @Test
    public void framesAreTwentyMsAndTheRemainderWaits() {
        AudioFramer framer = new AudioFramer(16_000);
        assertEquals(0, framer.add(ramp(300), 16_000).length); // 18.75 ms: no whole frame yet
        byte[][] frames = framer.add(ramp(400), 16_000); // 700 samples: two frames, 60 left
        assertEquals(2, frames.length);
        assertEquals(640, frames[0].length);
        assertEquals(299 & 0xff, frames[0][598] & 0xff); // the first call's last sample,
        assertEquals(1, frames[0][602]); // then the second call's
        byte[][] last = framer.finish();
        assertEquals(1, last.length);
        assertEquals(0, last[0][639]); // padded with silence
    }

    @Test
    public void otherRatesAreResampledToTheSessionRate() {
        AudioFramer framer = new AudioFramer(16_000);
        int frames = 0;
        for (int i = 0; i < 50; i++) {
            frames += framer.add(ramp(960), 48_000).length; // 20 ms at 48 kHz, fifty times: one second
        }
        assertTrue("frames " + frames, frames >= 49 && frames <= 50);
        AudioFramer up = new AudioFramer(24_000);
        assertEquals(2, up.add(ramp(640), 16_000).length); // 40 ms at 16 kHz: two 20 ms frames at 24 kHz
    }

    @Test
    public void rejectsWhatIsNotPcm16AtAUsableRate() {
        AudioFramer framer = new AudioFramer(16_000);
        try {
            framer.add(new byte[3], 16_000);
            throw new AssertionError("an odd byte count was accepted");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("even"));
        }
        try {
            framer.add(new byte[2], 4_000);
            throw new AssertionError("4 kHz was accepted");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("8000 to 48000"));
        }
    }

    @Test
    public void backOffIsCappedJitteredAndHonoursTheServersHint() {
        ReconnectPolicy policy = new ReconnectPolicy(100, 1_000, 5, new Random(7));
        VoiceError lost = new VoiceError("UNAVAILABLE", "connection reset", null, "transport", 0);
        for (int attempt = 1; attempt <= 5; attempt++) {
            long cap = Math.min(1_000, 100L << (attempt - 1));
            long delay = policy.delayMs(attempt, lost);
            assertTrue(attempt + ": " + delay, delay >= cap / 2 && delay <= cap);
        }
        assertEquals(-1, policy.delayMs(6, lost));
        assertEquals(700, policy.delayMs(1, new VoiceError("RESOURCE_EXHAUSTED", "limit", 700L, "gateway", 0)));
        assertEquals(0, policy.delayMs(1, new VoiceError("UNAVAILABLE", "shutting down", 0L, "gateway", 0)));
        for (String code : new String[] {"UNAUTHENTICATED", "INVALID_ARGUMENT", "PERMISSION_DENIED"}) {
            assertEquals(code, -1, policy.delayMs(1, new VoiceError(code, "no", 5L, "gateway", 0)));
        }
    }

    @Test
    public void playoutReportsWhatWasPlayedWhenFlushed() throws InterruptedException {
        RealTimePlayout playout = new RealTimePlayout();
        playout.play(3, new byte[24_000 * 2], 24_000); // one second
        Thread.sleep(200);
        long played = playout.flush(3);
        assertTrue("played " + played, played >= 190 && played < 1_000);
        Thread.sleep(50);
        assertEquals(played, playout.playedMs(3)); // flushed: the clock stopped for it
        playout.play(3, new byte[4_800], 24_000); // a late chunk of the interrupted turn is not played
        assertTrue(!playout.isPlaying());
        assertArrayEquals(new long[] {-1}, new long[] {playout.startedAtNanos(4)});
    }
}

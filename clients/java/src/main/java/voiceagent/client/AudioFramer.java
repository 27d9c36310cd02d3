package voiceagent.client;

import java.io.ByteArrayOutputStream;

/**
 * Turns the app's microphone audio (PCM16LE mono at any rate, in buffers of any length) into 20 ms frames at
 * the session's rate: resampled linearly where the rates differ, the remainder kept for the next call.
 */
final class AudioFramer {
    static final int FRAME_MS = 20;

    private final int targetRate;
    private final int frameBytes;
    private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
    /** The resampler's state: the last input sample and where the next output falls after it. */
    private int sourceRate = -1;
    private short previous;
    private double position;

    AudioFramer(int targetRate) {
        this.targetRate = targetRate;
        this.frameBytes = targetRate * FRAME_MS / 1000 * 2;
    }

    int frameBytes() {
        return frameBytes;
    }

    /** Adds {@code pcm16} at {@code sampleRate}; returns the whole 20 ms frames it completes. */
    synchronized byte[][] add(byte[] pcm16, int sampleRate) {
        if (sampleRate < 8000 || sampleRate > 48000) {
            throw new IllegalArgumentException("sample rate " + sampleRate + " Hz: 8000 to 48000 Hz");
        }
        if (pcm16.length % 2 != 0) {
            throw new IllegalArgumentException("PCM16 audio has an even number of bytes, not " + pcm16.length);
        }
        byte[] resampled = sampleRate == targetRate ? pcm16 : resample(pcm16, sampleRate);
        pending.write(resampled, 0, resampled.length);
        return takeFrames(false);
    }

    /** The whole frames left, the last one padded with silence (the end of the user's turn). */
    synchronized byte[][] finish() {
        return takeFrames(true);
    }

    /** Drops what is pending (a new stream starts its audio clock at 0). */
    synchronized void reset() {
        pending.reset();
        sourceRate = -1;
    }

    private byte[][] takeFrames(boolean pad) {
        byte[] buffered = pending.toByteArray();
        int count = buffered.length / frameBytes + (pad && buffered.length % frameBytes != 0 ? 1 : 0);
        byte[][] frames = new byte[count][];
        for (int i = 0; i < count; i++) {
            frames[i] = new byte[frameBytes];
            int from = i * frameBytes;
            System.arraycopy(buffered, from, frames[i], 0, Math.min(frameBytes, buffered.length - from));
        }
        pending.reset();
        int used = Math.min(buffered.length, count * frameBytes);
        pending.write(buffered, used, buffered.length - used);
        return frames;
    }

    /** Linear interpolation, continuous across calls at the same rate. */
    private byte[] resample(byte[] pcm16, int rate) {
        if (rate != sourceRate) {
            sourceRate = rate;
            previous = 0;
            position = 0;
        }
        int samples = pcm16.length / 2;
        double step = (double) rate / targetRate;
        ByteArrayOutputStream out = new ByteArrayOutputStream((int) (samples / step + 2) * 2);
        // position: where the next output sample falls, in input samples, relative to `previous` (index -1).
        while (position < samples) {
            int index = (int) Math.floor(position);
            double fraction = position - index;
            short left = index == 0 ? previous : sample(pcm16, index - 1);
            short right = sample(pcm16, index);
            int value = (int) Math.round(left + (right - left) * fraction);
            out.write(value & 0xff);
            out.write((value >> 8) & 0xff);
            position += step;
        }
        position -= samples;
        previous = sample(pcm16, samples - 1);
        return out.toByteArray();
    }

    private static short sample(byte[] pcm16, int index) {
        return (short) ((pcm16[2 * index] & 0xff) | (pcm16[2 * index + 1] << 8));
    }
}

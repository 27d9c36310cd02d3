package voiceagent.examples;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/** PCM16 mono WAV files: what the example reads and writes. */
public final class Wav {
    public final byte[] pcm16;
    public final int sampleRate;

    public Wav(byte[] pcm16, int sampleRate) {
        this.pcm16 = pcm16;
        this.sampleRate = sampleRate;
    }

    public long durationMs() {
        return pcm16.length / 2 * 1000L / sampleRate;
    }

    /** Reads a 16-bit PCM WAV; stereo is mixed down to mono. */
    public static Wav read(Path path) throws IOException {
        ByteBuffer data = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
        if (data.remaining() < 12 || data.getInt(0) != 0x46464952 || data.getInt(8) != 0x45564157) {
            throw new IOException(path + " is not a WAV file");
        }
        int channels = 0;
        int rate = 0;
        int bits = 0;
        int position = 12;
        while (position + 8 <= data.limit()) {
            int id = data.getInt(position);
            int size = data.getInt(position + 4);
            int body = position + 8;
            if (id == 0x20746d66) { // "fmt "
                int format = data.getShort(body) & 0xffff;
                channels = data.getShort(body + 2);
                rate = data.getInt(body + 4);
                bits = data.getShort(body + 14);
                if ((format != 1 && format != 0xfffe) || bits != 16) {
                    throw new IOException(path + ": only 16-bit PCM WAV files are read (format " + format + ", "
                            + bits + " bits)");
                }
            } else if (id == 0x61746164) { // "data"
                if (rate == 0) {
                    throw new IOException(path + ": the data chunk comes before the format chunk");
                }
                int length = Math.min(size, data.limit() - body);
                byte[] pcm = new byte[length - length % (2 * channels)];
                data.position(body);
                data.get(pcm);
                return new Wav(channels == 1 ? pcm : mono(pcm, channels), rate);
            }
            position = body + size + (size & 1);
        }
        throw new IOException(path + " has no audio data");
    }

    private static byte[] mono(byte[] interleaved, int channels) {
        ByteBuffer in = ByteBuffer.wrap(interleaved).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer out = ByteBuffer.allocate(interleaved.length / channels).order(ByteOrder.LITTLE_ENDIAN);
        while (in.remaining() >= 2 * channels) {
            int sum = 0;
            for (int c = 0; c < channels; c++) {
                sum += in.getShort();
            }
            out.putShort((short) (sum / channels));
        }
        return out.array();
    }

    public void write(Path path) throws IOException {
        ByteBuffer header = ByteBuffer.allocate(44).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(0x46464952).putInt(36 + pcm16.length).putInt(0x45564157);
        header.putInt(0x20746d66).putInt(16).putShort((short) 1).putShort((short) 1).putInt(sampleRate)
                .putInt(sampleRate * 2).putShort((short) 2).putShort((short) 16);
        header.putInt(0x61746164).putInt(pcm16.length);
        ByteArrayOutputStream file = new ByteArrayOutputStream(44 + pcm16.length);
        file.write(header.array(), 0, 44);
        file.write(pcm16, 0, pcm16.length);
        Files.write(path, file.toByteArray());
    }
}

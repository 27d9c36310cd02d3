package voiceagent.examples;

import java.util.Map;

/** Just enough JSON for the example's one line of output (the SDK itself has no JSON dependency). */
public final class Json {
    private Json() {}

    public static String of(Map<String, ?> object) {
        StringBuilder out = new StringBuilder("{");
        for (Map.Entry<String, ?> entry : object.entrySet()) {
            if (out.length() > 1) {
                out.append(", ");
            }
            out.append(quoted(entry.getKey())).append(": ").append(value(entry.getValue()));
        }
        return out.append('}').toString();
    }

    @SuppressWarnings("unchecked")
    private static String value(Object value) {
        if (value == null) {
            return "null";
        } else if (value instanceof Map) {
            return of((Map<String, ?>) value);
        } else if (value instanceof Number || value instanceof Boolean) {
            return value.toString();
        }
        return quoted(value.toString());
    }

    private static String quoted(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}

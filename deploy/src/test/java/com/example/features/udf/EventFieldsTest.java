package com.example.features.udf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.nio.charset.StandardCharsets;

import org.apache.flink.core.memory.MemorySegment;
import org.apache.flink.core.memory.MemorySegmentFactory;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.junit.jupiter.api.Test;

class EventFieldsTest {
    private static String[] fields(String payload) {
        return texts(new EventFields().eval(StringData.fromString(payload)));
    }

    private static String[] texts(RowData row) {
        String[] out = new String[EventFields.FIELDS.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = row.isNullAt(i) ? null : row.getString(i).toString();
        }
        return out;
    }

    private static String[] none() {
        return new String[EventFields.FIELDS.length];
    }

    @Test
    void aValidEventGivesItsFieldsAsText() {
        assertArrayEquals(
                new String[] {"t-1", "u-42", "A", "12.5", "2026-01-01T00:00:05.123Z"},
                fields("{\"txid\": \"t-1\", \"user_id\": \"u-42\", \"event_type\": \"A\", "
                        + "\"event_time\": \"2026-01-01T00:00:05.123Z\", \"amount\": 12.50, \"extra\": {\"a\": [1]}}"));
    }

    @Test
    void numbersAndBooleansAreTextAsJavaPrintsTheNumber() {
        assertArrayEquals(
                new String[] {"7", "true", "1000.0", "-0.0", "1767225605123"},
                fields("{\"txid\": 7, \"user_id\": true, \"event_type\": 1e3, \"amount\": -0.0, "
                        + "\"event_time\": 1767225605123}"));
        assertArrayEquals(
                new String[] {"123456789012345678901234567890", null, null, "1.0E20", null},
                fields("{\"txid\": 123456789012345678901234567890, \"amount\": 100000000000000000000.0}"));
    }

    @Test
    void nullObjectsArraysAndMissingFieldsAreNull() {
        assertArrayEquals(
                new String[] {null, null, null, null, "x"},
                fields("{\"txid\": null, \"user_id\": {\"id\": 1}, \"event_type\": [\"A\"], \"event_time\": \"x\"}"));
    }

    @Test
    void aKeyGivenTwiceTakesItsLastValue() {
        assertArrayEquals(
                new String[] {"second", null, null, null, null},
                fields("{\"txid\": \"first\", \"user_id\": \"u\", \"txid\": \"second\", \"user_id\": {}}"));
    }

    @Test
    void aPayloadThatIsNotAJsonObjectHasNoFields() {
        for (String payload : new String[] {"not json at all", "[1, 2, 3]", "\"t-1\"", "", "   ",
                "{\"txid\": \"t-1\"", "{\"txid\": \"t-1\", \"nested\": {\"a\": }}"}) {
            assertArrayEquals(none(), fields(payload), payload);
        }
        assertArrayEquals(none(), texts(new EventFields().eval(null)));
    }

    @Test
    void textAfterTheObjectIsIgnoredAndEscapesAreDecoded() {
        assertArrayEquals(
                new String[] {"t-\u00e9\n", null, null, null, null},
                fields("{\"txid\": \"t-\\u00e9\\n\"} trailing"));
    }

    @Test
    void anEqualPayloadIsNotParsedAgainButADifferentOneIs() {
        EventFields function = new EventFields();
        RowData first = function.eval(StringData.fromString("{\"txid\": \"a\"}"));
        assertSame(first, function.eval(StringData.fromString("{\"txid\": \"a\"}")));
        assertArrayEquals(new String[] {"b", null, null, null, null},
                texts(function.eval(StringData.fromString("{\"txid\": \"b\"}"))));
    }

    @Test
    void aPayloadWhoseMemoryIsReusedForTheNextRecordIsNotMistakenForIt() {
        // As a reused input row: each record's string is a new view over the same buffer.
        EventFields function = new EventFields();
        byte[] bytes = "{\"txid\": \"a\"}".getBytes(StandardCharsets.UTF_8);
        MemorySegment[] buffer = {MemorySegmentFactory.wrap(bytes)};
        function.eval(BinaryStringData.fromAddress(buffer, 0, bytes.length));
        buffer[0].put(10, (byte) 'b'); // the next record: {"txid": "b"}
        assertArrayEquals(new String[] {"b", null, null, null, null},
                texts(function.eval(BinaryStringData.fromAddress(buffer, 0, bytes.length))));
    }
}

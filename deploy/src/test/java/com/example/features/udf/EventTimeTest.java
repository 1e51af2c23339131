package com.example.features.udf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

class EventTimeTest {
    @Test
    void isoTimesInUtcWithDigitsPastTheMillisecondTruncated() {
        assertEquals(1767225605123L, EventTime.millis("2026-01-01T00:00:05.123Z"));
        assertEquals(1767225605123L, EventTime.millis("2026-01-01T00:00:05.123999999Z"));
        assertEquals(1767225605500L, EventTime.millis("2026-01-01T00:00:05.5Z"));
        assertEquals(1767225605000L, EventTime.millis("2026-01-01T00:00:05Z"));
        assertEquals(951782400000L, EventTime.millis("2000-02-29T00:00:00Z"));
    }

    @Test
    void epochMillisecondsOfUpToFifteenDigits() {
        assertEquals(1767225605123L, EventTime.millis("1767225605123"));
        assertEquals(0L, EventTime.millis("0"));
        assertEquals(999999999999999L, EventTime.millis("999999999999999"));
        assertNull(EventTime.millis("1000000000000000"));
    }

    @Test
    void datesThatDoNotExistAndOtherShapesHaveNoTime() {
        for (String text : new String[] {"2026-02-30T00:10:00Z", "0000-01-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
                "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
                "2026-01-01T00:00:60Z", "2026-01-01 00:10:00", "2026-01-01T00:10:00", "2026-01-01T00:10:00z",
                "2026-01-01T00:10:00.Z", "2026-01-01T00:10:00.1234567890Z", "2026-01-01T00:10:00+00:00",
                "1767225605123\n", " 1767225605123", "-1767225605123", "1.767225605123E12", "yesterday", "",
                "\u0661\u0662"}) {
            assertNull(EventTime.millis(text), text);
        }
    }
}

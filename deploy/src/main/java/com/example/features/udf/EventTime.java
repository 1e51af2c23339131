package com.example.features.udf;

import java.time.LocalDateTime;
import java.time.ZoneOffset;

/**
 * The event contract's time rule (sql/sources/events_parsed.sql): epoch milliseconds of up to 15
 * digits, or ISO-8601 UTC {@code yyyy-MM-ddTHH:mm:ss[.f{1,9}]Z} whose date exists (years 0001-9999,
 * days per month, Feb 29 in Gregorian leap years), digits past the millisecond truncated. Anything else has no
 * time (NULL). Only ASCII digits count, and nothing may follow (no line break, no space).
 */
final class EventTime {
    private static final int[] DAYS = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    private EventTime() {}

    static Long millis(String text) {
        if (looksIso(text)) {
            return isoMillis(text);
        }
        return epochMillis(text);
    }

    private static Long epochMillis(String text) {
        int length = text.length();
        if (length < 1 || length > 15) {
            return null;
        }
        long value = 0;
        for (int i = 0; i < length; i++) {
            int digit = digit(text, i);
            if (digit < 0) {
                return null;
            }
            value = value * 10 + digit;
        }
        return value;
    }

    /** The shape yyyy-MM-ddTHH:mm:ss, then .f{1,9} or nothing, then Z and the end. */
    private static boolean looksIso(String text) {
        int length = text.length();
        if (length < 20 || text.charAt(length - 1) != 'Z') {
            return false;
        }
        String shape = "dddd-dd-ddTdd:dd:dd";
        for (int i = 0; i < shape.length(); i++) {
            char expected = shape.charAt(i);
            if (expected == 'd' ? digit(text, i) < 0 : text.charAt(i) != expected) {
                return false;
            }
        }
        if (length == 20) {
            return true;
        }
        int fractionDigits = length - 1 - 20;  // after "ss." and before "Z"
        if (text.charAt(19) != '.' || fractionDigits < 1 || fractionDigits > 9) {
            return false;
        }
        for (int i = 20; i < length - 1; i++) {
            if (digit(text, i) < 0) {
                return false;
            }
        }
        return true;
    }

    /** The ISO shape's time if its date and clock exist, else NULL. */
    private static Long isoMillis(String text) {
        int year = number(text, 0, 4);
        int month = number(text, 5, 7);
        int day = number(text, 8, 10);
        int hour = number(text, 11, 13);
        int minute = number(text, 14, 16);
        int second = number(text, 17, 19);
        // Year 0000 fits the shape but not Flink's cast from text, which the rule was first written with.
        if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)
                || hour > 23 || minute > 59 || second > 59) {
            return null;
        }
        int millis = 0;  // the first three fraction digits; ".5" is 500 ms
        for (int i = 20, place = 100; i < text.length() - 1 && place > 0; i++, place /= 10) {
            millis += digit(text, i) * place;
        }
        long seconds = LocalDateTime.of(year, month, day, hour, minute, second).toEpochSecond(ZoneOffset.UTC);
        return seconds * 1000 + millis;
    }

    private static int daysIn(int year, int month) {
        boolean leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        return month == 2 && leap ? 29 : DAYS[month - 1];
    }

    private static int number(String text, int from, int to) {
        int value = 0;
        for (int i = from; i < to; i++) {
            value = value * 10 + digit(text, i);
        }
        return value;
    }

    private static int digit(String text, int i) {
        char c = text.charAt(i);
        return c >= '0' && c <= '9' ? c - '0' : -1;
    }
}

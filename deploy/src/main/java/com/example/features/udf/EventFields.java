package com.example.features.udf;

import java.io.IOException;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * {@code EVENT_FIELDS(payload)}: an event's top-level fields exactly as {@code JSON_VALUE(payload,
 * '$.<field>')} returns them, from one parse of the payload, and its event time in epoch
 * milliseconds by the contract's time rule (sql/sources/events_parsed.sql).
 *
 * <p>Flink 1.20's JSON_VALUE parses the whole payload on every call, and the event contract reads
 * five fields, the time twice: six parses per record were the hot path's wall, and the time rule
 * in SQL (a date-validating regex, two REPLACEs, a cast from text) the next one. Validity, the
 * watermark and the reject reasons stay in the SQL.
 *
 * <p>Same values as JSON_VALUE in its default (lax, NULL on error) mode: a scalar as text (numbers
 * as Java prints the number Jackson reads: 12.50 is "12.5", 1e3 is "1000.0"); NULL for JSON null,
 * an object or array value, a missing field, a payload that is not valid JSON or not an object.
 * A key given twice takes its last value; anything after the object is ignored.
 *
 * <p>A record's SQL calls this once per field mention (computed columns cannot share a call), so
 * the last payload's fields are kept and returned for an equal payload without parsing again.
 */
@FunctionHint(
        input = @DataTypeHint(value = "STRING", bridgedTo = StringData.class),
        output = @DataTypeHint(
                value = "ROW<txid STRING, user_id STRING, event_type STRING, amount STRING, event_time STRING, "
                        + "event_time_ms BIGINT>",
                bridgedTo = RowData.class))
public class EventFields extends ScalarFunction {
    static final String[] FIELDS = {"txid", "user_id", "event_type", "amount", "event_time"};
    private static final int EVENT_TIME = 4;
    private static final int EVENT_TIME_MS = FIELDS.length;
    private static final int ARITY = FIELDS.length + 1;
    private static final JsonFactory JSON = new JsonFactory();

    private transient StringData lastPayload;
    private transient RowData lastFields;

    public RowData eval(StringData payload) {
        if (payload == null) {
            return new GenericRowData(ARITY);
        }
        if (!payload.equals(lastPayload)) {
            // A copy (toBytes may return the payload's own array): the caller may reuse the
            // payload's memory for the next record.
            lastPayload = ((BinaryStringData) payload).copy();
            lastFields = parse(payload.toString());
        }
        return lastFields;
    }

    /** The fields of one payload; decoded text, as JSON_VALUE sees it. */
    static RowData parse(String payload) {
        String[] texts = new String[FIELDS.length];
        try (JsonParser parser = JSON.createParser(payload)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return new GenericRowData(ARITY);
            }
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                int index = indexOf(parser.getCurrentName());
                JsonToken value = parser.nextToken();
                if (value == JsonToken.START_OBJECT || value == JsonToken.START_ARRAY) {
                    parser.skipChildren(); // still checks the nested JSON is well formed
                }
                if (index >= 0) {
                    texts[index] = scalarText(parser, value);
                }
            }
        } catch (IOException malformed) {
            return new GenericRowData(ARITY);
        }
        GenericRowData fields = new GenericRowData(ARITY);
        for (int i = 0; i < texts.length; i++) {
            fields.setField(i, texts[i] == null ? null : utf8(texts[i]));
        }
        fields.setField(EVENT_TIME_MS, texts[EVENT_TIME] == null ? null : EventTime.millis(texts[EVENT_TIME]));
        return fields;
    }

    private static String scalarText(JsonParser parser, JsonToken value) throws IOException {
        switch (value) {
            case VALUE_STRING:
            case VALUE_TRUE:
            case VALUE_FALSE:
                return parser.getText();
            case VALUE_NUMBER_INT:
            case VALUE_NUMBER_FLOAT:
                return parser.getNumberValue().toString();
            default: // null, object, array
                return null;
        }
    }

    /**
     * Text as UTF-8 bytes now, not a Java string encoded later: every chained operator copies the
     * row's strings, and a string that is not yet bytes is encoded again by each copy.
     */
    private static StringData utf8(String text) {
        BinaryStringData bytes = BinaryStringData.fromString(text);
        bytes.ensureMaterialized();
        return bytes;
    }

    private static int indexOf(String name) {
        for (int i = 0; i < FIELDS.length; i++) {
            if (FIELDS[i].equals(name)) {
                return i;
            }
        }
        return -1;
    }
}

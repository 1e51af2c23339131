from jobs.streaming.counters import describe


def test_counter_line_names_every_counter_and_derives_duplicates():
    totals = {"counter_records_read": 2220, "counter_malformed": 20, "counter_late": 52, "counter_on_time": 2148,
              "counter_deduplicated": 2000, "user_activity_5m__counter": 447, "user_activity_1h__counter": 3,
              "user_activity_5m__dropped_by_window": 4, "user_activity_1h__dropped_by_window": 0}
    assert describe(totals) == ("counters: read=2220 malformed=20 late=52 duplicates_dropped=148 "
                                "emitted user_activity_1h=3 emitted user_activity_5m=447 "
                                "dropped_by_window user_activity_1h=0 dropped_by_window user_activity_5m=4")

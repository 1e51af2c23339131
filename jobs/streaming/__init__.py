"""The streaming job that writes features: Flink environment, pipeline, sinks, plan fingerprint."""

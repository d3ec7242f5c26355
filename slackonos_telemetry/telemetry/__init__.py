"""The telemetry layer: events, the durable outbox, delivery through the posthog SDK,
the tracker thread and the shutdown hooks. It knows nothing of Slack."""

"""What the tests (and the bench) share: stand-ins for PostHog and Slack on 127.0.0.1,
signed Slack requests, the bot and the CLI as real processes, bounded waits.

Nothing here is in the wheel. Every server and process it starts is bounded in
time and is stopped by the context manager that started it, also when a test fails.
"""

"""Running a bot with the plugin: Socket Mode, HTTP, or a local console with stand-ins
for Slack and PostHog on 127.0.0.1."""

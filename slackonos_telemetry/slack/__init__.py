"""The Slack layer: the Bolt plugin, its middlewares, the admin commands and their answers."""

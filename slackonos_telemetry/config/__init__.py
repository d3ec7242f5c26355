"""The config layer: the shared config file, the environment, and the settings read from them.

It imports nothing else of the package; every other layer builds on it.
"""

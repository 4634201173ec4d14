"""Application layer: every command-line entry point, the run loop, callbacks and loggers."""

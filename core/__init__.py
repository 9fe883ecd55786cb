"""The shared kernel: errors, settings, logging and constants. Imports nothing local."""

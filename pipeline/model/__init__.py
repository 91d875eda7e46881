"""The turn scorer: building it, its training windows."""

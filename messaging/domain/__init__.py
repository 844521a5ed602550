"""Pure rules of the service: no I/O, no event loop, no clock of their own."""

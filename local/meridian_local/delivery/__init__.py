"""Lambda and event delivery: the real handlers run in-process, the events AWS hands them, and the
pollers and rule targets that deliver queues, streams and bus events to them."""

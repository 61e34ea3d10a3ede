"""The runtime of a worker: the in-process actor engine, the 20 ms ticker, the garbage-collector watch,
and the parent that keeps N workers running."""

"""Outbound calls: the dialler, answering machines, the scheduled callbacks and their leader lease."""

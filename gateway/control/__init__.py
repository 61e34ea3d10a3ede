"""The control plane as a worker sees it: the link to the actor system, the reports, Prometheus."""

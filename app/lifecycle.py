"""Whether the process is shutting down, shared by the server (which learns of the signal), /readyz
(which tells the load balancer) and the middleware (which stops keeping connections alive)."""

from __future__ import annotations


class Readiness:
    """Flips once, from serving to draining; never back. Setting a flag is all a signal handler may
    safely do, so `begin_draining` does nothing else."""

    def __init__(self) -> None:
        self._draining = False

    @property
    def draining(self) -> bool:
        return self._draining

    def begin_draining(self) -> None:
        self._draining = True

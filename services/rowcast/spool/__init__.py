"""The audit spool: a local, append-only log of decisions that outlives the process.

A prediction server appends every decision here before it answers (`Spool.append`), and a
sender (`SpoolSender`) streams what is in the spool to the AuditService, moving the spool's
cursor forward only on acknowledgement. See docs/audit.md for the guarantees and their cost.
"""

from rowcast.spool.framing import Position
from rowcast.spool.spool import RecoveryReport, Spool, SpoolFull, SpoolLocked

__all__ = ["Position", "RecoveryReport", "Spool", "SpoolFull", "SpoolLocked"]

"""The live loop: ``clm worker`` keeps every workspace current without cron.

After new events (a nudge from ingestion), at each due moment and every minute, a pass over a
workspace recomputes the stages of the customers who changed and announces the transitions
whose time has come, re-scores the health of the customers whose inputs or clock changed, lets
playbooks act on both, and delivers what they sent; predictions are refitted daily and after
large imports. All of it runs on huey (embedded SQLite queue, Redis at scale), beside the
engagement tasks. Its knobs are the ``live_*`` fields (``CLM_LIVE_*``) of ``clm.config.Settings``.
"""

from clm.worker.live import LiveReport, live_pass, next_due
from clm.worker.nudge import nudge
from clm.worker.tasks import LiveQueue, make_live_queue, run_worker

__all__ = [
    "LiveQueue",
    "LiveReport",
    "live_pass",
    "make_live_queue",
    "next_due",
    "nudge",
    "run_worker",
]

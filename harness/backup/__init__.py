"""The backup side: what production's cron runs, and what the sandbox world uses to build its history.

One code path writes every backup object and its manifest, so the drill verifies backups made exactly the way
an operator's ``codeblack-drills backup ...`` makes them.
"""
